"""One WebSocket client: its bounded outgoing queue, sender task, loss accounting and stall policy.

The hub hands a session already-encoded messages with :meth:`ClientSession.deliver`, which never
waits. A client that keeps up has nothing queued and an almost empty transport: the message is
written to it at once (``write_now``, a :class:`~eegpi.broker.wire.DirectWriter`), with no task
switch, which is most of what a fan-out costs per client. Otherwise it is queued, and when the
queue is full, or its oldest data message has waited ``max_delay_s``, the oldest is dropped and
counted. The age bound makes lag visible within the same time at every sample rate and batching
setting (a count bound alone lasts 25 times longer at 10 messages a second than at 250). The
sender task alone awaits the socket, so a slow client only ever slows itself; the server bounds
what may sit unsent below it (see ``eegpi.broker.server``), so a client that stops reading
turns into queue backlog here within a second or so instead of hiding in kernel buffers. When
it reads again it first receives ``{"lagged": n, "samples": m}``. A client that keeps losing
data, or makes no progress at all, for ``stall_timeout_s`` is closed with 1013 (try again
later); one that lost data once and then keeps up stays connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed

from eegpi.broker.codec import encode_control
from eegpi.broker.wire import DataMessage

__all__ = [
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_TOO_SLOW",
    "BrokerStats",
    "ClientSession",
    "Connection",
]

log = logging.getLogger("eegpi.broker")

CLOSE_TOO_SLOW = 1013
"""Client stayed stalled past the stall timeout ("try again later")."""
CLOSE_POLICY_VIOLATION = 1008
"""Client flooded commands without reading the replies."""
CLOSE_INTERNAL_ERROR = 1011
"""The broker failed while serving this connection (logged with the peer)."""
CONTROL_QUEUE_LIMIT = 64
"""Replies waiting for a client; only a client that floods commands and never reads fills it."""
CLOSE_GRACE_S = 2.0
"""How long a stalled client gets to take its close frame before the TCP connection is cut."""
MAX_DELAY_S = 1.0
"""Data that waited this long in a client's queue is dropped: the client is behind."""


class Connection(Protocol):
    """The part of a websockets ``ServerConnection`` a session uses."""

    async def send(self, message: str | bytes) -> None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...
    @property
    def transport(self) -> asyncio.Transport: ...


@dataclass
class BrokerStats:
    """Totals over every connection since the hub started."""

    messages_encoded: int = 0
    """Data messages encoded (one per group, however many subscribers share it)."""
    messages_dropped: int = 0
    """Data messages dropped from full client queues."""
    samples_dropped: int = 0
    handoff_samples_dropped: int = 0
    """Samples dropped before reaching the hub: the event loop fell behind the pipeline."""
    clients_disconnected_stalled: int = 0
    connections_total: int = 0


@dataclass(frozen=True)
class _Queued:
    message: DataMessage
    queued_at: float
    keep: bool = False
    """A control message that must stay in order with the data (a topic's new meta): never
    dropped; when the data before it is gone, it moves to the control queue."""


