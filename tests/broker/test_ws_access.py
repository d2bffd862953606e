"""Who may connect: Origin, Host (DNS rebinding), the token, per-address caps, idle sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from eegpi.broker import TopicHub, WsServer, start_ws_server
from eegpi.broker.access import HostNames, bearer_subprotocol, split_host
from eegpi.broker.commands import LATENCY_STEPS_MS
from eegpi.daemon.config import WebSocketConfig, load_config
from eegpi.exc import ConfigError

from .conftest import META, TIMEOUT, make_block, recv_json, recv_until
from .test_ws_protocol import http_get

TOKEN = "s3cret-tøken with spaces"


@pytest.fixture
async def servers() -> AsyncIterator[list[WsServer]]:
    """Servers a test starts; closed at the end."""
    started: list[WsServer] = []
    yield started
    for server in started:
        await server.hub.close()
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)


async def serve(started: list[WsServer], **kwargs: Any) -> WsServer:
    server = await start_ws_server(TopicHub(), "127.0.0.1", 0, **kwargs)
    started.append(server)
    return server


def url(server: WsServer) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/data"


async def status_of(server: WsServer, **kwargs: Any) -> int:
    """HTTP status of an upgrade to /ws/data (101 when it opens)."""
    try:
        async with connect(url(server), open_timeout=TIMEOUT, **kwargs):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_a_foreign_origin_is_refused_by_default(servers: list[WsServer]) -> None:
    server = await serve(servers)
    port = server.port
    assert await status_of(server) == 101  # no Origin: not a browser
    assert await status_of(server, origin=Origin(f"http://127.0.0.1:{port}")) == 101
    assert await status_of(server, origin=Origin(f"http://localhost:{port}")) == 101
    assert await status_of(server, origin=Origin(f"http://{socket.gethostname()}:{port}")) == 101
    for foreign in (
        "http://evil.example",
        f"http://evil.example:{port}",
        f"http://127.0.0.1:{port + 1}",  # another service on the same machine
        "null",  # sandboxed frames and file:// pages
    ):
        assert await status_of(server, origin=Origin(foreign)) == 403, foreign


async def test_allowed_origins_extend_the_default(servers: list[WsServer]) -> None:
    listed = await serve(servers, allowed_origins=["http://lab-portal.example:8080"])
    assert await status_of(listed, origin=Origin("http://lab-portal.example:8080")) == 101
    assert await status_of(listed, origin=Origin("http://other.example:8080")) == 403
    anyone = await serve(servers, allowed_origins=["*"])
    assert await status_of(anyone, origin=Origin("http://other.example:8080")) == 101


async def test_a_rebound_host_is_refused_on_every_path(servers: list[WsServer]) -> None:
    server = await serve(servers)
    port = server.port
    # A page at http://evil.example:PORT whose name now resolves to the appliance sends its own
    # name as Host and as Origin: the Origin looks like the page's own, the Host gives it away.
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    base = f"http://127.0.0.1:{port}"
    for path in ("/", "/viewer.js", "/healthz", "/ws/data", "/nope"):
        status, _, body = await asyncio.to_thread(http_get, base + path, rebound)
        assert status == 403 and "allowed_hosts" in body, (path, status, body)
    assert await status_via(server, "evil.example", f"http://evil.example:{port}") == 403
    # A second Host header (the client adds its own): refused, never guessed at.
    assert await status_of(server, additional_headers={"Host": "evil.example"}) == 400
    for ours in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", socket.gethostname()):
        status, _, _ = await asyncio.to_thread(http_get, base + "/", {"Host": ours})
        assert status == 200, ours

    alias = await serve(servers, allowed_hosts=["eeg-lab.example"])
    named = {"Host": f"eeg-lab.example:{alias.port}"}
    status, _, _ = await asyncio.to_thread(http_get, f"http://127.0.0.1:{alias.port}/", named)
    assert status == 200
    origin = f"http://eeg-lab.example:{alias.port}"
    assert await status_via(alias, "eeg-lab.example", origin) == 101


async def status_via(server: WsServer, name: str, origin: str) -> int:
    """Upgrade status when the client reaches 127.0.0.1 under another name (Host: name)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        async with connect(
            f"ws://{name}:{server.port}/ws/data",
            sock=sock,
            origin=Origin(origin),
            open_timeout=TIMEOUT,
        ):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code
    finally:
        sock.close()


