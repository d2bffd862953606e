"""The WebSocket server: ``/ws/data`` for subscribers, ``GET /`` for the viewer, ``/healthz``.

One port serves everything so a browser on the LAN needs nothing but the Pi's address. The HTTP
side answers in ``process_request`` before any upgrade: static viewer files, a JSON health
record, 403 for an Origin outside the allow-list, 503 beyond ``max_clients``. Each connection
runs in its own handler; any failure there is logged with the peer and closes that connection
only (1011), never the listener or other clients.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import http
import json
import logging
import time
from collections.abc import Sequence
from importlib import resources
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from eegpi.broker.commands import (
    CommandError,
    ListTopics,
    Subscribe,
    Unsubscribe,
    parse_command,
)
from eegpi.broker.hub import TopicHub
from eegpi.broker.session import CLOSE_INTERNAL_ERROR, CLOSE_POLICY_VIOLATION, ClientSession

__all__ = [
    "DATA_PATH",
    "MAX_MESSAGE_BYTES",
    "WsServer",
    "start_ws_server",
]

log = logging.getLogger("eegpi.broker")

DATA_PATH = "/ws/data"
MAX_MESSAGE_BYTES = 16 * 1024
"""Larger client messages get a ``message_too_large`` error (the connection stays open)."""
HARD_MAX_MESSAGE_BYTES = 4 * MAX_MESSAGE_BYTES
"""Larger frames are refused by the protocol layer, which closes with 1009."""
COMMANDS_PER_SECOND = 20.0
COMMAND_BURST = 40
"""Token bucket per connection: commands beyond it get ``rate_limited``."""
FLOOD_LIMIT = 200
"""Refused commands in a row after which the connection is closed with 1008."""

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
    "/viewer.css": ("viewer.css", "text/css; charset=utf-8"),
}


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Read the viewer files shipped in ``eegpi.web`` once, at server start."""
    package = resources.files("eegpi.web")
    return {
        path: (package.joinpath(name).read_bytes(), content_type)
        for path, (name, content_type) in _STATIC.items()
    }


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _text(status: http.HTTPStatus, text: str) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8")


def _peer(conn: ServerConnection) -> str:
    address = conn.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)


