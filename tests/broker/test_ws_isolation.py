"""Slow, stalled and broken clients never hurt the hub or other clients; fan-out encodes once."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from eegpi.broker import TopicHub
from eegpi.broker.server import WsServer
from eegpi.broker.session import ClientSession
from eegpi.broker.wire import DataMessage
from eegpi.stream import StreamMeta

from .conftest import META, TIMEOUT, Broker, make_block, recv_json, start_broker, stop_broker

# 16000 SPS x 32 channels: one JSON message holds 512 samples (~300 KB), so a client that stops
# reading fills the socket buffers after a few dozen messages.
WIDE = StreamMeta(16000.0, tuple(f"ch{i}" for i in range(32)), "uV")
CAP = 512


async def stalled_client(broker: Broker, topic: str) -> ClientConnection:
    """A client with a tiny receive buffer that subscribes, then stops reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", broker.server.port))
    ws = await connect(broker.url, sock=sock, max_queue=1, open_timeout=TIMEOUT)
    await ws.send(json.dumps({"subscribe": topic, "max_latency_ms": 0}))
    assert (await recv_json(ws))["subscribed"] == topic
    return ws


def session_of(hub: TopicHub, ws: ClientConnection) -> ClientSession:
    host, port = ws.local_address[:2]
    matches = [s for s in hub._sessions if s.peer == f"{host}:{port}"]
    assert len(matches) == 1
    return matches[0]