def test_host_names_and_host_headers() -> None:
    assert split_host("Eegpi.Local.:9001") == ("eegpi.local", 9001)
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("::1") == ("::1", None)
    names = HostNames("0.0.0.0", frozenset({"alias.example"}))
    for ours in ("localhost", "127.0.0.1", "127.0.1.1", "::1", "0:0::1", "alias.example"):
        assert names.allows(ours), ours
    assert names.allows(socket.gethostname().lower())
    assert names.allows(f"{socket.gethostname().lower()}.local")
    assert not names.allows("evil.example")
    assert not names.allows("203.0.113.7")


async def test_a_configured_token_is_required_and_never_logged(
    servers: list[WsServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await serve(servers, token=TOKEN)
    server.hub.declare("eeg", META)

    with pytest.raises(InvalidStatus) as missing:
        await connect(url(server), open_timeout=TIMEOUT)
    assert missing.value.response.status_code == 401
    assert missing.value.response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"Authorization: Bearer" in missing.value.response.body
    for wrong in ({"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        assert await status_of(server, additional_headers=wrong) == 401
    assert await status_of(server, subprotocols=[Subprotocol(bearer_subprotocol("nope"))]) == 401

    # A program: the Authorization header.
    async with connect(
        url(server), additional_headers={"Authorization": f"Bearer {TOKEN}"}, open_timeout=TIMEOUT
    ) as ws:
        await ws.send('{"subscribe": "eeg"}')
        assert (await recv_json(ws))["subscribed"] == "eeg"

    # A browser: the token rides in an offered subprotocol; the server selects eegpi.v1 only.
    offered = [Subprotocol(bearer_subprotocol(TOKEN)), Subprotocol("eegpi.v1")]
    async with connect(url(server), subprotocols=offered, open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == "eegpi.v1"
        assert ws.response is not None
        assert ws.response.headers.get_all("Sec-WebSocket-Protocol") == ["eegpi.v1"]
        await ws.send('{"subscribe": "eeg", "max_latency_ms": 0}')
        await recv_json(ws)
        server.hub.publish("eeg", make_block(0, 2))
        assert (await recv_until(ws, lambda m: "data" in m))["seq"] == 0

    base = f"http://127.0.0.1:{server.port}"
    assert (await asyncio.to_thread(http_get, base + "/healthz"))[0] == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await asyncio.to_thread(http_get, base + "/healthz", auth))[0] == 200
    assert (await asyncio.to_thread(http_get, base + "/"))[0] == 200  # the page holds no data

    encoded = base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("=")
    server_records = [r for r in caplog.records if r.name.startswith("eegpi")]
    assert any(r.getMessage().startswith("< Authorization") for r in server_records)
    for record in server_records:  # the server's own lines and the library's, at debug level
        text = record.getMessage()
        assert TOKEN not in text and encoded not in text, text
    assert any("no token given" in r.getMessage() for r in caplog.records)


async def test_one_address_cannot_take_every_slot(servers: list[WsServer]) -> None:
    server = await serve(servers, max_clients=8, max_clients_per_address=3)
    clients = [await connect(url(server), open_timeout=TIMEOUT) for _ in range(3)]
    with pytest.raises(InvalidStatus) as refused:
        await connect(url(server), open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 503
    assert b"max_clients_per_address" in refused.value.response.body
    # The cap is per address: 127.0.0.2 is another host as far as the server can tell.
    sock = socket.create_connection(("127.0.0.1", server.port), source_address=("127.0.0.2", 0))
    async with connect(url(server), sock=sock, open_timeout=TIMEOUT) as other:
        await other.send('{"list_topics": true}')
        assert "topics" in await recv_json(other)
    await clients[0].close()
    await clients[0].wait_closed()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:  # the slot frees when the server sees the TCP close
        try:
            clients[0] = await connect(url(server), open_timeout=TIMEOUT)
            break
        except InvalidStatus:
            assert loop.time() < deadline, "slot was not released"
            await asyncio.sleep(0.02)
    for ws in clients:
        await ws.close()


async def wait_closed(ws: ClientConnection) -> None:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)


async def test_a_connection_without_subscriptions_is_closed_after_the_idle_timeout(
    servers: list[WsServer],
) -> None:
    server = await serve(servers, idle_timeout_s=0.5)
    server.hub.declare("eeg", META)
    subscribed = await connect(url(server), open_timeout=TIMEOUT)
    await subscribed.send('{"subscribe": "eeg"}')
    await recv_json(subscribed)
    idle = await connect(url(server), open_timeout=TIMEOUT)
    await idle.send('{"list_topics": true}')  # commands alone do not keep a slot
    await recv_json(idle)
    await wait_closed(idle)
    assert idle.close_code == 1008
    assert (idle.close_reason or "").startswith("no subscription for 0.5 s")
    # The sweep that closed the idle one left the subscriber alone; leaving its last
    # subscription starts the clock for it too.
    assert subscribed.close_code is None
    await subscribed.send('{"unsubscribe": "eeg"}')
    await recv_json(subscribed)
    await wait_closed(subscribed)
    assert subscribed.close_code == 1008


async def test_latency_is_rounded_down_to_a_few_steps(servers: list[WsServer]) -> None:
    server = await serve(servers, max_clients=64, max_clients_per_address=64)
    hub = server.hub
    hub.declare("eeg", META)
    rng = random.Random(12)
    clients = []
    for _ in range(60):
        ws = await connect(url(server), open_timeout=TIMEOUT)
        asked = rng.choice([rng.uniform(0, 1000), rng.randint(0, 1000)])
        await ws.send(json.dumps({"subscribe": "eeg", "max_latency_ms": asked}))
        ack = await recv_json(ws)
        granted = ack["max_latency_ms"]
        assert granted in LATENCY_STEPS_MS and granted <= asked
        assert granted == max(step for step in LATENCY_STEPS_MS if step <= asked)
        clients.append(ws)

    # One sample leaves once per group: the encodes are bounded by the steps, not the clients.
    before = hub.stats.messages_encoded
    hub.publish("eeg", make_block(0, 1))
    for ws in clients:
        assert (await recv_until(ws, lambda m: "data" in m, timeout=TIMEOUT))["seq"] == 0
    encodes = hub.stats.messages_encoded - before
    assert encodes <= len(LATENCY_STEPS_MS), encodes
    for ws in clients:
        await ws.close()


async def test_list_topics_names_running_topics_only_once(servers: list[WsServer]) -> None:
    server = await serve(servers)
    server.hub.set_expected_topics(["eeg_filtered", "eeg_voltage"])
    server.hub.declare("eeg_voltage", META)
    async with connect(url(server), open_timeout=TIMEOUT) as ws:
        await ws.send('{"subscribe": "later"}')  # refused: not published by a loaded pipeline
        await recv_json(ws)
        await ws.send('{"list_topics": true}')
        reply = await recv_json(ws)
    assert [t["name"] for t in reply["topics"]] == ["eeg_voltage"]
    assert reply["pending"] == ["eeg_filtered"]


def test_websocket_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "eegpi.yaml"
    path.write_text(
        "websocket:\n"
        "  allowed_origins: ['http://lab-portal:8080']\n"
        "  allowed_hosts: [eeg-lab.example]\n"
        "  max_clients_per_address: 4\n"
        "  idle_timeout_s: 5\n"
    )
    ws = load_config(path).websocket
    assert ws.allowed_origins == ("http://lab-portal:8080",)
    assert ws.allowed_hosts == ("eeg-lab.example",)
    assert (ws.max_clients_per_address, ws.idle_timeout_s) == (4, 5.0)
    assert WebSocketConfig().max_clients_per_address == 32
    path.write_text("websocket:\n  idle_timeout_s: 0\n")
    with pytest.raises(ConfigError, match="idle_timeout_s must be positive"):
        load_config(path)
    path.write_text("websocket:\n  max_clients_per_address: 0\n")
    with pytest.raises(ConfigError, match="max_clients_per_address"):
        load_config(path)
