"""A pipeline ticks as slowly as its most demanding consumer allows: the longer
``idle_tick_ms`` tick while nobody waits for its output, ``tick_ms`` for a subscriber at the
default 10 ms latency, a tick in between for one that asked for more; no sample lost or
renumbered across any change."""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import threading
from typing import Any

import pytest

from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.pipeline import runner as runner_module
from eegpi.pipeline.runner import PipelineRunner
from eegpi.pipeline.spec import parse_pipeline
from eegpi.pipeline.stage import StageContext
from eegpi.pipeline.stages.source import Ads1299SourceParams
from eegpi.stream import Block
from tests.pipeline.test_runner import RecordingPublisher, _spec, run_until_enough

RATE = 250
TICK = Ads1299SourceParams(sample_rate=RATE).tick_frames  # 3 frames
IDLE = Ads1299SourceParams(sample_rate=RATE).idle_tick_frames  # 26 frames
EVERY = 1500
"""Samples per phase: more than the ring holds (2 s), so the blocks a phase's ticks cut from
a backlog cannot fill the next phase (in virtual time the chip runs ahead of the pipeline)."""


class Phases(RecordingPublisher):
    """Changes the subscription to ``raw`` after each ``every`` samples, through ``latencies``
    (None: nobody subscribes; a number: a subscriber with that ``max_latency_ms``),
    remembering which phase each block of ``raw`` arrived in."""

    def __init__(self, every: int, latencies: list[float | None]) -> None:
        super().__init__(want=(len(latencies) + 1) * every)
        self.every = every
        self.latencies = latencies
        self.watching = {} if latencies[0] is None else {"raw": latencies[0]}
        self.phase_of: list[int] = []
        self._samples = 0
        self._lock = threading.Lock()

    def publish(self, topic: str, block: Block) -> None:
        if topic == "raw":
            with self._lock:
                phase = min(self._samples // self.every, len(self.latencies) - 1)
                self.phase_of.append(phase)
                self._samples += block.n_samples
                latency = self.latencies[min(self._samples // self.every, len(self.latencies) - 1)]
                self.watching = {} if latency is None else {"raw": latency}
        super().publish(topic, block)


def _run_phases(latencies: list[float | None]) -> tuple[list[list[int]], int]:
    """Run the pipeline through three phases of ``latencies``; the sizes of the blocks that
    arrived in each, and the source's backlog cap. Checks that every sample came once,
    numbered in order, across the changes of cadence, and that none was dropped."""
    pub = Phases(every=EVERY, latencies=latencies)
    runner = run_until_enough(pub, timeout=60)
    blocks = pub.blocks["raw"]
    phases = pub.phase_of[: len(blocks)]
    runs = [
        (phase, [b.n_samples for b, _ in run])
        for phase, run in itertools.groupby(zip(blocks, phases, strict=True), lambda bp: bp[1])
    ]
    assert [phase for phase, _ in runs] == [0, 1, 2]
    assert all(b.seq == a.end_seq for a, b in itertools.pairwise(blocks))
    assert runner.snapshot().stats.samples_dropped == 0
    cap: int = runner.source._max_block  # type: ignore[union-attr]
    return [sizes for _, sizes in runs], cap


def test_the_default_idle_tick_is_longer_than_the_tick() -> None:
    assert (TICK, IDLE) == (3, 26)
    assert Ads1299SourceParams(sample_rate=RATE, idle_tick_ms=0).idle_tick_frames == TICK
    assert Ads1299SourceParams(sample_rate=RATE, idle_tick_ms=5).idle_tick_frames == TICK


def test_idle_ticks_are_long_watched_ticks_short_and_the_stream_continues() -> None:
    (first_idle, watched, idle_again), cap = _run_phases([None, 10.0, None])
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


def test_a_subscriber_that_asks_for_more_latency_gets_fewer_longer_ticks() -> None:
    params = Ads1299SourceParams(sample_rate=RATE)
    # 48 ms of signal (50 ms less the margin for the pipeline's own work): 13 frames
    patient = params.tick_frames_for(50.0)
    assert patient == 13
    (short, long_ticks, short_again), cap = _run_phases([10.0, 50.0, 10.0])
    assert max(short) <= cap, short[:20]
    long_ticks = list(itertools.dropwhile(lambda n: n <= cap, long_ticks))
    # a tick gathers 13 frames (a backlog is cut into blocks of 13 and what is left)
    assert long_ticks and statistics.median(long_ticks) >= 10, long_ticks[:20]
    assert max(long_ticks) <= max(cap, patient)
    short_again = list(itertools.dropwhile(lambda n: n > cap, short_again))
    assert short_again and max(short_again) <= cap, short_again[:20]


def test_the_tick_follows_the_most_demanding_consumer_within_its_bounds() -> None:
    params = Ads1299SourceParams(sample_rate=RATE)
    assert params.tick_frames_for(None) == IDLE
    for latency in (0.0, 5.0, 10.0):  # the default 10 ms is what tick_ms is made for
        assert params.tick_frames_for(latency) == TICK
    assert params.tick_frames_for(20.0) == 1 + int(RATE * 0.018)
    assert params.tick_frames_for(1000.0) == IDLE  # never slower than the idle tick
    off = Ads1299SourceParams(sample_rate=RATE, idle_tick_ms=0)
    assert off.tick_frames_for(None) == off.tick_frames_for(500.0) == TICK


@pytest.mark.parametrize("value", [-1, 1000.5, "100", True])
def test_a_bad_idle_tick_is_refused_with_its_range(value: object) -> None:
    with pytest.raises(ValueError, match=r"idle_tick_ms: .* from 0 to 1000"):
        Ads1299SourceParams(sample_rate=RATE, idle_tick_ms=value)  # type: ignore[arg-type]


PACED = DeviceConfig(
    backend="mock",
    acquisition="thread",
    emulator=EmulatorConfig(realtime=False, virtual_speed=1.0),
)
"""Virtual time no faster than the wall clock: a tick of 1 s of signal takes a second to
gather, and no conversion is lost to the host."""


class FirstSubscriber(RecordingPublisher):
    """Nobody watches ``raw`` until the read after its first block has begun: then a
    subscriber at 10 ms comes, as the hub announces one (``watching`` changes, then the
    runner's hurry callback runs, from another thread)."""

    def __init__(self) -> None:
        super().__init__(want=10**9)
        self.watching = {}
        self.before: list[int] = []
        self.after: list[int] = []
        self.idle_read = threading.Event()
        """The runner asked for the patience of the read that follows the first block."""
        self.done = threading.Event()

    def patience_ms(self, topic: str) -> float | None:
        if topic == "raw" and self.before and not self.idle_read.is_set():
            self.idle_read.set()  # this read gathers an idle tick, whatever comes next
            return None
        return super().patience_ms(topic)

    def publish(self, topic: str, block: Block) -> None:
        if topic == "raw":
            (self.after if self.idle_read.is_set() else self.before).append(block.n_samples)
            if len(self.after) >= 5:
                self.done.set()
        super().publish(topic, block)


def _idle_spec(idle_tick_ms: float) -> dict[str, Any]:
    spec = _spec()
    spec["stages"][0]["params"]["idle_tick_ms"] = idle_tick_ms
    return spec


def test_an_idle_tick_longer_than_a_read_goes_on_over_several_reads() -> None:
    """The runner reads with a 100 ms timeout (to see a stop); a 1 s idle tick is gathered
    over ten such reads, not cut into 100 ms pieces."""
    pub = RecordingPublisher(want=4 * 251)
    pub.watching = {}
    paced = dataclasses.replace(
        PACED, emulator=dataclasses.replace(PACED.emulator, virtual_speed=5.0)
    )  # a second of signal in 200 ms
    runner = PipelineRunner(parse_pipeline(_idle_spec(1000.0)), StageContext("t", paced, pub))
    runner.open()
    runner.start()
    try:
        assert pub.enough.wait(30), "no data reached the sinks"
    finally:
        runner.stop()
    sizes = [b.n_samples for b in pub.blocks["raw"]]
    # Ticks of 251 frames (a frame that came between the wait and the take follows in a
    # block of its own); 100 ms pieces were 126-155 frames.
    assert max(sizes) == 251, sizes
    assert sum(n for n in sizes if n >= 200) >= 0.75 * sum(sizes), sizes


@pytest.mark.parametrize("acquisition", ["thread", "process"])
def test_a_first_subscriber_ends_a_long_idle_tick_at_once(
    acquisition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reads that never time out on their own: without the hurry, the idle read under way
    # when the subscriber comes would wait for all its 251 frames (a second).
    monkeypatch.setattr(runner_module, "_READ_TIMEOUT_S", 5.0)
    pub = FirstSubscriber()
    device = dataclasses.replace(PACED, acquisition=acquisition)
    runner = PipelineRunner(parse_pipeline(_idle_spec(1000.0)), StageContext("t", device, pub))
    runner.open()
    runner.start()
    try:
        assert pub.idle_read.wait(30), "no first block"
        pub.watching = {"raw": 10.0}
        assert pub.hurry is not None, "the runner did not ask to be hurried"
        pub.hurry()
        assert pub.done.wait(30), f"blocks after the subscription: {pub.after}"
    finally:
        runner.stop()
    assert pub.hurry is None, "the runner's callback outlived it"
    # The idle tick being gathered when the subscriber came was cut short: what had arrived
    # went at once, not after the 251 frames (a second) it waits for; then 3-frame ticks. The
    # cut-short read is the first after the subscription, or the second when the first only
    # handed on a block split off the tick before (a frame that came between its wait and its
    # take): that one returns at once, and the runner may ask for the next read's patience
    # before the subscriber is counted.
    cap: int = runner.source._max_block  # type: ignore[union-attr]
    assert all(n < 251 for n in pub.after), pub.after
    assert sum(n > cap for n in pub.after[:2]) <= 1, pub.after
    assert max(pub.after[2:]) <= cap, pub.after  # ticks of 3, or a short backlog
    blocks = pub.blocks["raw"]
    assert all(b.seq == a.end_seq for a, b in itertools.pairwise(blocks))
    assert runner.snapshot().stats.samples_dropped == 0
