"""LoopPublisher: order kept, never blocks, drops the oldest block when the loop falls behind."""

from __future__ import annotations

import asyncio
import threading

from eegpi.broker import LoopPublisher, TopicHub

from .conftest import META, make_block


class _Every:
    def __contains__(self, topic: object) -> bool:
        return True


class RecordingHub(TopicHub):
    """Records what reaches the hub; every topic counts as watched unless ``watch_all`` is off."""

    def __init__(self, watch_all: bool = True) -> None:
        self.watch_all = watch_all
        super().__init__()
        self.calls: list[tuple[str, str, int | None]] = []
        self.seen = asyncio.Event()

    @property
    def watched(self):  # type: ignore[no-untyped-def]
        return _Every() if self.watch_all else self._watched

    @watched.setter
    def watched(self, topics):  # type: ignore[no-untyped-def]
        self._watched = topics

    def declare(self, topic, meta):  # type: ignore[no-untyped-def]
        self.calls.append(("declare", topic, None))
        super().declare(topic, meta)

    def publish(self, topic, block):  # type: ignore[no-untyped-def]
        self.calls.append(("publish", topic, block.seq))
        super().publish(topic, block)

    def retract(self, topic):  # type: ignore[no-untyped-def]
        self.calls.append(("retract", topic, None))
        super().retract(topic)
        self.seen.set()


async def test_operations_from_a_thread_arrive_in_order() -> None:
    hub = RecordingHub()
    publisher = LoopPublisher(asyncio.get_running_loop(), hub, max_pending=1000)

    def pipeline_thread() -> None:
        publisher.declare("eeg", META)
        for i in range(100):
            publisher.publish("eeg", make_block(i, 1))
        publisher.retract("eeg")

    thread = threading.Thread(target=pipeline_thread)
    thread.start()
    await asyncio.to_thread(thread.join)
    await asyncio.wait_for(hub.seen.wait(), 5)
    assert hub.calls == [
        ("declare", "eeg", None),
        *[("publish", "eeg", i) for i in range(100)],
        ("retract", "eeg", None),
    ]
    assert publisher.dropped == 0


async def test_full_deque_drops_the_oldest_block_and_counts_it() -> None:
    hub = RecordingHub()
    publisher = LoopPublisher(asyncio.get_running_loop(), hub, max_pending=3)
    # The loop is busy running this test, so nothing drains until we yield.
    publisher.declare("eeg", META)
    for i in range(10):
        publisher.publish("eeg", make_block(i * 2, 2))
    publisher.retract("eeg")
    assert publisher.dropped == 7 and publisher.dropped_samples == 14
    assert hub.stats.handoff_samples_dropped == 14
    await asyncio.wait_for(hub.seen.wait(), 5)
    assert hub.calls == [
        ("declare", "eeg", None),
        ("publish", "eeg", 14),
        ("publish", "eeg", 16),
        ("publish", "eeg", 18),
        ("retract", "eeg", None),
    ]


