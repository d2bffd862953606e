"""The topic hub: which topics exist, who subscribes to what, and the fan-out of data messages.

Subscribers of a topic are grouped by (format, max_latency_ms); the latency is one of a few
fixed steps (:data:`~eegpi.broker.commands.LATENCY_STEPS_MS`), so however many clients ask for
however many latencies, a topic has at most a handful of groups. Each group has one
:class:`~eegpi.broker.batching.Batcher`; every message it cuts is encoded once, and the same
:class:`~eegpi.broker.wire.DataMessage` (with its WebSocket frame, built once) goes to every
member, so a topic costs one encode per message however many clients watch it. Fan-out never
waits: a member that keeps up gets the frame written at once, the others get it appended to
their bounded queue (:class:`ClientSession`), so a slow or failing client never delays the hub,
the pipeline or other clients.

A topic may be subscribed before it is declared: the client gets an ack with ``"meta": null``
and ``"pending": true``, then a second ack with the meta when the producer declares it. When
the producer retracts the topic, subscribers get the pending ack again and stay subscribed.
When a declared topic's meta changes (a block arrives with another meta: the source's gain
changed, a stage's params changed), its subscribers get ``{"topic": T, "meta": {...}}`` after
the data of the old meta and before the first data message of the new one. The meta of a topic
a pipeline publishes names that pipeline (``"pipeline"``), as do the entries of the topic list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eegpi.broker.batching import Batcher, Chunk
from eegpi.broker.codec import encode_binary_data, encode_control, encode_json_data
from eegpi.broker.commands import CommandError, Subscribe
from eegpi.broker.session import CLOSE_INTERNAL_ERROR, BrokerStats, ClientSession
from eegpi.broker.wire import DataMessage
from eegpi.stream import Block, StreamMeta

__all__ = ["MAX_SUBSCRIPTIONS", "TopicHub"]

log = logging.getLogger("eegpi.broker")

MAX_SUBSCRIPTIONS = 32
"""Subscriptions one connection may hold."""
GOING_AWAY = 1001

_GroupKey = tuple[str, float]  # (format, max_latency_ms)


@dataclass(eq=False)
class _Group:
    """Subscribers of one topic sharing format and batching; one encode per message."""

    fmt: str
    max_latency_ms: float
    members: dict[ClientSession, None] = field(default_factory=dict)  # insertion-ordered set
    batcher: Batcher | None = None  # None until the topic's meta is known
    timer: asyncio.TimerHandle | None = None
    timer_due: float | None = None  # the batcher's due_at the timer was armed for

    def reset(self, meta: StreamMeta | None) -> None:
        self.cancel_timer()
        self.batcher = (
            None
            if meta is None
            else Batcher(meta.sample_rate, len(meta.channels), self.max_latency_ms / 1000.0)
        )

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = self.timer_due = None


@dataclass(eq=False)
class _Topic:
    name: str
    meta: StreamMeta | None = None  # None while the producer has not declared it
    meta_json: dict[str, Any] | None = None
    groups: dict[_GroupKey, _Group] = field(default_factory=dict)

    @property
    def subscribers(self) -> int:
        return sum(len(group.members) for group in self.groups.values())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _meta_to_json(meta: StreamMeta) -> dict[str, Any]:
    """StreamMeta.to_json made safe for json (numpy scalars and odd extras become plain)."""
    encoded = json.dumps(meta.to_json(), default=_jsonable, allow_nan=False)
    result: dict[str, Any] = json.loads(encoded)
    return result


class TopicHub:
    """Topics, subscriptions and fan-out; lives on the event loop, every method runs there."""

    def __init__(self, *, queue_limit: int = 256, stall_timeout_s: float = 5.0) -> None:
        """
        Args:
            queue_limit: data messages a client may have waiting before the oldest is dropped
                (256 messages is 2.5 s at the default 10 ms batching); whatever the count,
                data that waited 1 s (``session.MAX_DELAY_S``) is dropped too.
            stall_timeout_s: a client that makes no progress, or keeps losing data, for this
                long is closed with 1013.
        """
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1, got {queue_limit}")
        if stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be positive, got {stall_timeout_s}")
        self.queue_limit = queue_limit
        self.stall_timeout_s = stall_timeout_s
        self.stats = BrokerStats()
        self._topics: dict[str, _Topic] = {}
        self._sessions: dict[ClientSession, dict[str, Subscribe]] = {}
        self._expected: frozenset[str] | None = None
        self._pipelines: dict[str, str] = {}
        """Topic -> the pipeline publishing it (set when the pipeline starts)."""
        self.watched: frozenset[str] = frozenset()
        """Topics with at least one subscriber; replaced whole (never mutated), so producers on
        other threads may read it without a lock to skip work nobody would receive."""
        self.patience: Mapping[str, float] = {}
        """Watched topic -> the smallest ``max_latency_ms`` among its subscribers: how long the
        most demanding one lets a sample wait. Replaced whole, like :attr:`watched`, so a
        pipeline thread reads it to tick no faster than its subscribers need."""
        self._hurry_callbacks: tuple[Callable[[], None], ...] = ()
        self._callbacks_lock = threading.Lock()

    # ---- producer side -------------------------------------------------------------------

    def declare(self, topic: str, meta: StreamMeta) -> None:
        """The topic exists now with this meta; subscribers waiting for it get the ack."""
        entry = self._topics.get(topic)
        if entry is None:
            entry = self._topics[topic] = _Topic(topic)
        elif entry.meta is not None and (entry.meta is meta or entry.meta == meta):
            return
        self._flush(entry)
        changed = entry.meta is not None
        entry.meta = meta
        entry.meta_json = _meta_to_json(meta)
        pipeline = self._pipelines.get(topic)
        if pipeline is not None:
            entry.meta_json["pipeline"] = pipeline
        for group in entry.groups.values():
            group.reset(meta)
            for session in group.members:
                if changed:
                    session.notify_in_order(topic, {"topic": topic, "meta": entry.meta_json})
                else:
                    session.notify(self._ack(entry, self._sessions[session][topic]))

    def retract(self, topic: str) -> None:
        """The producer stopped: pending data is sent, subscribers stay and are told it waits."""
        entry = self._topics.get(topic)
        if entry is None or entry.meta is None:
            return
        self._flush(entry)
        entry.meta = entry.meta_json = None
        for group in entry.groups.values():
            group.reset(None)
            for session in group.members:
                session.notify(self._ack(entry, self._sessions[session][topic]))
        self._forget_if_unused(entry)

    def publish(self, topic: str, block: Block) -> None:
        """Batch a block (samples x channels) into every group of the topic."""
        entry = self._topics.get(topic)
        meta = block.meta
        if entry is None or entry.meta is not meta:  # identity first: a field compare costs
            if entry is None or entry.meta is None or meta != entry.meta:
                self.declare(topic, meta)  # announces a new or changed meta
                entry = self._topics[topic]
            else:
                entry.meta = meta  # equal value: keep the identity check on the fast path
        if block.n_samples == 0 or not entry.groups:
            return
        now = time.time()  # the batcher's deadlines are in the samples' own clock
        for group in list(entry.groups.values()):
            if group.batcher is not None:
                self._emit(entry, group, group.batcher.add(block, now))
                self._arm(entry, group)

    def publish_event(self, topic: str, event: Mapping[str, Any]) -> None:
        """Send one event (a marker) to every subscriber of the topic, whatever its format.

        Events are JSON text messages ``{"topic", "seq", "timestamp", "event"}`` that go
        through the same bounded queues as data: a client that lags loses the oldest and is
        told (``{"lagged": n}``: an event counts as one).
        """
        entry = self._topics.get(topic)
        if entry is None or not entry.groups:
            return
        payload = encode_control(
            {
                "topic": topic,
                "seq": event.get("seq"),
                "timestamp": event.get("timestamp"),
                "event": dict(event),
            }
        )
        message = DataMessage(topic, payload, 1)
        for group in entry.groups.values():
            for session in group.members:
                session.deliver(message)

    # ---- introspection -------------------------------------------------------------------

    def subscriber_counts(self) -> dict[str, int]:
        """Subscribers per topic, for every declared or subscribed topic."""
        return {name: entry.subscribers for name, entry in self._topics.items()}

    def topics(self) -> list[tuple[str, StreamMeta]]:
        """Declared topics and their meta, sorted by name."""
        return sorted(
            (name, entry.meta) for name, entry in self._topics.items() if entry.meta is not None
        )

    @property
    def client_count(self) -> int:
        return len(self._sessions)

    def set_expected_topics(self, topics: Iterable[str] | None) -> None:
        """Topics the loaded pipelines can publish; others are refused with ``unknown_topic``.

        With None (the default) any well-formed name may be subscribed and waits for a producer.
        """
        self._expected = None if topics is None else frozenset(topics)

    def set_pipeline(self, pipeline: str, topics: Iterable[str]) -> None:
        """``pipeline`` publishes ``topics`` (it is starting): their meta and list entries
        name it from their next declaration on."""
        for topic in topics:
            self._pipelines[topic] = pipeline

    def list_topics_message(self) -> dict[str, Any]:
        """The ``{"topics": [...]}`` reply; ``pending`` names known topics not yet declared."""
        declared = []
        for name, entry in sorted(self._topics.items()):
            if entry.meta is None:
                continue
            item: dict[str, Any] = {
                "name": name,
                "meta": entry.meta_json,
                "subscribers": entry.subscribers,
            }
            pipeline = self._pipelines.get(name)
            if pipeline is not None:
                item["pipeline"] = pipeline
            declared.append(item)
        running = {topic["name"] for topic in declared}
        waiting = set(self._expected or ()) | set(self._topics)
        return {"topics": declared, "pending": sorted(waiting - running)}

    # ---- client side (called by the server) ----------------------------------------------

    def attach(self, session: ClientSession) -> None:
        self._sessions[session] = {}
        self.stats.connections_total += 1
        session.idle_since = asyncio.get_running_loop().time()

    def subscriptions(self, session: ClientSession) -> int:
        """Subscriptions the session holds (0 for a session that is not attached)."""
        return len(self._sessions.get(session, ()))

    def detach(self, session: ClientSession) -> None:
        for topic in list(self._sessions.get(session, {})):
            self._leave(session, topic)
        self._sessions.pop(session, None)

    def subscribe(self, session: ClientSession, request: Subscribe) -> None:
        """Join (or move to) the group of the request; the ack is queued to the session."""
        held = self._sessions[session]
        entry = self._topics.get(request.topic)
        known = entry is not None and entry.meta is not None
        if not known and self._expected is not None and request.topic not in self._expected:
            names = ", ".join(sorted(self._expected | {n for n, _ in self.topics()})) or "none"
            raise CommandError(
                "unknown_topic",
                f"no topic {request.topic!r}; known topics: {names}",
                topic=request.topic,
            )
        if request.topic not in held and len(held) >= MAX_SUBSCRIPTIONS:
            raise CommandError(
                "too_many_subscriptions",
                f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection; unsubscribe first",
                topic=request.topic,
            )
        if request.topic in held:
            self._leave(session, request.topic)
        entry = self._topics.get(request.topic)
        if entry is None:
            entry = self._topics[request.topic] = _Topic(request.topic)
        key = (request.format, request.max_latency_ms)
        group = entry.groups.get(key)
        if group is None:
            group = entry.groups[key] = _Group(request.format, request.max_latency_ms)
            group.reset(entry.meta)
        group.members[session] = None
        held[request.topic] = request
        self._update_watched()
        session.idle_since = None
        session.notify(self._ack(entry, request))

    def unsubscribe(self, session: ClientSession, topic: str) -> None:
        if topic not in self._sessions[session]:
            raise CommandError(
                "not_subscribed", f"not subscribed to {topic!r}; nothing to do", topic=topic
            )
        self._leave(session, topic)
        session.purge(topic)
        session.notify({"unsubscribed": topic})

    async def close(self) -> None:
        """Close every client with 1001 (going away) and wait for the closes to finish."""
        for entry in self._topics.values():
            for group in entry.groups.values():
                group.cancel_timer()
        sessions = list(self._sessions)
        for session in sessions:
            session.disconnect(GOING_AWAY, "server shutting down")
        await asyncio.gather(*(s.wait_closed() for s in sessions), return_exceptions=True)

    # ---- internals -----------------------------------------------------------------------

    @staticmethod
    def _ack(entry: _Topic, request: Subscribe) -> dict[str, Any]:
        ack: dict[str, Any] = {
            "subscribed": entry.name,
            "meta": entry.meta_json,
            "format": request.format,
            "max_latency_ms": request.max_latency_ms,
        }
        if entry.meta is None:
            ack["pending"] = True
        return ack

    def _leave(self, session: ClientSession, topic: str) -> None:
        held = self._sessions[session]
        request = held.pop(topic)
        if not held:
            session.idle_since = asyncio.get_running_loop().time()
        entry = self._topics[topic]
        key = (request.format, request.max_latency_ms)
        group = entry.groups[key]
        del group.members[session]
        if not group.members:
            group.cancel_timer()
            del entry.groups[key]
        self._update_watched()
        self._forget_if_unused(entry)

    def on_hurry(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on the loop; it must not block) whenever a topic's
        :attr:`patience` shrinks: its first subscriber, or one asking for a smaller
        ``max_latency_ms``. A pipeline gathering a long tick for nobody then sends what it
        has at once. Any thread may call this; returns the function that stops the calls."""
        with self._callbacks_lock:
            self._hurry_callbacks += (callback,)

        def cancel() -> None:
            with self._callbacks_lock:
                self._hurry_callbacks = tuple(c for c in self._hurry_callbacks if c is not callback)

        return cancel

    def _update_watched(self) -> None:
        before = self.patience
        self.patience = {
            name: min(group.max_latency_ms for group in entry.groups.values())
            for name, entry in self._topics.items()
            if entry.groups
        }
        self.watched = frozenset(self.patience)
        if any(ms < before.get(name, math.inf) for name, ms in self.patience.items()):
            for callback in self._hurry_callbacks:
                try:
                    callback()
                except Exception:
                    log.exception("a hurry callback failed")

    def _forget_if_unused(self, entry: _Topic) -> None:
        if entry.meta is None and not entry.groups:
            self._topics.pop(entry.name, None)

    def _flush(self, entry: _Topic) -> None:
        for group in list(entry.groups.values()):
            group.cancel_timer()
            if group.batcher is not None:
                self._emit(entry, group, group.batcher.flush())

    def _arm(self, entry: _Topic, group: _Group) -> None:
        """Keep one timer for the group's deadline: none when nothing waits, moved when it moves."""
        due = None if group.batcher is None else group.batcher.due_at
        if due == group.timer_due:
            return
        group.cancel_timer()
        if due is not None:
            delay = max(0.0, due - time.time())  # Unix time to the loop's monotonic clock
            group.timer = asyncio.get_running_loop().call_later(delay, self._on_due, entry, group)
            group.timer_due = due

    def _on_due(self, entry: _Topic, group: _Group) -> None:
        group.timer = group.timer_due = None
        if group.batcher is None:
            return
        # A timer may fire a clock tick early; treat "within 1 ms" as due.
        now = time.time() + 0.001
        self._emit(entry, group, group.batcher.poll(now))
        self._arm(entry, group)

    def _emit(self, entry: _Topic, group: _Group, chunks: list[Chunk]) -> None:
        encode = encode_binary_data if group.fmt == "binary" else encode_json_data
        for chunk in chunks:
            payload = encode(entry.name, chunk.seq, chunk.timestamp, chunk.data)
            message = DataMessage(entry.name, payload, chunk.n_samples)
            self.stats.messages_encoded += 1
            for session in list(group.members):
                try:
                    session.deliver(message)
                except Exception:
                    log.exception("client %s failed to take a message", session.peer)
                    session.disconnect(CLOSE_INTERNAL_ERROR, "internal error")
