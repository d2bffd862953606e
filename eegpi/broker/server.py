"""The WebSocket server: ``/ws/data`` for subscribers, ``GET /`` for the viewer, ``/healthz``.

One port serves everything so a browser on the LAN needs nothing but the Pi's address.
``/recordings/`` lists and sends the recorder's files (:mod:`eegpi.recording.http`) under the
same Origin and token rules as ``/ws/data``. The HTTP
side answers in ``process_request`` before any upgrade: static viewer files, a JSON health
record, 403 for a Host or Origin that is not this appliance's (:mod:`eegpi.broker.access`), 401
without the configured token, 503 beyond ``max_clients`` or ``max_clients_per_address``. A
connection that holds no subscription for ``idle_timeout_s`` is closed (1008), so idle sockets
cannot keep the slots. Each connection runs in its own handler; any failure there is logged
with the peer and closes that connection only (1011), never the listener or other clients.

What may sit unsent below a client's queue is bounded (``TCP_NOTSENT_LOWAT`` on the socket, a
small transport write limit): without that, kernel buffers absorb a minute of a 250 SPS stream
for a client that stopped reading, and the queue, which counts losses and tells the client,
never sees the backlog.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import http
import json
import logging
import socket
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import PurePosixPath
from typing import Any, Protocol
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from eegpi.broker.access import SUBPROTOCOL, AccessPolicy, Refusal
from eegpi.broker.commands import (
    CommandError,
    GetParams,
    ListTopics,
    Mark,
    Subscribe,
    Unsubscribe,
    UpdateStage,
    parse_command,
)
from eegpi.broker.hub import TopicHub
from eegpi.broker.session import CLOSE_INTERNAL_ERROR, CLOSE_POLICY_VIOLATION, ClientSession
from eegpi.broker.wire import DirectWriter
from eegpi.exc import EegpiError
from eegpi.recording import http as recordings_http

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
SEND_LOWAT_BYTES = 8 * 1024
"""Unsent bytes the kernel may hold for a client (``TCP_NOTSENT_LOWAT``); not in-flight ones."""
WRITE_LIMIT = (8 * 1024, 2 * 1024)
"""High and low water marks of the transport's own buffer; above high, a send waits."""

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
"""Viewer files served by suffix; browsers run ES modules only with a JavaScript type."""


class _NoSecrets(logging.Filter):
    """Keeps credentials and query strings out of the websockets library's debug lines.

    At debug level the library logs every request line and header; a token travels in
    ``Authorization`` or ``Sec-WebSocket-Protocol`` and a query string may hold anything.
    """

    _SECRET_HEADERS = frozenset({"authorization", "sec-websocket-protocol", "cookie"})

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or not args:
            return True
        if record.msg == "< %s: %s" and str(args[0]).lower() in self._SECRET_HEADERS:
            record.args = (args[0], "<redacted>")
        elif record.msg == "< %s %s %s" and len(args) == 3:
            record.args = (args[0], urlsplit(str(args[1])).path, args[2])
        return True


