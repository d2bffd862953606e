"""Runs `python -m eegpi` and the fake gRPC daemon as subprocesses."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOKEN = "cli-s3cret"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_eegpi(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Run:
    """Run ``python -m eegpi ARGS``; EEGPI_* from the test environment are not inherited."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("EEGPI_")}
    proc = subprocess.run(
        [sys.executable, "-m", "eegpi", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class FakeDaemon:
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, *args: str, **kw: Any) -> Run:
        return run_eegpi("--grpc", self.target, *args, **kw)


def start_fake_daemon(*extra: str) -> Iterator[FakeDaemon]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.rpc.fake_daemon", *extra],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=30)
        assert line.startswith("PORT "), f"fake daemon said {line!r}"
        yield FakeDaemon(int(line.split()[1]))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the fake exits when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
