"""Real third-party clients: the websocat binary and headless Chromium running the viewer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect

from eegpi.stream import Block

from .conftest import META, TIMEOUT, Broker, make_block, start_broker, stop_broker

WEBSOCAT = Path(sys.executable).with_name("websocat")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "lab-token-ø 42"


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


class Producer:
    """Publishes eeg_filtered at 250 SPS in 20 ms blocks of alpha-like waves, like a pipeline."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.producing = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        rng = np.random.default_rng(7)
        seq = 0
        t0 = time.time()
        while True:
            t = np.arange(seq, seq + 5)[:, None] / META.sample_rate
            waves = 20 * np.sin(2 * np.pi * np.array([10.0, 6.0, 12.0, 3.0]) * t)
            data = waves + rng.normal(0, 3, waves.shape)
            block = Block(data, seq, t0 + seq / META.sample_rate, META)
            self.broker.hub.publish("eeg_filtered", block)
            seq += 5
            self.producing.set()
            await asyncio.sleep(0.02)  # paces the stream; nothing waits on it


@contextlib.asynccontextmanager
async def chromium(url: str, tmp_path: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium showing ``url``; yields a DevTools session on its tab."""
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
        url,
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
            yield DevTools(ws)
    finally:
        proc.kill()
        await proc.wait()


async def poll(
    tab: DevTools, expression: str, done: Callable[[Any], bool], timeout: float = 30
) -> Any:
    """Evaluate ``expression`` in the page until ``done(value)``; returns the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = await tab.evaluate(expression)
    while not done(value) and loop.time() < deadline:
        await asyncio.sleep(0.1)  # polls the page's state over DevTools; there is no event
        value = await tab.evaluate(expression)
    return value


VIEWER_STATE = "JSON.parse(JSON.stringify(window.eegpiViewer || {}))"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
@pytest.mark.timeout(90)
async def test_viewer_page_in_headless_chromium(broker: Broker, tmp_path: Path) -> None:
    broker.hub.declare("eeg_filtered", META)
    broker.hub.declare("eeg_voltage", META)
    producer = Producer(broker)
    try:
        async with chromium(f"{broker.http}/", tmp_path) as tab:
            await producer.producing.wait()
            state = await poll(tab, VIEWER_STATE, lambda s: (s or {}).get("samples", 0) >= 600)
            assert state.get("connected") is True, state
            assert set(state["topics"]) == {"eeg_filtered", "eeg_voltage"}, state
            assert state["topic"] == "eeg_filtered" and state["subscribed"] is True
            assert state["meta"]["channels"] == ["ch1", "ch2", "ch3", "ch4"]
            assert state["samples"] >= 600 and state["gaps"] == 0 and state["errors"] == []
            assert state["authRequired"] is False and state["protocol"] is None
            assert await tab.evaluate("document.getElementById('s-rate').textContent") == "250"
            assert -100 < state["latencyMs"] < 5000
            shot = await tab.call("Page.captureScreenshot", format="png")
            Path("/tmp/eegpi-viewer.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        producer.task.cancel()


FOREIGN_PAGE = """<!doctype html><title>elsewhere</title><script>
window.result = {opened: false, messages: 0, closed: null};
const ws = new WebSocket("ws://127.0.0.1:%(port)d/ws/data");
ws.onopen = () => {
  window.result.opened = true;
  ws.send(JSON.stringify({subscribe: "eeg_filtered", max_latency_ms: 0}));
};
ws.onmessage = () => { window.result.messages += 1; };
ws.onclose = (event) => { window.result.closed = event.code; };
</script>"""


async def serve_page(html: str) -> asyncio.Server:
    """A one-page HTTP server on 127.0.0.1 (another origin than the broker's)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        body = html.encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
@pytest.mark.timeout(90)
async def test_a_page_from_another_origin_cannot_read_data(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker.hub.declare("eeg_filtered", META)
    producer = Producer(broker)
    page = await serve_page(FOREIGN_PAGE % {"port": broker.server.port})
    page_port = page.sockets[0].getsockname()[1]
    try:
        async with chromium(f"http://127.0.0.1:{page_port}/", tmp_path) as tab:
            result = await poll(
                tab, "window.result || {}", lambda r: (r or {}).get("closed") is not None
            )
        assert result == {"opened": False, "messages": 0, "closed": 1006}, result
        assert broker.hub.stats.connections_total == 0
        assert any(
            f"origin 'http://127.0.0.1:{page_port}' is not allowed" in r.getMessage()
            for r in caplog.records
        )
    finally:
        producer.task.cancel()
        page.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
@pytest.mark.timeout(90)
async def test_viewer_asks_for_the_token_and_uses_it(tmp_path: Path) -> None:
    broker = await start_broker(token=TOKEN)
    broker.hub.declare("eeg_filtered", META)
    producer = Producer(broker)
    try:
        async with chromium(f"{broker.http}/", tmp_path) as tab:
            state = await poll(tab, VIEWER_STATE, lambda s: bool((s or {}).get("authRequired")))
            assert state["authRequired"] is True and state["connected"] is False, state
            assert await tab.evaluate("document.getElementById('auth').hidden") is False
            assert broker.hub.stats.connections_total == 0

            async def enter(token: str) -> None:
                await tab.evaluate(
                    f"document.getElementById('token').value = {json.dumps(token)};"
                    "document.getElementById('auth').requestSubmit();"
                )

            await enter("not the token")
            state = await poll(tab, VIEWER_STATE, lambda s: bool(s.get("tokenRejected")))
            assert state["tokenRejected"] is True and state["connected"] is False, state
            await enter(TOKEN)
            state = await poll(tab, VIEWER_STATE, lambda s: s.get("samples", 0) >= 250)
            assert state["connected"] is True and state["protocol"] == "eegpi.v1", state
            assert state["topic"] == "eeg_filtered" and state["gaps"] == 0, state
            stored = await tab.evaluate("sessionStorage.getItem('eegpi.token')")
            assert stored == TOKEN
    finally:
        producer.task.cancel()
        await stop_broker(broker)
