"""WebSocket abuse from the LAN (on loopback), each against a real daemon with a healthy client.

The ``abuse_daemon`` fixture checks at teardown that none of this cost the healthy client a
sample. Clients whose reading the test must control are :class:`RawClient`: the websockets
protocol (sans I/O) over a plain socket with a tiny receive buffer, so "stops reading" means
the kernel stops taking data, as it does for a frozen browser tab.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.sync.client import connect
from websockets.typing import Origin
from websockets.uri import parse_uri

from tests.conftest import Daemon

TOPIC = "eeg_voltage"
WAIT_S = 30.0
TOKEN = "abuse-test-token"


class RawClient:
    """A WebSocket client whose socket reads happen only when the test calls :meth:`read`."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(WAIT_S)
        self.sock.connect(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws/data"), max_size=None)
        request = self.protocol.connect()
        for key, value in (headers or {}).items():
            request.headers[key] = value
        self.protocol.send_request(request)
        self._flush()
        self.response: Response | None = None
        self.eof = False
        while self.response is None:
            for event in self.read():
                assert isinstance(event, Response)
                self.response = event
        assert self.response.status_code == 101, self.response.status_code

    @property
    def peer(self) -> str:
        """How the daemon names this client in its log."""
        return f"127.0.0.1:{self.port}"

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self._flush()

    def read(self) -> list[Response | Frame]:
        """One socket read (blocks up to WAIT_S); answers pings; [] once the server is gone."""
        if self.eof:
            return []
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self.eof = True
            self.protocol.receive_eof()
        events = list(self.protocol.events_received())
        with contextlib.suppress(OSError):
            self._flush()
        return events  # type: ignore[return-value]

    def messages(self) -> list[dict[str, Any]]:
        """JSON text messages from one read."""
        return [
            json.loads(bytes(e.data))
            for e in self.read()
            if isinstance(e, Frame) and e.opcode is Opcode.TEXT
        ]

    def close(self) -> None:
        self.sock.close()


def healthz(d: Daemon, token: str | None = None) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{d.ws_port}/healthz")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=WAIT_S) as reply:
        body: dict[str, Any] = json.loads(reply.read())
    return body


def http_status(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=WAIT_S):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def subscribe(client: RawClient) -> None:
    client.send({"subscribe": TOPIC})
    while True:
        for message in client.messages():
            if message.get("subscribed") == TOPIC:
                assert message["meta"] is not None, message
                return
        assert not client.eof, "closed before the subscription was acknowledged"


class Reference:
    """A client that reads everything on a thread: the device's own gaps, seq by seq."""

    def __init__(self, port: int) -> None:
        self.client = RawClient(port)
        subscribe(self.client)
        self.runs: list[tuple[int, int]] = []
        self.lock = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set() and not self.client.eof:
            for message in self.client.messages():
                if message.get("topic") == TOPIC:
                    with self.lock:
                        self.runs.append((message["seq"], len(message["data"])))
                        self.lock.notify_all()

    def gaps_between(self, start: int, end: int) -> int:
        """Samples the stream itself lacked in [start, end)."""
        with self.lock:
            self.lock.wait_for(
                lambda: (bool(self.runs) and sum(self.runs[-1]) >= end) or self.client.eof,
                timeout=WAIT_S,
            )
            runs = list(self.runs)
        assert runs and runs[0][0] <= start and runs[-1][0] + runs[-1][1] >= end, "too short"
        have = sum(max(0, min(s + n, end) - max(s, start)) for s, n in runs)
        return end - start - have

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.client.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv
        self.thread.join(WAIT_S)
        self.client.close()


def test_a_client_that_never_reads_at_250_sps_is_closed_with_1013(
    abuse_daemon: Callable[..., Daemon],
) -> None:
    d = abuse_daemon()
    frozen = RawClient(d.ws_port)
    subscribe(frozen)
    # It never reads again. The broker keeps at most a second of its data plus a few KiB in
    # the socket, so it drops its oldest data, then closes it as too slow.
    d.wait_for_line(rf"client {frozen.peer} is lagging", timeout=WAIT_S)
    d.wait_for_line(rf"closing client {frozen.peer} with 1013", timeout=WAIT_S)
    d.wait_for_line(rf"client {frozen.peer} disconnected \(code 1013", timeout=WAIT_S)
    assert healthz(d)["stats"]["clients_disconnected_stalled"] == 1
    # What it finds when it finally reads: data, then the 1013 close frame, or, when it came
    # too late to take even that, a cut connection. Never another close code.
    while not frozen.eof:
        frozen.read()
    close = frozen.protocol.close_rcvd
    assert close is None or close.code == 1013, close
    frozen.close()


def test_a_client_that_pauses_then_reads_is_told_exactly_what_it_lost(
    abuse_daemon: Callable[..., Daemon],
) -> None:
    d = abuse_daemon()
    reference = Reference(d.ws_port)
    paused = RawClient(d.ws_port)
    subscribe(paused)
    runs: list[tuple[int, int]] = []
    notices: list[dict[str, Any]] = []
    try:
        for message in paused.messages():  # one read, then the client pauses
            if message.get("topic") == TOPIC:
                runs.append((message["seq"], len(message["data"])))
        d.wait_for_line(rf"client {paused.peer} is lagging", timeout=WAIT_S)
        # Reads again, as fast as it can, until a second of data after the notice.
        after_notice = 0
        while not notices or after_notice < 250:
            assert not paused.eof, "the paused client was closed instead of catching up"
            for message in paused.messages():
                if "lagged" in message:
                    notices.append(message)
                elif message.get("topic") == TOPIC:
                    runs.append((message["seq"], len(message["data"])))
                    after_notice += len(message["data"]) if notices else 0
        start, end = runs[0][0], runs[-1][0] + runs[-1][1]
        seen = sum(n for _, n in runs)
        contiguous = all(a[0] + a[1] <= b[0] for a, b in itertools.pairwise(runs))
        assert contiguous, runs
        lost = sum(n["samples"] for n in notices)
        assert lost > 0 and all(n["lagged"] > 0 for n in notices)
        # Every missing sample is either one the broker dropped for this client (and said so)
        # or one the stream itself lacked (the reference client lacks it too).
        assert end - start - seen == lost + reference.gaps_between(start, end)
    finally:
        paused.close()
        reference.close()


def test_one_host_cannot_hold_every_slot_with_idle_connections(
    abuse_daemon: Callable[..., Daemon],
) -> None:
    d = abuse_daemon(config={"websocket": {"max_clients_per_address": 4, "idle_timeout_s": 2}})
    with contextlib.ExitStack() as stack:
        # The healthy client is one of this address's four.
        idle = [stack.enter_context(connect(d.ws_url, open_timeout=WAIT_S)) for _ in range(3)]
        with pytest.raises(InvalidStatus) as refused:
            connect(d.ws_url, open_timeout=WAIT_S)
        assert refused.value.response.status_code == 503
        # Connections that subscribe to nothing give their slot back.
        for ws in idle:
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=WAIT_S)
            assert ws.close_code == 1008
            assert (ws.close_reason or "").startswith("no subscription for 2 s")
    d.wait_for_line(r"disconnected \(code 1008, no subscription", timeout=WAIT_S)
    with connect(d.ws_url, open_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"subscribe": TOPIC}))
        assert json.loads(ws.recv(timeout=WAIT_S))["subscribed"] == TOPIC


