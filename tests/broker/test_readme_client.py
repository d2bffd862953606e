"""The README's Python WebSocket client, as written, against a real daemon."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import grpc
import pytest

from eegpi.v1 import control_pb2, control_pb2_grpc
from tests.conftest import REPO, Daemon, start_daemon

WAIT_S = 30.0


def readme_client() -> str:
    """The first Python block of the README's WebSocket section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### WebSocket") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no Python example in the README's WebSocket section"
    return match.group(1)


@pytest.fixture
def idle_daemon() -> Iterator[Daemon]:
    d = start_daemon(autostart=())
    try:
        yield d
    finally:
        d.kill()


def test_the_readme_client_survives_every_message_kind(idle_daemon: Daemon) -> None:
    code = readme_client()
    assert "ws://127.0.0.1:9001/ws/data" in code
    code = code.replace("ws://127.0.0.1:9001/ws/data", idle_daemon.ws_url)
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []

    def next_line() -> str:
        line = lines.get(timeout=WAIT_S)
        assert line is not None, "the README client died:\n" + "\n".join(seen)
        seen.append(line)
        return line

    try:
        # Subscribed before the pipeline runs: first the pending ack ...
        assert "'pending': True" in next_line()
        with grpc.insecure_channel(idle_daemon.grpc_target) as channel:
            control_pb2_grpc.PipelineControlStub(channel).StartPipeline(  # type: ignore[no-untyped-call]
                control_pb2.StartPipelineRequest(name="default"), timeout=WAIT_S * 2
            )
        # ... then the ack with the meta (not a data message), then data.
        assert "'sample_rate': 250.0" in next_line()
        data = [next_line() for _ in range(20)]
        assert all(re.fullmatch(r"\d+ \d+ samples", line) for line in data), data
    finally:
        proc.kill()
        proc.wait()
