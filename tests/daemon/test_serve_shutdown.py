"""SIGTERM while a pipeline is still starting: the daemon exits 0 and leaves no process behind."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import start_daemon
from tests.daemon.systemd_harness import alive, children

WAIT_S = 60.0
START = "eegpi.v1.PipelineControl/StartPipeline"


def _wait_until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling /proc for a condition, not synchronisation


def test_sigterm_during_start_leaves_no_acquisition_process(venv_bin: Path) -> None:
    d = start_daemon(autostart=())
    starter = subprocess.Popen(
        [
            str(venv_bin / "grpcurl"),
            "-plaintext",
            "-d",
            '{"name": "default"}',
            d.grpc_target,
            START,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # the acquisition process appears while the device opens: the pipeline is STARTING
        _wait_until(
            lambda: any("multiprocessing" in c for c in children(d.proc.pid).values()),
            "the acquisition process",
        )
        kids = set(children(d.proc.pid))
        assert not any("pipeline default running" in line for line in d.lines)
        assert d.terminate(timeout=WAIT_S) == 0
        _wait_until(lambda: not any(alive(pid) for pid in kids), "children to end")
    finally:
        starter.wait(WAIT_S)
        d.kill()
    log = "\n".join(d.lines)
    assert "Traceback" not in log and "leaked" not in log, log