class _TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class WsServer:
    """A running WebSocket server; ``port`` is the bound port."""

    def __init__(
        self,
        hub: TopicHub,
        *,
        allowed_origins: Sequence[str] | None,
        max_clients: int,
    ) -> None:
        self.hub = hub
        self.port = 0
        self._allowed = None if allowed_origins is None else frozenset(allowed_origins)
        self._max_clients = max_clients
        self._admitted: set[ServerConnection] = set()
        self._static = _load_static()
        self._server: Server | None = None

    def close(self) -> None:
        """Stop accepting and close every client with 1001 (idempotent)."""
        if self._server is not None:
            self._server.close()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    async def _start(self, host: str, port: int) -> None:
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            compression=None,  # many small messages; deflate costs CPU and ~64 KiB per client
            server_header=None,
            max_size=HARD_MAX_MESSAGE_BYTES,
            max_queue=8,
            ping_interval=10,
            ping_timeout=10,
            open_timeout=5,
            close_timeout=5,
            logger=logging.getLogger("eegpi.broker.websockets"),
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    # ---- HTTP side -----------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        try:
            return self._route(conn, request)
        except Exception:
            log.exception("request %s from %s failed", request.path[:200], _peer(conn))
            return _text(http.HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")

    def _route(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == DATA_PATH:
            return self._admit(conn, request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return _text(http.HTTPStatus.NOT_FOUND, f"WebSocket endpoint is {DATA_PATH}\n")
        if path == "/healthz":
            body = {
                "status": "ok",
                "clients": self.hub.client_count,
                "topics": self.hub.subscriber_counts(),
                "stats": dataclasses.asdict(self.hub.stats),
            }
            return _response(
                http.HTTPStatus.OK, json.dumps(body).encode(), "application/json; charset=utf-8"
            )
        static = self._static.get(path)
        if static is not None:
            return _response(http.HTTPStatus.OK, *static)
        return _text(http.HTTPStatus.NOT_FOUND, f"not found: {path[:200]}; try / or {DATA_PATH}\n")

    def _admit(self, conn: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if not self._origin_allowed(origin, request.headers.get("Host")):
            log.warning("refused %s: origin %r is not allowed", _peer(conn), origin)
            return _text(
                http.HTTPStatus.FORBIDDEN,
                f"origin {origin!r} is not in the allowed origins of this eegpi\n",
            )
        if len(self._admitted) >= self._max_clients:
            log.warning("refused %s: %d clients already connected", _peer(conn), self._max_clients)
            return _text(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"too many clients (limit {self._max_clients}); try again later\n",
            )
        self._admitted.add(conn)
        conn.connection_lost_waiter.add_done_callback(lambda _: self._admitted.discard(conn))
        return None

    def _origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """No allow-list: anyone. Otherwise listed origins, the page's own origin, or none."""
        if self._allowed is None or origin is None:
            # Clients without Origin are not browsers; they could forge any header anyway.
            return True
        if origin in self._allowed:
            return True
        return host is not None and urlsplit(origin).netloc == host

    # ---- WebSocket side ------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        peer = _peer(conn)
        session = ClientSession(
            conn,
            peer,
            queue_limit=self.hub.queue_limit,
            stall_timeout_s=self.hub.stall_timeout_s,
            stats=self.hub.stats,
        )
        origin = conn.request.headers.get("Origin") if conn.request is not None else None
        log.info("client %s connected (origin %s)", peer, origin or "none")
        self.hub.attach(session)
        sender = asyncio.create_task(session.run_sender(), name=f"ws-sender {peer}")
        bucket = _TokenBucket(COMMANDS_PER_SECOND, COMMAND_BURST)
        refused_in_row = 0
        try:
            async for message in conn:
                if session.closing:
                    break
                if not bucket.take():
                    refused_in_row += 1
                    if refused_in_row >= FLOOD_LIMIT:
                        session.disconnect(CLOSE_POLICY_VIOLATION, "command flood")
                        break
                    session.notify(
                        CommandError(
                            "rate_limited",
                            f"more than {COMMANDS_PER_SECOND:g} commands per second; "
                            "this one was ignored",
                        ).to_json()
                    )
                    continue
                refused_in_row = 0
                self._on_message(session, message)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("connection %s failed", peer)
            session.disconnect(CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            self.hub.detach(session)
            await session.wait_closed()
            sender.cancel()
            log.info(
                "client %s disconnected (code %s%s): %d messages sent, %d dropped",
                peer,
                session.close_code or conn.close_code,
                f", {session.close_reason}" if session.close_reason else "",
                session.messages_sent,
                session.messages_dropped,
            )

    def _on_message(self, session: ClientSession, message: str | bytes) -> None:
        try:
            if isinstance(message, bytes):
                raise CommandError(
                    "bad_request", "commands are JSON text messages, got a binary message"
                )
            if len(message) > MAX_MESSAGE_BYTES or len(message.encode()) > MAX_MESSAGE_BYTES:
                raise CommandError(
                    "message_too_large",
                    f"message of {len(message.encode())} bytes exceeds {MAX_MESSAGE_BYTES}",
                )
            command = parse_command(message)
            if isinstance(command, Subscribe):
                self.hub.subscribe(session, command)
            elif isinstance(command, Unsubscribe):
                self.hub.unsubscribe(session, command.topic)
            elif isinstance(command, ListTopics):
                session.notify(self.hub.list_topics_message())
        except CommandError as exc:
            session.notify(exc.to_json())


async def start_ws_server(
    hub: TopicHub,
    host: str,
    port: int,
    *,
    allowed_origins: Sequence[str] | None = None,
    max_clients: int = 64,
) -> WsServer:
    """Listen on ``host:port`` (port 0 picks a free one) and serve the hub's topics.

    Args:
        allowed_origins: browser origins (e.g. ``"http://eegpi.local:9001"``) allowed to open
            ``/ws/data``; the viewer's own origin is always allowed. None allows every origin.
        max_clients: WebSocket connections beyond this get HTTP 503.
    """
    if max_clients < 1:
        raise ValueError(f"max_clients must be at least 1, got {max_clients}")
    server = WsServer(hub, allowed_origins=allowed_origins, max_clients=max_clients)
    await server._start(host, port)
    log.info(
        "websocket server listening on %s:%d (viewer at /, data at %s)",
        host,
        server.port,
        DATA_PATH,
    )
    return server
