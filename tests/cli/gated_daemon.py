"""A real daemon whose pipeline ``slow`` opens and closes only when the test says so.

The pipeline holds a third-party stage (installed the way plug-ins are, through an
``eegpi.stages`` entry point) whose ``open`` and ``close`` each block on a named pipe until the
test releases it. So a start or a stop lasts exactly as long as the test wants, with no sleeps:
the test knows the daemon is inside ``open`` when its own open of the pipe returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.cli.cli_runner import Run
from tests.conftest import Daemon, start_daemon

PLUGIN = """
from dataclasses import dataclass

from eegpi.pipeline.stage import Stage


@dataclass(frozen=True)
class GateParams:
    open_gate: str = ""
    close_gate: str = ""


def _pass(path):
    if path:
        with open(path) as gate:  # blocks until the test opens the pipe, then until it closes
            gate.read()


class Gate(Stage):
    type_name = "test_gate"
    Params = GateParams
    output_ports = ()

    def open(self, inputs, ctx):
        _pass(self.params.open_gate)
        return {}

    def process(self, inputs):
        return {}

    def close(self):
        _pass(self.params.close_gate)
"""

PIPELINE = """
name: slow
stages:
  - name: acquire
    type: ads1299_source
    params: {{sample_rate: 250}}
  - name: gate
    type: test_gate
    params: {{open_gate: "{open_gate}", close_gate: "{close_gate}"}}
    inputs: [acquire]
"""

_WAIT_S = 60.0


class Gate:
    """A named pipe a stage blocks on until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self._writer: IO[str] | None = None

    def reached(self) -> None:
        """Block until the stage waits at the gate (it has opened the pipe for reading)."""
        opened: list[IO[str]] = []

        def open_for_writing() -> None:
            opened.append(open(self.path, "w"))  # noqa: SIM115 - closed by release()

        t = threading.Thread(target=open_for_writing, daemon=True)
        t.start()
        t.join(_WAIT_S)
        assert opened, f"the daemon never reached {self.path.name} within {_WAIT_S} s"
        self._writer = opened[0]

    def release(self) -> None:
        """Let the stage through (it reads end-of-file)."""
        assert self._writer is not None, "release() before reached()"
        self._writer.close()
        self._writer = None

    def pass_through(self) -> None:
        self.reached()
        self.release()


@dataclass
class GatedDaemon:
    daemon: Daemon
    opening: Gate
    closing: Gate

    def cli(self, *args: str) -> subprocess.Popen[str]:
        """``eegpi --grpc DAEMON ARGS`` running in the background (stdout, stderr piped)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("EEGPI_")}
        return subprocess.Popen(
            [sys.executable, "-c", _AS_IN_A_TERMINAL, "--grpc", self.daemon.grpc_target, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=base,
        )


_AS_IN_A_TERMINAL = (
    "import runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'eegpi'; "
    "runpy.run_module('eegpi', run_name='__main__', alter_sys=True)"
)
"""``python -m eegpi`` with Ctrl-C as a terminal delivers it. A suite started in the background
(``nohup make test &``) hands its children SIGINT ignored, and a Python started that way never
turns SIGINT into KeyboardInterrupt: the Ctrl-C tests would test the launcher, not the CLI."""


def finished(proc: subprocess.Popen[str], timeout: float = _WAIT_S) -> Run:
    out, err = proc.communicate(timeout=timeout)
    return Run(proc.returncode, out, err)


def interrupt(proc: subprocess.Popen[str]) -> Run:
    """Ctrl-C, as a terminal sends it."""
    proc.send_signal(signal.SIGINT)
    return finished(proc)


def start_gated_daemon(tmp_path: Path) -> Iterator[GatedDaemon]:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "eegpi_test_gate.py").write_text(PLUGIN)
    info = plugin / "eegpi_test_gate-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: eegpi-test-gate\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[eegpi.stages]\ntest_gate = eegpi_test_gate:Gate\n")
    opening, closing = Gate(tmp_path / "open.gate"), Gate(tmp_path / "close.gate")
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "slow.yaml").write_text(
        PIPELINE.format(open_gate=opening.path, close_gate=closing.path)
    )
    path = os.pathsep.join(p for p in (str(plugin), os.environ.get("PYTHONPATH", "")) if p)
    d = start_daemon(pipelines=pipelines, autostart=(), env={"PYTHONPATH": path})
    try:
        yield GatedDaemon(d, opening, closing)
    finally:
        d.kill()
