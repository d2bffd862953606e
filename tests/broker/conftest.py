"""Real hub + WebSocket server on 127.0.0.1:0 and small helpers to talk to them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from eegpi.broker import TopicHub, WsServer, start_ws_server
from eegpi.stream import Block, StreamMeta

META = StreamMeta(250.0, ("ch1", "ch2", "ch3", "ch4"), "uV")
TIMEOUT = 5.0


def make_block(seq: int, n: int, meta: StreamMeta = META, t0: float = 1_700_000_000.0) -> Block:
    """Deterministic samples: value = seq_of_sample + channel / 10."""
    rows = np.arange(seq, seq + n, dtype=np.float64)[:, None]
    data = rows + np.arange(len(meta.channels))[None, :] / 10.0
    return Block(data, seq, t0 + seq / meta.sample_rate, meta)


async def recv_json(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str), f"expected a text message, got {type(message)}"
    result: dict[str, Any] = json.loads(message)
    return result


async def recv_until(
    ws: ClientConnection, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
) -> dict[str, Any]:
    """Skip messages until one matches (data messages included)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if predicate(message):
            return message


class Broker:
    def __init__(self, hub: TopicHub, server: WsServer) -> None:
        self.hub = hub
        self.server = server
        self.url = f"ws://127.0.0.1:{server.port}/ws/data"
        self.http = f"http://127.0.0.1:{server.port}"

    def client(self, **kwargs: Any) -> Any:
        kwargs.setdefault("open_timeout", TIMEOUT)
        return connect(self.url, **kwargs)


async def start_broker(token: str | None = None, **hub_kwargs: Any) -> Broker:
    hub = TopicHub(**hub_kwargs)
    server = await start_ws_server(hub, "127.0.0.1", 0, max_clients=8, token=token)
    return Broker(hub, server)


async def stop_broker(broker: Broker) -> None:
    await broker.hub.close()
    broker.server.close()
    await asyncio.wait_for(broker.server.wait_closed(), 10)


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    b = await start_broker()
    try:
        yield b
    finally:
        await stop_broker(b)