class FastReader:
    """Reads everything a client receives, recording data seqs, on its own task."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seqs: list[tuple[int, int]] = []
        self.other: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            async with self.changed:
                if "data" in message:
                    self.seqs.append((message["seq"], len(message["data"])))
                else:
                    self.other.append(message)
                self.changed.notify_all()

    async def wait_for_samples(self, total: int) -> None:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: sum(n for _, n in self.seqs) >= total), TIMEOUT
            )


async def test_stalled_client_loses_oldest_and_is_told_while_fast_client_gets_everything() -> None:
    broker = await start_broker(queue_limit=4, stall_timeout_s=60.0)
    try:
        broker.hub.declare("wide", WIDE)
        slow = await stalled_client(broker, "wide")
        fast_ws = await broker.client()
        await fast_ws.send(json.dumps({"subscribe": "wide", "max_latency_ms": 0}))
        assert (await recv_json(fast_ws))["subscribed"] == "wide"
        fast = FastReader(fast_ws)
        slow_session = session_of(broker.hub, slow)

        blocks = 60
        for i in range(blocks):
            broker.hub.publish("wide", make_block(i * CAP, CAP, WIDE))
            await fast.wait_for_samples((i + 1) * CAP)  # the fast client is never behind

        assert fast.seqs == [(i * CAP, CAP) for i in range(blocks)]
        assert slow_session.messages_dropped > 0
        assert broker.hub.stats.messages_dropped == slow_session.messages_dropped

        # The stalled client resumes: it sees a lagged notice and a seq gap of the same size.
        notices: list[dict[str, Any]] = []
        seqs: list[tuple[int, int]] = []
        while not seqs or seqs[-1][0] + seqs[-1][1] < blocks * CAP:
            message = json.loads(await asyncio.wait_for(slow.recv(), TIMEOUT))
            if "data" in message:
                seqs.append((message["seq"], len(message["data"])))
            else:
                notices.append(message)
        # One notice per burst of losses, each counting the drops since the previous one.
        assert notices and all(set(n) == {"lagged", "samples"} for n in notices)
        assert sum(n["lagged"] for n in notices) == slow_session.messages_dropped
        assert sum(n["samples"] for n in notices) == slow_session.samples_dropped
        missing = blocks * CAP - sum(n for _, n in seqs)
        assert missing == slow_session.samples_dropped
        gaps = [b[0] - (a[0] + a[1]) for a, b in itertools.pairwise(seqs)]
        assert sum(gaps) == missing and max(gaps) > 0
        await slow.close()
        await fast_ws.close()
        fast.task.cancel()
    finally:
        await stop_broker(broker)


async def test_client_stalled_past_the_timeout_is_disconnected() -> None:
    broker = await start_broker(queue_limit=4, stall_timeout_s=0.3)
    try:
        broker.hub.declare("wide", WIDE)
        slow = await stalled_client(broker, "wide")
        session = session_of(broker.hub, slow)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        seq = 0
        while not session.closing and loop.time() < deadline:
            broker.hub.publish("wide", make_block(seq, CAP, WIDE))
            seq += CAP
            await asyncio.sleep(0.02)  # paces the producer (~25 blocks/s), not a synchronisation
        assert session.closing, "stalled client was never disconnected"
        assert session.close_code == 1013
        assert broker.hub.stats.clients_disconnected_stalled == 1
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(slow.recv(), TIMEOUT)
        assert slow.close_code in (1013, 1006)
        await asyncio.wait_for(session.wait_closed(), TIMEOUT)
    finally:
        await stop_broker(broker)


async def test_fan_out_encodes_each_message_once_per_group(broker: Broker) -> None:
    broker.hub.declare("eeg", META)
    json_clients = [await broker.client() for _ in range(3)]
    binary_client = await broker.client()
    for ws in json_clients:
        await ws.send('{"subscribe": "eeg", "max_latency_ms": 0}')
        await recv_json(ws)
    await binary_client.send('{"subscribe": "eeg", "max_latency_ms": 0, "format": "binary"}')
    await recv_json(binary_client)
    before = broker.hub.stats.messages_encoded
    for i in range(10):
        broker.hub.publish("eeg", make_block(i * 5, 5))
    for ws in json_clients:
        seqs = [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["seq"] for _ in range(10)]
        assert seqs == list(range(0, 50, 5))
    frames = [await asyncio.wait_for(binary_client.recv(), TIMEOUT) for _ in range(10)]
    assert all(isinstance(f, bytes) for f in frames)
    assert broker.hub.stats.messages_encoded - before == 20  # 10 JSON + 10 binary, not 40
    for ws in [*json_clients, binary_client]:
        await ws.close()


async def test_a_failing_connection_never_affects_others(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker.hub.declare("eeg", META)
    healthy = await broker.client()
    await healthy.send('{"subscribe": "eeg", "max_latency_ms": 0}')
    await recv_json(healthy)

    # 1. a bug while taking a message during fan-out (the hub's side)
    victim = await broker.client()
    await victim.send('{"subscribe": "eeg", "max_latency_ms": 0}')
    await recv_json(victim)

    def explode(*args: object) -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(session_of(broker.hub, victim), "deliver", explode)
    broker.hub.publish("eeg", make_block(0, 2))
    assert json.loads(await asyncio.wait_for(healthy.recv(), TIMEOUT))["seq"] == 0
    await asyncio.wait_for(victim.wait_closed(), TIMEOUT)
    assert victim.close_code == 1011

    # 2. a bug in one connection's command handling (the handler's side)
    original = WsServer._on_message

    def on_message(self: WsServer, session: ClientSession, message: str | bytes) -> None:
        if message == '{"list_topics": true, "boom": 1}':
            raise RuntimeError("injected fault")
        original(self, session, message)

    monkeypatch.setattr(WsServer, "_on_message", on_message)
    crasher = await broker.client()
    await crasher.send('{"list_topics": true, "boom": 1}')
    await asyncio.wait_for(crasher.wait_closed(), TIMEOUT)
    assert crasher.close_code == 1011

    # 3. a client that vanishes mid-stream with a TCP reset
    vanisher = await broker.client()
    await vanisher.send('{"subscribe": "eeg", "max_latency_ms": 0}')
    await recv_json(vanisher)
    vanisher.transport.abort()

    # Others keep their data and new connections still upgrade (no HTTP 500 for anyone).
    for i in range(1, 6):
        broker.hub.publish("eeg", make_block(i * 2, 2))
    seqs = [json.loads(await asyncio.wait_for(healthy.recv(), TIMEOUT))["seq"] for _ in range(5)]
    assert seqs == [2, 4, 6, 8, 10]
    async with broker.client() as newcomer:
        await newcomer.send('{"subscribe": "eeg"}')
        assert (await recv_json(newcomer))["meta"]["units"] == "uV"
    await healthy.close()


class GatedConnection:
    """A connection whose sends complete only when the test lets them: a client's reads."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.reads = asyncio.Semaphore(0)
        self.changed = asyncio.Condition()
        self.closed: tuple[int, str] | None = None

    async def send(self, message: str | bytes) -> None:
        await self.reads.acquire()
        async with self.changed:
            self.sent.append(message)
            self.changed.notify_all()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    @property
    def transport(self) -> asyncio.Transport:
        raise AssertionError("a session that closes in time never aborts the transport")

    async def read(self, n: int = 1) -> None:
        """Let ``n`` more sends complete and wait until they have."""
        target = len(self.sent) + n
        for _ in range(n):
            self.reads.release()
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.sent) >= target), TIMEOUT)