class ClientSession:
    """Outgoing side of one connection; ``deliver`` and ``notify`` are called on the loop."""

    def __init__(
        self,
        conn: Connection,
        peer: str,
        *,
        queue_limit: int,
        stall_timeout_s: float,
        max_delay_s: float = MAX_DELAY_S,
        stats: BrokerStats | None = None,
        clock: Callable[[], float] | None = None,
        write_now: Callable[[DataMessage], bool] | None = None,
    ) -> None:
        """
        Args:
            clock: seconds, monotonic; the loop's clock by default (tests drive their own).
            write_now: writes a message at once if the connection can take it without waiting
                and says whether it did; None sends everything through the sender task.
        """
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1, got {queue_limit}")
        if max_delay_s <= 0:
            raise ValueError(f"max_delay_s must be positive, got {max_delay_s}")
        self.peer = peer
        self._conn = conn
        self._queue_limit = queue_limit
        self._stall_timeout_s = stall_timeout_s
        self._max_delay_s = max_delay_s
        self._stats = stats if stats is not None else BrokerStats()
        self._data: deque[_Queued] = deque()
        self._control: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._clock = clock or self._loop.time
        self._write_now = write_now
        self._sending_since: float | None = None  # loop time the send in flight started
        self._lagging_since: float | None = None  # first drop of the current lag episode
        self._last_drop = 0.0  # loop time of the latest drop
        self._lag_messages = 0  # drops not yet reported to the client
        self._lag_samples = 0
        self._close_task: asyncio.Task[None] | None = None
        self.messages_sent = 0
        self.messages_dropped = 0
        self.samples_dropped = 0
        self.idle_since: float | None = None
        """Loop time since which the session holds no subscription (set by the hub)."""
        self.close_code: int | None = None
        """Code the broker chose when it closed this connection itself."""
        self.close_reason = ""

    @property
    def closing(self) -> bool:
        return self._close_task is not None

    @property
    def queued(self) -> int:
        return len(self._data)

    def deliver(self, message: DataMessage) -> None:
        """Write a data message now, or queue it (dropping the oldest when full). Never waits."""
        if self._close_task is not None:
            return
        if (
            self._write_now is not None
            and self._sending_since is None
            and not self._data
            and not self._control
            and not self._lag_messages
            and self._write_now(message)
        ):
            self.messages_sent += 1  # nothing queued, nothing lost: no stall to look at
            return
        now = self._clock()
        stale = now - self._max_delay_s
        while self._data and (
            len(self._data) >= self._queue_limit or self._data[0].queued_at <= stale
        ):
            oldest = self._data.popleft()
            if oldest.keep:
                self._control.append(str(oldest.message.payload))  # all before it is gone
            else:
                self._count_drop(oldest, now)
        self._data.append(_Queued(message, now))
        self._wakeup.set()
        self._check_stall(now)

    def notify(self, message: dict[str, Any]) -> None:
        """Queue a control message (ack, error, notice); these go before queued data."""
        if self._close_task is not None:
            return
        if len(self._control) >= CONTROL_QUEUE_LIMIT:
            self.disconnect(
                CLOSE_POLICY_VIOLATION,
                f"more than {CONTROL_QUEUE_LIMIT} replies unread: commands sent without reading",
            )
            return
        self._control.append(encode_control(message))
        self._wakeup.set()

    def notify_in_order(self, topic: str, message: dict[str, Any]) -> None:
        """Queue a control message of ``topic`` after the data already queued and before any
        data delivered later (a new meta must not overtake the data it does not describe).
        It is never dropped with the data."""
        if self._close_task is not None:
            return
        if not self._data:
            self.notify(message)
            return
        self._data.append(_Queued(DataMessage(topic, encode_control(message), 0), 0.0, True))
        self._wakeup.set()

    def purge(self, topic: str) -> None:
        """Forget queued data of a topic the client unsubscribed from."""
        self._data = deque(item for item in self._data if item.message.topic != topic)

    def disconnect(self, code: int, reason: str) -> None:
        """Close the connection from the broker's side (idempotent, never waits)."""
        if self._close_task is not None:
            return
        self.close_code = code
        self.close_reason = reason
        if code == CLOSE_TOO_SLOW:
            self._stats.clients_disconnected_stalled += 1
        log.warning("closing client %s with %d: %s", self.peer, code, reason)
        self._data.clear()
        self._control.clear()
        self._wakeup.set()
        self._close_task = self._loop.create_task(self._close(code, reason))

    async def run_sender(self) -> None:
        """Send queued messages until the connection closes; the only place that awaits it."""
        try:
            while self._close_task is None:
                message = self._next()
                if message is None:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                self._sending_since = self._clock()
                await self._conn.send(message)
                self._sending_since = None
                self.messages_sent += 1
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("sending to client %s failed", self.peer)
            self.disconnect(CLOSE_INTERNAL_ERROR, "internal error while sending")

    async def wait_closed(self) -> None:
        """Wait for a broker-initiated close to finish (no-op when there is none)."""
        if self._close_task is not None:
            await asyncio.shield(self._close_task)

    def _next(self) -> str | bytes | None:
        if self._control:
            return self._control.popleft()
        if self._lag_messages:
            notice = {"lagged": self._lag_messages, "samples": self._lag_samples}
            self._lag_messages = self._lag_samples = 0
            return encode_control(notice)
        if self._data:
            return self._data.popleft().message.payload
        self._lagging_since = None
        return None

    def _count_drop(self, item: _Queued, now: float) -> None:
        if self._lagging_since is None:
            self._lagging_since = now
            log.info(
                "client %s is lagging: dropping its oldest data (%d messages queued)",
                self.peer,
                len(self._data) + 1,
            )
        self._last_drop = now
        n_samples = item.message.n_samples
        self.messages_dropped += 1
        self.samples_dropped += n_samples
        self._lag_messages += 1
        self._lag_samples += n_samples
        self._stats.messages_dropped += 1
        self._stats.samples_dropped += n_samples

    def _check_stall(self, now: float) -> None:
        if self._lagging_since is not None and now - self._last_drop > self._max_delay_s:
            # Nothing dropped for a whole queue age: everything since went out in time.
            self._lagging_since = None
        since = [t for t in (self._sending_since, self._lagging_since) if t is not None]
        if since and now - min(since) > self._stall_timeout_s:
            self.disconnect(
                CLOSE_TOO_SLOW,
                f"client too slow: stalled for more than {self._stall_timeout_s:g} s, "
                f"{self.messages_dropped} messages dropped",
            )

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_GRACE_S):
                await self._conn.close(code, reason[:120])
        except TimeoutError:
            # The client does not read: its close frame sits behind unread data. Cut TCP.
            self._conn.transport.abort()
        except Exception:
            log.exception("closing client %s failed", self.peer)
            self._conn.transport.abort()