_LIBRARY_LOG = logging.getLogger("eegpi.broker.websockets")
_LIBRARY_LOG.addFilter(_NoSecrets())


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Read the viewer files shipped in ``eegpi.web`` once, at server start.

    Every file of a known type is served under its own name, so the page's modules need no
    list here; ``/`` is ``index.html``.
    """
    files: dict[str, tuple[bytes, str]] = {}
    for item in resources.files("eegpi.web").iterdir():
        content_type = _CONTENT_TYPES.get(PurePosixPath(item.name).suffix)
        if content_type is not None and item.is_file():
            files["/" + item.name] = (item.read_bytes(), content_type)
    files["/"] = files["/index.html"]
    return files


def _response(
    status: http.HTTPStatus,
    body: bytes,
    content_type: str,
    extra: Sequence[tuple[str, str]] = (),
) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            *extra,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _text(status: http.HTTPStatus, text: str) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8")


def _refused(conn: ServerConnection, path: str, refusal: Refusal) -> Response:
    log.warning("refused %s %s: %s", _peer(conn), path[:100], refusal.log)
    return _response(
        refusal.status, refusal.message.encode(), "text/plain; charset=utf-8", refusal.headers
    )


def _address(conn: ServerConnection) -> str:
    address = conn.remote_address
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


def _select_subprotocol(
    conn: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """``eegpi.v1`` when offered (a browser carrying a token must); never the bearer offer."""
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


def _bound_send_buffer(conn: ServerConnection) -> None:
    """Keep unsent data out of the kernel, where the broker could not count it as lag."""
    sock = conn.transport.get_extra_info("socket")
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if sock is None or option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, SEND_LOWAT_BYTES)
    except OSError as exc:
        log.debug("cannot bound the send buffer of %s: %s", _peer(conn), exc)


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
        policy: AccessPolicy,
        max_clients: int,
        max_clients_per_address: int,
        idle_timeout_s: float,
    ) -> None:
        self.hub = hub
        self.port = 0
        self.policy = policy
        self._max_clients = max_clients
        self._max_per_address = max_clients_per_address
        self._idle_timeout_s = idle_timeout_s
        self._admitted: set[ServerConnection] = set()
        self._sessions: set[ClientSession] = set()
        self._static = _load_static()
        self._server: Server | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self.post_marker: MarkerPoster | None = None
        """Places ``{"marker": ...}`` commands (the daemon sets it; None refuses them)."""
        self.stage_control: StageControl | None = None
        """Answers ``get_params`` and ``update_stage`` (the daemon sets it; None refuses them)."""
        self._updating: dict[ClientSession, int] = {}
        """``update_stage`` commands in flight per connection."""
        self._update_tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        """Stop accepting and close every client with 1001 (idempotent)."""
        if self._idle_task is not None:
            self._idle_task.cancel()
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
            select_subprotocol=_select_subprotocol,
            write_limit=WRITE_LIMIT,
            max_size=HARD_MAX_MESSAGE_BYTES,
            max_queue=8,
            ping_interval=10,
            ping_timeout=10,
            open_timeout=5,
            close_timeout=5,
            logger=_LIBRARY_LOG,
        )
        self.port = self.policy.port = int(self._server.sockets[0].getsockname()[1])
        self._idle_task = asyncio.create_task(self._close_idle(), name="ws-idle-sweep")

    async def _close_idle(self) -> None:
        """Close connections that held no subscription for the idle timeout."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self._idle_timeout_s / 4))  # a sweep period, no sync
            now = loop.time()
            for session in list(self._sessions):
                since = session.idle_since
                if since is not None and now - since >= self._idle_timeout_s:
                    session.disconnect(
                        CLOSE_POLICY_VIOLATION,
                        f"no subscription for {self._idle_timeout_s:g} s; subscribe to a topic "
                        "or disconnect",
                    )

    # ---- HTTP side -----------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        try:
            return self._route(conn, request)
        except Exception:
            path = urlsplit(request.path).path  # never the query string: it may carry secrets
            log.exception("request %s from %s failed", path[:200], _peer(conn))
            return _text(http.HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")

    def _route(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        refusal = self.policy.check_host(request.headers)
        if refusal is not None:
            return _refused(conn, path, refusal)
        if path == DATA_PATH:
            return self._admit(conn, request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return _text(http.HTTPStatus.NOT_FOUND, f"WebSocket endpoint is {DATA_PATH}\n")
        if path == "/healthz":
            refusal = self.policy.check_token(request.headers)
            if refusal is not None:
                return _refused(conn, path, refusal)
            body = {
                "status": "ok",
                "clients": self.hub.client_count,
                "topics": self.hub.subscriber_counts(),
                "stats": dataclasses.asdict(self.hub.stats),
            }
            return _response(
                http.HTTPStatus.OK, json.dumps(body).encode(), "application/json; charset=utf-8"
            )
        if path == recordings_http.PREFIX or path.startswith(recordings_http.PREFIX + "/"):
            refusal = self.policy.check_origin(request.headers) or self.policy.check_token(
                request.headers
            )
            if refusal is not None:
                return _refused(conn, path, refusal)
            found = recordings_http.answer(path, request.headers.get("Range"))
            return _response(found.status, found.body, found.content_type, found.headers)
        static = self._static.get(path)
        if static is not None:
            return _response(http.HTTPStatus.OK, *static)
        return _text(http.HTTPStatus.NOT_FOUND, f"not found: {path[:200]}; try / or {DATA_PATH}\n")

    def _admit(self, conn: ServerConnection, request: Request) -> Response | None:
        refusal = self.policy.check_origin(request.headers) or self.policy.check_token(
            request.headers
        )
        if refusal is not None:
            return _refused(conn, DATA_PATH, refusal)
        if len(self._admitted) >= self._max_clients:
            log.warning("refused %s: %d clients already connected", _peer(conn), self._max_clients)
            return _text(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"too many clients (limit {self._max_clients}); try again later\n",
            )
        address = _address(conn)
        mine = sum(1 for other in self._admitted if _address(other) == address)
        if mine >= self._max_per_address:
            log.warning(
                "refused %s: %d clients already connected from %s",
                _peer(conn),
                self._max_per_address,
                address,
            )
            return _text(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"too many clients from {address} (limit {self._max_per_address}); close some "
                "or raise websocket.max_clients_per_address\n",
            )
        self._admitted.add(conn)
        conn.connection_lost_waiter.add_done_callback(lambda _: self._admitted.discard(conn))
        return None

    # ---- WebSocket side ------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        peer = _peer(conn)
        _bound_send_buffer(conn)
        session = ClientSession(
            conn,
            peer,
            queue_limit=self.hub.queue_limit,
            stall_timeout_s=self.hub.stall_timeout_s,
            stats=self.hub.stats,
            write_now=DirectWriter(conn, low_water=WRITE_LIMIT[1]),
        )
        origin = conn.request.headers.get("Origin") if conn.request is not None else None
        log.info("client %s connected (origin %s)", peer, (origin or "none")[:100])
        self.hub.attach(session)
        self._sessions.add(session)
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
            self._sessions.discard(session)
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

    def _mark(self, command: Mark) -> dict[str, Any]:
        if self.post_marker is None:
            raise _marker_refused("this server takes no markers")
        try:
            return self.post_marker(command.pipeline, command.label, command.time)
        except (EegpiError, ValueError) as exc:
            raise _marker_refused(str(exc)) from None

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
            elif isinstance(command, Mark):
                session.notify({"marker": self._mark(command)})
            elif isinstance(command, GetParams):
                session.notify({"params": self._get_params(command)})
            elif isinstance(command, UpdateStage):
                self._begin_update(session, command)
        except CommandError as exc:
            session.notify(exc.to_json())

    def _get_params(self, command: GetParams) -> dict[str, Any]:
        if self.stage_control is None:
            raise CommandError("params_refused", "this server has no pipelines")
        try:
            return self.stage_control.get_params(command.pipeline)
        except (EegpiError, ValueError) as exc:
            raise CommandError("params_refused", str(exc)) from None

    def _begin_update(self, session: ClientSession, command: UpdateStage) -> None:
        """Run the change off this handler (it waits for the pipeline thread); the reply
        comes when it applied, or was refused."""
        control = self.stage_control
        if control is None:
            raise CommandError("update_refused", "this server has no pipelines")
        if self._updating.get(session, 0) >= MAX_UPDATES_IN_FLIGHT:
            raise CommandError(
                "update_refused",
                f"{MAX_UPDATES_IN_FLIGHT} changes already wait for their replies; wait for them",
            )
        self._updating[session] = self._updating.get(session, 0) + 1
        task = asyncio.create_task(self._update(session, control, command))
        self._update_tasks.add(task)
        task.add_done_callback(self._update_tasks.discard)

    async def _update(
        self, session: ClientSession, control: StageControl, command: UpdateStage
    ) -> None:
        try:
            result = await control.update_stage(command.pipeline, command.stage, command.params)
        except (EegpiError, ValueError, TimeoutError) as exc:
            session.notify(CommandError("update_refused", str(exc)).to_json())
        except Exception as exc:
            log.exception("update_stage from %s failed", session.peer)
            session.notify(
                CommandError("update_refused", f"internal error: {type(exc).__name__}").to_json()
            )
        else:
            session.notify({"stage_updated": result})
        finally:
            left = self._updating.get(session, 1) - 1
            if left:
                self._updating[session] = left
            else:
                self._updating.pop(session, None)


def _marker_refused(message: str) -> CommandError:
    return CommandError("marker_refused", message)


MarkerPoster = Callable[[str, str, float | None], dict[str, Any]]
"""(pipeline, label, time) -> the placed marker as JSON fields; raises EegpiError or
ValueError with a message for the client."""

MAX_UPDATES_IN_FLIGHT = 4
"""``update_stage`` commands one connection may have waiting for their replies."""


class StageControl(Protocol):
    """What ``get_params`` and ``update_stage`` call; errors are EegpiError, ValueError or
    TimeoutError with a message for the client."""

    def get_params(self, pipeline: str) -> dict[str, Any]:
        """``{"pipeline": P, "running": bool, "stages": [{"name", "type", "params", "live"}]}``."""

    async def update_stage(
        self, pipeline: str, stage: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """``{"pipeline", "stage", "params"}``: every param of the stage after the change."""


async def start_ws_server(
    hub: TopicHub,
    host: str,
    port: int,
    *,
    allowed_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    token: str | None = None,
    max_clients: int = 64,
    max_clients_per_address: int = 32,
    idle_timeout_s: float = 60.0,
) -> WsServer:
    """Listen on ``host:port`` (port 0 picks a free one) and serve the hub's topics.

    Args:
        allowed_origins: browser origins (e.g. ``"http://lab-portal:8080"``) allowed to open
            ``/ws/data`` besides the viewer's own; ``"*"`` allows every origin.
        allowed_hosts: names the appliance answers to besides its loopback names, hostname,
            ``hostname.local`` and interface addresses (e.g. a DNS alias); ``"*"`` allows any.
        token: required on ``/ws/data`` and ``/healthz`` when set (see eegpi.broker.access).
        max_clients: WebSocket connections beyond this get HTTP 503.
        max_clients_per_address: connections from one IP address beyond this get HTTP 503.
        idle_timeout_s: a connection holding no subscription this long is closed with 1008.
    """
    if max_clients < 1:
        raise ValueError(f"max_clients must be at least 1, got {max_clients}")
    if max_clients_per_address < 1:
        raise ValueError(
            f"max_clients_per_address must be at least 1, got {max_clients_per_address}"
        )
    if idle_timeout_s <= 0:
        raise ValueError(f"idle_timeout_s must be positive, got {idle_timeout_s}")
    policy = AccessPolicy(
        listen_host=host,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
        token=token,
    )
    server = WsServer(
        hub,
        policy=policy,
        max_clients=max_clients,
        max_clients_per_address=max_clients_per_address,
        idle_timeout_s=idle_timeout_s,
    )
    await server._start(host, port)
    log.info(
        "websocket server listening on %s:%d (viewer at /, data at %s%s)",
        host,
        server.port,
        DATA_PATH,
        ", token required" if policy.token_required else "",
    )
    return server
