"""LoopPublisher: order kept, never blocks, drops the oldest block when the loop falls behind."""

from __future__ import annotations

import asyncio
import threading

from eegpi.broker import LoopPublisher, TopicHub

from .conftest import META, make_block


class RecordingHub(TopicHub):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, int | None]] = []
        self.seen = asyncio.Event()

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
