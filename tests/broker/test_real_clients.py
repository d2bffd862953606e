"""Real third-party clients: the websocat binary and headless Chromium running the viewer."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect

from eegpi.stream import Block

from .conftest import META, TIMEOUT, Broker, make_block

WEBSOCAT = Path(sys.executable).with_name("websocat")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


async def read_line(stream: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(stream.readline(), TIMEOUT)
    assert line, "websocat closed its output"
    result: dict[str, Any] = json.loads(line)
    return result


@pytest.mark.skipif(not WEBSOCAT.exists(), reason="websocat is not installed in the venv")
async def test_websocat_subscribes_and_receives_data(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    proc = await asyncio.create_subprocess_exec(
        str(WEBSOCAT),
        "-t",
        broker.url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b'{"subscribe": "eeg", "max_latency_ms": 0}\n')
        await proc.stdin.drain()
        ack = await read_line(proc.stdout)
        assert ack["subscribed"] == "eeg" and ack["meta"]["units"] == "uV"
        broker.hub.publish("eeg", make_block(0, 3))
        broker.hub.publish("eeg", make_block(3, 3))
        first, second = await read_line(proc.stdout), await read_line(proc.stdout)
        assert (first["seq"], len(first["data"])) == (0, 3)
        assert (second["seq"], second["data"][0]) == (3, [3.0, 3.1, 3.2, 3.3])
    finally:
        proc.kill()
        await proc.wait()


class DevTools:
    """Minimal Chrome DevTools Protocol client over the websockets library."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")


async def wait_for_file(path: Path, timeout: float) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if path.exists() and path.read_text().count("\n") >= 1:
            return path.read_text()
        await asyncio.sleep(0.1)  # polls a file Chromium writes; there is no event for it
    raise TimeoutError(f"{path} did not appear")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
@pytest.mark.timeout(90)
async def test_viewer_page_in_headless_chromium(broker: Broker, tmp_path: Path) -> None:
    broker.hub.declare("eeg_filtered", META)
    broker.hub.declare("eeg_voltage", META)
    producing = asyncio.Event()

    async def produce() -> None:  # 250 SPS in 20 ms blocks of alpha-like waves, as a pipeline would
        rng = np.random.default_rng(7)
        seq = 0
        t0 = time.time()
        while True:
            t = np.arange(seq, seq + 5)[:, None] / META.sample_rate
            waves = 20 * np.sin(2 * np.pi * np.array([10.0, 6.0, 12.0, 3.0]) * t)
            data = waves + rng.normal(0, 3, waves.shape)
            broker.hub.publish("eeg_filtered", Block(data, seq, t0 + seq / META.sample_rate, META))
            seq += 5
            producing.set()
            await asyncio.sleep(0.02)

    producer = asyncio.create_task(produce())
    profile = tmp_path / "profile"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        f"{broker.http}/",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = await wait_for_file(profile / "DevToolsActivePort", 40)
        port, browser_path = port_file.split("\n")[:2]
        async with connect(f"ws://127.0.0.1:{port}{browser_path}", max_size=2**26) as ws:
            browser = DevTools(ws)
            targets = await browser.call("Target.getTargets")
            page = next(t for t in targets["targetInfos"] if t["type"] == "page")
        async with connect(
            f"ws://127.0.0.1:{port}/devtools/page/{page['targetId']}", max_size=2**26
        ) as ws:
            tab = DevTools(ws)
            await producing.wait()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            state: dict[str, Any] = {}
            while loop.time() < deadline:
                state = (
                    await tab.evaluate("JSON.parse(JSON.stringify(window.eegpiViewer || {}))") or {}
                )
                if state.get("samples", 0) >= 600:
                    break
                await asyncio.sleep(0.1)  # polls the page's state over DevTools
            assert state.get("connected") is True, state
            assert set(state["topics"]) == {"eeg_filtered", "eeg_voltage"}, state
            assert state["topic"] == "eeg_filtered" and state["subscribed"] is True
            assert state["meta"]["channels"] == ["ch1", "ch2", "ch3", "ch4"]
            assert state["samples"] >= 600 and state["gaps"] == 0 and state["errors"] == []
            assert await tab.evaluate("document.getElementById('s-rate').textContent") == "250"
            assert -100 < state["latencyMs"] < 5000
            shot = await tab.call("Page.captureScreenshot", format="png")
            Path("/tmp/eegpi-viewer.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        producer.cancel()
        proc.kill()
        await proc.wait()
