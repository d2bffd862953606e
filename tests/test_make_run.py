"""`make run`, the README's first command, starts the appliance and streams."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import websockets

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _first_data(url: str, deadline: float) -> dict:  # type: ignore[type-arg]
    while True:
        try:
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"subscribe": "eeg_filtered"}))
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if "topic" in msg:
                        return msg  # type: ignore[no-any-return]
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)  # polling for the port to open, not synchronisation


def test_make_run_streams_and_prints_the_urls() -> None:
    grpc_port, ws_port = _free_port(), _free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "run",
            f"GRPC=127.0.0.1:{grpc_port}",
            f"WS=127.0.0.1:{ws_port}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        msg = asyncio.run(_first_data(f"ws://127.0.0.1:{ws_port}/ws/data", started + 60))
        elapsed = time.monotonic() - started
        print(f"make run: first filtered data {elapsed:.2f} s after launch")
        assert msg["topic"] == "eeg_filtered" and len(msg["data"][0]) == 8
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{ws_port}/" in out
    assert f"ws://127.0.0.1:{ws_port}/ws/data" in out
    assert "stopped" in out