async def loop_passes() -> None:
    """Let the loop run what a wake-up already written asks for: one pass of its selector sees
    the eventfd readable and queues the reader behind this task, the next runs it."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


class AppliedHub(TopicHub):
    """Lets a producer thread wait until the loop has applied its publishes."""

    def __init__(self) -> None:
        super().__init__()
        self.watched = _Every()  # type: ignore[assignment]  # no subscribers: count as watched
        self.applied: list[tuple[str, int]] = []
        self.changed = threading.Condition()

    def declare(self, topic, meta):  # type: ignore[no-untyped-def]
        super().declare(topic, meta)
        with self.changed:
            self.applied.append((topic, -1))
            self.changed.notify_all()

    def publish(self, topic, block):  # type: ignore[no-untyped-def]
        super().publish(topic, block)
        with self.changed:
            self.applied.append((topic, block.seq))
            self.changed.notify_all()

    def wait_applied(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.applied) >= count, 10)


async def test_one_wake_up_per_tick_for_all_topics() -> None:
    hub = AppliedHub()
    publisher = LoopPublisher(asyncio.get_running_loop(), hub)
    topics = ("a", "b", "c")
    per_tick: list[tuple[int, int]] = []  # wake-ups asked by the publishes, then by the flush

    def pipeline_thread() -> None:
        for topic in topics:
            publisher.declare(topic, META)
        publisher.flush()
        hub.wait_applied(len(topics))
        for tick in range(20):
            before = publisher.wakeups
            for topic in topics:
                publisher.publish(topic, make_block(tick, 1))
            after_publish = publisher.wakeups
            publisher.flush()
            per_tick.append((after_publish - before, publisher.wakeups - after_publish))
            hub.wait_applied(len(topics) * (tick + 2))  # the loop drained this tick

    await asyncio.to_thread(pipeline_thread)
    assert per_tick == [(0, 1)] * 20
    assert hub.applied[len(topics) :] == [(t, tick) for tick in range(20) for t in topics]
    assert publisher.dropped == 0


async def test_publishes_of_a_thread_that_never_flushes_still_reach_the_hub() -> None:
    hub = AppliedHub()
    publisher = LoopPublisher(asyncio.get_running_loop(), hub)

    def producer() -> None:
        for seq in range(5):
            publisher.publish("eeg", make_block(seq, 1))

    await asyncio.to_thread(producer)
    await asyncio.to_thread(hub.wait_applied, 6)  # the first publish declares the topic
    assert hub.applied == [("eeg", -1)] + [("eeg", seq) for seq in range(5)]


async def test_a_tick_beyond_the_bound_drops_its_oldest_blocks_and_counts_them() -> None:
    hub = RecordingHub()
    publisher = LoopPublisher(asyncio.get_running_loop(), hub, max_pending=3)
    publisher.declare("eeg", META)
    publisher.flush()  # this thread now runs ticks: publishes wait for its flush
    for i in range(10):  # the loop is busy running this test: nothing drains until we yield
        publisher.publish("eeg", make_block(i * 2, 2))
    publisher.flush()
    assert publisher.dropped == 7 and publisher.dropped_samples == 14
    assert hub.stats.handoff_samples_dropped == 14
    publisher.retract("eeg")
    await asyncio.wait_for(hub.seen.wait(), 5)
    assert hub.calls == [
        ("declare", "eeg", None),
        ("publish", "eeg", 14),
        ("publish", "eeg", 16),
        ("publish", "eeg", 18),
        ("retract", "eeg", None),
    ]


def test_blocks_flushed_to_a_closed_loop_are_counted_as_dropped() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    hub = TopicHub()
    hub.watched = frozenset({"eeg"})  # a subscriber waits for it
    publisher = LoopPublisher(loop, hub)
    publisher.flush()
    publisher.publish("eeg", make_block(0, 3))
    publisher.publish("eeg", make_block(3, 2))
    publisher.flush()
    assert publisher.dropped == 2 and publisher.dropped_samples == 5
    assert hub.stats.handoff_samples_dropped == 5


async def test_blocks_nobody_watches_never_wake_the_loop_and_flow_once_watched() -> None:
    hub = RecordingHub(watch_all=False)
    publisher = LoopPublisher(asyncio.get_running_loop(), hub, max_pending=1000)
    publisher.declare("eeg", META)
    await loop_passes()  # the declare drains
    assert hub.calls == [("declare", "eeg", None)]
    for i in range(5):
        publisher.publish("eeg", make_block(i, 1))
        publisher.flush()
    await loop_passes()
    assert hub.calls == [("declare", "eeg", None)], "unwatched blocks reached the hub"
    assert publisher.dropped == 0  # nobody could have received them: not a loss
    hub._watched = frozenset({"eeg"})
    publisher.publish("eeg", make_block(5, 1))
    publisher.flush()
    await loop_passes()
    assert hub.calls[-1] == ("publish", "eeg", 5)
    # a changed meta always reaches the hub, watched or not, so a later subscriber's ack is true
    hub._watched = frozenset()
    changed = make_block(6, 1, meta=META.with_changes(units="counts"))
    publisher.publish("eeg", changed)
    publisher.flush()
    await loop_passes()
    assert ("publish", "eeg", 6) in hub.calls[-2:]  # the hub then announces the new meta


async def test_close_hands_over_what_waits_and_later_blocks_are_counted_as_dropped() -> None:
    hub = RecordingHub()
    publisher = LoopPublisher(asyncio.get_running_loop(), hub)
    publisher.declare("eeg", META)
    publisher.flush()
    publisher.publish("eeg", make_block(0, 2))
    publisher.flush()  # its wake-up is written, but this loop has not run the drain yet
    publisher.close()
    assert hub.calls == [("declare", "eeg", None), ("publish", "eeg", 0)]
    publisher.publish("eeg", make_block(2, 3))
    publisher.flush()
    publisher.close()  # idempotent
    await loop_passes()
    assert hub.calls == [("declare", "eeg", None), ("publish", "eeg", 0)]
    assert publisher.dropped == 1 and publisher.dropped_samples == 3
