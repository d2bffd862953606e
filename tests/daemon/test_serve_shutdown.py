"""SIGTERM while a pipeline is still starting: the daemon exits 0 and leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import start_daemon

WAIT_S = 60.0
START = "eegpi.v1.PipelineControl/StartPipeline"


def _children(pid: int) -> dict[int, str]:
    """Live (non-zombie) direct children of ``pid``: pid -> command line."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z":
            found[int(entry)] = cmdline
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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
            lambda: any("multiprocessing" in c for c in _children(d.proc.pid).values()),
            "the acquisition process",
        )
        children = set(_children(d.proc.pid))
        assert not any("pipeline default running" in line for line in d.lines)
        assert d.terminate(timeout=WAIT_S) == 0
        _wait_until(lambda: not any(_alive(pid) for pid in children), "children to end")
    finally:
        starter.wait(WAIT_S)
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
    log = "\n".join(d.lines)
    assert "Traceback" not in log and "leaked" not in log, log