def test_many_latencies_share_a_few_groups(abuse_daemon: Callable[..., Daemon]) -> None:
    d = abuse_daemon()
    granted = set()
    with contextlib.ExitStack() as stack:
        for i in range(20):
            ws = stack.enter_context(connect(d.ws_url, open_timeout=WAIT_S))
            ws.send(json.dumps({"subscribe": TOPIC, "max_latency_ms": 3.7 + 41.3 * i}))
            ack = json.loads(ws.recv(timeout=WAIT_S))
            granted.add(ack["max_latency_ms"])
    # 20 different wishes, a handful of groups: one encode per group and message.
    assert granted == {0.0, 20.0, 50.0, 100.0, 200.0, 500.0}, granted


def test_token_origin_and_host_are_enforced_on_the_daemon(
    abuse_daemon: Callable[..., Daemon],
) -> None:
    d = abuse_daemon(config={"grpc": {"token": TOKEN}}, token=TOKEN)
    with pytest.raises(InvalidStatus) as missing:
        connect(d.ws_url, open_timeout=WAIT_S)
    assert missing.value.response.status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with connect(d.ws_url, additional_headers=bearer, open_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"subscribe": TOPIC}))
        assert json.loads(ws.recv(timeout=WAIT_S))["subscribed"] == TOPIC
    with pytest.raises(InvalidStatus) as foreign:
        connect(
            d.ws_url,
            additional_headers=bearer,
            origin=Origin("http://evil.example"),
            open_timeout=WAIT_S,
        )
    assert foreign.value.response.status_code == 403
    base = f"http://127.0.0.1:{d.ws_port}"
    assert http_status(base + "/healthz", {}) == 401
    assert http_status(base + "/healthz", bearer) == 200
    assert http_status(base + "/", {}) == 200
    rebound = {"Host": f"evil.example:{d.ws_port}", **bearer}
    assert http_status(base + "/", rebound) == 403
    assert all(TOKEN not in line for line in d.lines)