async def test_a_client_that_lagged_once_and_keeps_up_is_not_closed() -> None:
    now = [0.0]
    conn = GatedConnection()
    session = ClientSession(
        conn,
        "lagged-once",
        queue_limit=4,
        stall_timeout_s=1.0,
        max_delay_s=0.5,
        clock=lambda: now[0],
    )
    sender = asyncio.create_task(session.run_sender())
    seq = 0

    def deliver() -> None:
        nonlocal seq
        payload = json.dumps({"topic": "eeg", "seq": seq, "data": [[0], [0]]})
        session.deliver(DataMessage("eeg", payload, 2))
        seq += 2

    # The client pauses: one message in flight, four queued, the next five are dropped.
    for _ in range(10):
        deliver()
        await asyncio.sleep(0)  # lets the sender take the first message
    assert session.messages_dropped == 5 and session.queued == 4
    # It reads again, exactly as fast as data arrives: two messages of backlog stay queued
    # for ever, but nothing is lost any more. Six stall timeouts later it is still connected.
    await conn.read(3)  # the in-flight message, the lagged notice, one queued message
    for _ in range(300):
        now[0] += 0.02
        deliver()
        await conn.read()
    assert not session.closing and conn.closed is None
    assert session.messages_dropped == 5
    messages = [json.loads(m) for m in conn.sent]
    assert messages[1] == {"lagged": 5, "samples": 10}
    seqs = [m["seq"] for m in messages if "seq" in m]
    assert seqs[:2] == [0, 12]  # the gap is exactly the samples the notice counts
    assert seqs[2:] == list(range(14, 14 + 2 * (len(seqs) - 2), 2))
    sender.cancel()


async def test_a_client_that_keeps_losing_data_is_closed_with_1013() -> None:
    now = [0.0]
    conn = GatedConnection()
    session = ClientSession(
        conn, "too-slow", queue_limit=64, stall_timeout_s=1.0, max_delay_s=0.5, clock=lambda: now[0]
    )
    sender = asyncio.create_task(session.run_sender())
    # Reads one message for every two that arrive: the backlog ages past max_delay_s, the
    # oldest are dropped, again and again; after the stall timeout of that, 1013.
    for step in range(400):
        now[0] += 0.01
        session.deliver(DataMessage("eeg", json.dumps({"seq": step}), 1))
        if step % 2:
            await conn.read()
        if session.closing:
            break
    await asyncio.wait_for(session.wait_closed(), TIMEOUT)
    assert conn.closed is not None and conn.closed[0] == 1013
    # At time t the oldest queued message arrived at t / 2, so drops begin at t = 1.0 s.
    assert session.messages_dropped > 0
    assert 1.0 + 1.0 < now[0] <= 1.0 + 1.0 + 0.1
    sender.cancel()
