"""A pipeline whose output nobody awaits gathers the longer ``idle_tick_ms`` tick, and goes
back to ``tick_ms`` as soon as a subscriber appears: no sample lost or renumbered either way."""

from __future__ import annotations

import itertools
import statistics
import threading

import pytest

from eegpi.pipeline.stages.source import Ads1299SourceParams
from eegpi.stream import Block
from tests.pipeline.test_runner import RecordingPublisher, run_until_enough

RATE = 250
TICK = Ads1299SourceParams(sample_rate=RATE).tick_frames  # 3 frames
IDLE = Ads1299SourceParams(sample_rate=RATE).idle_tick_frames  # 26 frames


class Phases(RecordingPublisher):
    """Switches the subscription after each ``every`` samples of ``raw``: idle, then watched,
    then idle again, remembering which phase each block of ``raw`` arrived in."""

    def __init__(self, every: int) -> None:
        super().__init__(want=4 * every)
        self.every = every
        self.watching = frozenset()
        self.phase_of: list[str] = []
        self._samples = 0
        self._lock = threading.Lock()

    def publish(self, topic: str, block: Block) -> None:
        if topic == "raw":
            with self._lock:
                self.phase_of.append("watched" if self.watching else "idle")
                self._samples += block.n_samples
                phase = self._samples // self.every
                self.watching = frozenset({"raw"}) if phase == 1 else frozenset()
        super().publish(topic, block)


def test_the_default_idle_tick_is_longer_than_the_tick() -> None:
    assert (TICK, IDLE) == (3, 26)
    assert Ads1299SourceParams(sample_rate=RATE, idle_tick_ms=0).idle_tick_frames == TICK
    assert Ads1299SourceParams(sample_rate=RATE, idle_tick_ms=5).idle_tick_frames == TICK


def test_idle_ticks_are_long_watched_ticks_short_and_the_stream_continues() -> None:
    pub = Phases(every=400)
    runner = run_until_enough(pub, timeout=60)
    blocks = pub.blocks["raw"]
    phases = pub.phase_of[: len(blocks)]
    runs = [
        (phase, [b.n_samples for b, _ in run])
        for phase, run in itertools.groupby(zip(blocks, phases, strict=True), lambda bp: bp[1])
    ]
    assert [phase for phase, _ in runs] == ["idle", "watched", "idle"]
    (_, first_idle), (_, watched), (_, idle_again) = runs
    cap = runner.source._max_block  # type: ignore[union-attr]
    # An idle pipeline wakes for 26 frames at a time.
    assert statistics.median(first_idle) >= 20, first_idle[:20]
    assert max(first_idle) <= max(cap, IDLE)
    # Once the blocks the last idle tick had cut are handed on, a watched pipeline's blocks
    # are at most the backlog cap of its short tick ...
    watched = list(itertools.dropwhile(lambda n: n > cap, watched))
    assert watched and max(watched) <= cap, watched[:20]
    # ... and once nobody watches again, its ticks grow back.
    idle_again = list(itertools.dropwhile(lambda n: n <= cap, idle_again))
    assert idle_again and statistics.median(idle_again) >= 20, idle_again[:20]
    # every sample once, numbered in order, across both changes of cadence
    assert all(b.seq == a.end_seq for a, b in itertools.pairwise(blocks))
    assert runner.snapshot().stats.samples_dropped == 0


@pytest.mark.parametrize("value", [-1, 1000.5, "100", True])
def test_a_bad_idle_tick_is_refused_with_its_range(value: object) -> None:
    with pytest.raises(ValueError, match=r"idle_tick_ms: .* from 0 to 1000"):
        Ads1299SourceParams(sample_rate=RATE, idle_tick_ms=value)  # type: ignore[arg-type]
