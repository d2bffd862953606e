"""The hand-off from the pipeline thread to the event loop that owns the hub.

Sinks run on the pipeline runner's thread and must never wait on the network. They call
:class:`LoopPublisher`, which appends to a bounded deque under a short lock. Waking the loop
costs more than the hand-off itself, so it happens at most once per pipeline tick for all
topics: the runner calls :meth:`LoopPublisher.flush` at the end of every tick, and from then on
that thread's publishes only collect and its flush schedules one drain. The wake-up is a write
to an eventfd the loop watches with a reader registered once, not ``call_soon_threadsafe``:
that builds a handle and copies the context on the producer's side and costs the loop two
``recv`` calls on its self-pipe, some 8 Python-level calls a tick on the producer alone;
one ``write`` and one ``read`` of a counter do the same. A thread that never flushes
keeps the simple rule: a publish wakes the loop unless a drain is already scheduled. Declare,
retract and events (markers) are rare and always wake it (a stage closing after the last tick
needs no flush; a marker posted from the event loop or a trigger thread has no tick).

A block of a topic nobody subscribes to, whose meta the hub already has, is not handed over at
all (the hub would only have looked at it): a pipeline nobody watches wakes the loop for
nothing. A subscription that starts meanwhile misses at most that tick, as if it had come a
tick later.

Under overload the oldest block is dropped and counted; the hub then sees a ``seq`` jump, so
subscribers see the loss as a gap. Declare and retract travel through the same deque, so the
loop applies every operation in the order the pipeline made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal

from eegpi.broker.hub import TopicHub
from eegpi.stream import Block, StreamMeta

__all__ = ["LoopPublisher"]

log = logging.getLogger("eegpi.broker")

_Op = (
    tuple[Literal["declare"], str, StreamMeta]
    | tuple[Literal["publish"], str, Block]
    | tuple[Literal["retract"], str, None]
    | tuple[Literal["event"], str, Mapping[str, Any]]
)


class LoopPublisher:
    """Thread-safe, never-blocking :class:`~eegpi.pipeline.stage.TopicPublisher` for a hub."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, hub: TopicHub, *, max_pending: int = 256
    ) -> None:
        """
        Args:
            loop: the loop the hub lives on.
            hub: where blocks go.
            max_pending: blocks that may wait for the loop before the oldest is dropped.
        """
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._loop = loop
        self._hub = hub
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._ops: deque[_Op] = deque()
        self._blocks = 0  # publish ops in _ops; declare/retract are rare and never dropped
        self._scheduled = False  # a drain is on its way to the loop
        self._ticking = threading.local()  # .on: this thread flushes at the end of its ticks
        self._dropped = 0
        self._dropped_samples = 0
        self._sent_meta: dict[str, StreamMeta] = {}
        """The meta each topic's last operation carried to the hub (producer threads only)."""
        self.wakeups = 0
        """Wake-ups of the loop asked for so far (each one drain)."""
        self._efd: int | None = None
        self._efd_lock = threading.Lock()
        if not loop.is_closed():
            self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            loop.add_reader(self._efd, self._on_wake)

    def close(self) -> None:
        """Hand the hub what is still pending, stop watching the eventfd and close it (on the
        loop, after the last pipeline stopped; later publishes are dropped and counted).
        Idempotent."""
        with self._efd_lock:  # from here on no producer writes to the descriptor
            efd, self._efd = self._efd, None
        if efd is None:
            return
        self._drain()
        self._loop.remove_reader(efd)
        os.close(efd)

    @property
    def dropped(self) -> int:
        """Blocks dropped because the loop fell behind."""
        return self._dropped

    @property
    def dropped_samples(self) -> int:
        return self._dropped_samples

    def declare(self, topic: str, meta: StreamMeta) -> None:
        self._sent_meta[topic] = meta
        self._put(("declare", topic, meta), wake=True)

    def publish(self, topic: str, block: Block) -> None:
        if topic not in self._hub.watched and self._sent_meta.get(topic) is block.meta:
            return  # nobody receives it, and the hub knows its meta: nothing to hand over
        self._sent_meta[topic] = block.meta
        self._put(("publish", topic, block), wake=not getattr(self._ticking, "on", False))

    def patience_ms(self, topic: str) -> float | None:
        """The smallest ``max_latency_ms`` of ``topic``'s subscribers, None without any (read
        without a lock: the hub swaps in a new mapping, and a change seen one tick late costs
        at most one slower tick)."""
        return self._hub.patience.get(topic)

    def on_hurry(self, callback: Callable[[], None]) -> Callable[[], None]:
        """The hub calls ``callback`` on the loop when a topic's patience shrinks."""
        return self._hub.on_hurry(callback)

    def retract(self, topic: str) -> None:
        self._sent_meta.pop(topic, None)
        self._put(("retract", topic, None), wake=True)

    def publish_event(self, topic: str, event: Mapping[str, Any]) -> None:
        self._put(("event", topic, event), wake=True)

    def flush(self) -> None:
        """End of a tick: the loop gets what this thread published, with at most one wake-up.

        The first call marks the calling thread as one that flushes, so from then on its
        publishes wait for its flush instead of each waking the loop.
        """
        self._ticking.on = True
        with self._lock:
            wake = bool(self._ops) and not self._scheduled
            self._scheduled = self._scheduled or wake
        if wake:
            self._wake()

    def _put(self, op: _Op, *, wake: bool) -> None:
        with self._lock:
            if op[0] == "publish":
                if self._blocks >= self._max_pending:
                    self._drop_oldest_block()
                self._blocks += 1
            self._ops.append(op)
            wake = wake and not self._scheduled
            self._scheduled = self._scheduled or wake
        if wake:
            self._wake()

    def _wake(self) -> None:
        """Schedule one drain; called by the thread that set ``_scheduled``, outside the
        hand-off's lock (the drain takes that lock, and must not wait for this write). A lock of
        its own keeps ``close`` from closing the descriptor under the write; only ``close``,
        rare, ever waits for it."""
        with self._efd_lock:
            efd = self._efd
            if efd is not None and not self._loop.is_closed():
                self.wakeups += 1
                os.eventfd_write(efd, 1)
                return
        self._discard_pending()  # the daemon is shutting down: nothing will drain

    def _on_wake(self) -> None:
        """On the loop: the eventfd is readable, so a drain was asked for."""
        efd = self._efd
        if efd is None:
            return
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(efd)  # back to zero: the next write wakes the loop again
        self._drain()

    def _discard_pending(self) -> None:
        """Nothing will drain what waits: count its blocks as dropped."""
        with self._lock:
            for pending in self._ops:
                if pending[0] == "publish":
                    self._count_drop(pending[2])
            self._ops.clear()
            self._blocks = 0
            self._scheduled = False

    def _drop_oldest_block(self) -> None:
        """Called with the lock held and the deque full of blocks."""
        for index, pending in enumerate(self._ops):
            if pending[0] == "publish":
                del self._ops[index]
                self._blocks -= 1
                self._count_drop(pending[2])
                return

    def _count_drop(self, block: Block) -> None:
        self._dropped += 1
        self._dropped_samples += block.n_samples
        self._hub.stats.handoff_samples_dropped += block.n_samples

    def _drain(self) -> None:
        """On the loop: apply every waiting operation, in order."""
        with self._lock:
            ops, self._ops = self._ops, deque()
            self._blocks = 0
            self._scheduled = False
        for kind, topic, payload in ops:
            try:
                if kind == "publish":
                    assert isinstance(payload, Block)
                    self._hub.publish(topic, payload)
                elif kind == "declare":
                    assert isinstance(payload, StreamMeta)
                    self._hub.declare(topic, payload)
                elif kind == "event":
                    assert isinstance(payload, Mapping)
                    self._hub.publish_event(topic, payload)
                else:
                    self._hub.retract(topic)
            except Exception:
                log.exception("broker failed to %s topic %r", kind, topic)
