"""FrameRing.take hands out frames oldest first, with their slots and stamps, whether or not
the span wraps round the end of the buffer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from eegpi.hardware.ring import FrameRing

FRAME = 27


def _frame(k: int) -> bytes:
    return bytes((k + i) % 256 for i in range(FRAME))


@pytest.mark.parametrize("shared", [False, True])
def test_take_is_exact_across_the_wrap(shared: bool) -> None:
    ring = FrameRing(8, FRAME, shared=shared)
    try:
        written = 0
        taken: list[int] = []
        for batch, limit in [(5, None), (6, 4), (3, None), (7, 2), (0, None), (2, None)]:
            for _ in range(batch):
                assert ring.put(_frame(written), written * 10, 1000 + written)
                written += 1
            out = ring.take(limit)
            for row, slot, edge in zip(out.frames, out.seq, out.edge_ns, strict=True):
                k = int(slot) // 10
                assert bytes(row) == _frame(k)
                assert int(edge) == 1000 + k
                taken.append(k)
            out.frames[:] = 0  # a copy: the ring keeps its bytes
        rest = ring.take()
        taken += [int(s) // 10 for s in rest.seq]
        assert taken == list(range(written))
        assert ring.overflowed == 0
    finally:
        ring.close()


def test_a_take_of_nothing_is_empty() -> None:
    ring = FrameRing(4, FRAME)
    try:
        out = ring.take()
        assert out.frames.shape == (0, FRAME) and len(out.seq) == 0
        assert np.asarray(out.edge_ns).size == 0
    finally:
        ring.close()


def test_a_wait_the_producer_signals_asks_nothing_of_liveness() -> None:
    """The consumer's tick: frames signalled in time need no liveness check (for the
    acquisition process that check is a waitpid system call)."""
    ring = FrameRing(8, FRAME)
    asked: list[int] = []

    def alive() -> bool:
        asked.append(1)
        return True

    def produce() -> None:
        while not ring.waiting:  # the consumer is asleep on the signal
            time.sleep(0.001)
        ring.put(_frame(0), 0, 1000)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        assert ring.wait(1, 60.0, alive=alive) == 1
    finally:
        producer.join(60)
        ring.close()
    assert asked == []


def test_a_silent_dead_producer_ends_the_wait() -> None:
    ring = FrameRing(8, FRAME)
    try:
        assert ring.wait(1, 60.0, alive=lambda: False) == 0
        assert not ring.waiting
    finally:
        ring.close()


@pytest.mark.parametrize("shared", [False, True])
def test_hurry_ends_the_consumers_wait_with_what_waits(shared: bool) -> None:
    """A consumer waiting for a long tick is hurried (a subscriber came): its wait returns
    the frames that wait now, whether the hurry comes before or during the wait."""
    ring = FrameRing(64, FRAME, shared=shared)
    try:
        for k in range(3):
            ring.put(_frame(k), k, k)
        ring.hurry()  # before the wait: the next wait ends at once
        assert ring.wait(50, timeout=30.0) == 3
        got: list[int] = []
        consumer = threading.Thread(target=lambda: got.append(ring.wait(50, timeout=30.0)))
        consumer.start()
        ring.hurry()  # before or during that wait: either ends it
        consumer.join(30.0)
        assert not consumer.is_alive() and got == [3]
        assert not ring.waiting
    finally:
        ring.close()
