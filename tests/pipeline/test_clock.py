"""The sample clock's fit on synthetic stamps: jitter averaged away, drift followed, late stamps,
gaps and clock steps handled, times and slots mapped both ways."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from eegpi.pipeline.clock import (
    BUCKETS,
    RESTART_AFTER,
    ClockNotReady,
    SampleClock,
)

FS = 250.0
OFFSET_NS = 1_700_000_000_000_000_000
"""Edge clock (monotonic) to Unix time."""
MONO0 = 5_000_000_000


def true_ns(seq: npt.NDArray[np.int64], ppm: float = 0.0) -> npt.NDArray[np.int64]:
    """Monotonic time of each conversion of a crystal ``ppm`` fast."""
    return MONO0 + np.round(seq * 1e9 / (FS * (1 + ppm * 1e-6))).astype(np.int64)


def feed(
    clock: SampleClock,
    seq: npt.NDArray[np.int64],
    stamps: npt.NDArray[np.int64],
    tick: int = 3,
) -> list[tuple[int, float]]:
    """Updates a tick at a time; (seq, time) of each tick's first sample, as a source stamps."""
    out = []
    for i in range(0, len(seq), tick):
        clock.update(seq[i : i + tick], stamps[i : i + tick])
        out.append((int(seq[i]), clock.seq_time(int(seq[i]))))
    return out


def errors_us(times: list[tuple[int, float]], ppm: float) -> npt.NDArray[np.float64]:
    """Each time minus its true conversion time, in microseconds."""
    seq = np.array([s for s, _ in times])
    t = np.array([t for _, t in times])
    return (t - (true_ns(seq, ppm) + OFFSET_NS) / 1e9) * 1e6


def jittered(seq: npt.NDArray[np.int64], ppm: float, jitter_us: float, seed: int = 1) -> Any:
    late = np.random.default_rng(seed).uniform(0, jitter_us * 1e3, len(seq)).astype(np.int64)
    return true_ns(seq, ppm) + late


def fresh() -> SampleClock:
    clock = SampleClock(FS)
    clock.reset(OFFSET_NS)
    return clock


def test_exact_stamps_give_exact_times_and_rate() -> None:
    clock = fresh()
    seq = np.arange(2000)
    err = errors_us(feed(clock, seq, true_ns(seq, 100.0)), 100.0)
    assert np.abs(err).max() < 0.5  # float Unix seconds resolve 0.24 us
    line = clock.line
    assert line is not None
    assert line.rate_hz == pytest.approx(FS * 1.0001, rel=1e-9)
    assert line.ppm == pytest.approx(100.0, abs=1e-3)
    assert line.residual_ns < 1.0


def test_jitter_is_averaged_away_and_the_drift_followed() -> None:
    clock = fresh()
    seq = np.arange(int(40 * FS))
    times = feed(clock, seq, jittered(seq, 100.0, 50.0))
    err = errors_us(times, 100.0)[int(10 * FS / 3) :]  # after 10 s of settling
    # The stamps are late by 0..50 us: their mean (25 us) stays as an offset, the rest goes.
    assert np.abs(err - err.mean()).max() < 5.0
    assert err.mean() == pytest.approx(25.0, abs=2.0)
    line = clock.line
    assert line is not None
    assert line.ppm == pytest.approx(100.0, abs=1.0)
    assert line.residual_ns / 1e3 == pytest.approx(50 / np.sqrt(12), rel=0.1)


def test_a_rate_that_changes_is_followed_within_a_window() -> None:
    clock = fresh()
    seq = np.arange(int(60 * FS))
    # 100 ppm for 20 s, then 130 ppm (continuous in time).
    split = int(20 * FS)
    stamps = true_ns(seq, 100.0)
    stamps[split:] = stamps[split] + (true_ns(seq[split:] - split, 130.0) - MONO0)
    feed(clock, seq, stamps)
    line = clock.line
    assert line is not None and line.ppm == pytest.approx(130.0, abs=2.0)


def test_a_late_stamp_moves_nothing_and_is_counted() -> None:
    seq = np.arange(3000)
    stamps = jittered(seq, 0.0, 20.0)
    clean = fresh()
    feed(clean, seq, stamps)
    late = stamps.copy()
    late[2500] += 2_000_000  # an interrupt 2 ms late
    late[2800] += 600_000
    spoilt = fresh()
    feed(spoilt, seq, late)
    assert spoilt.outliers == 2
    for s in (2999, 3100):
        assert spoilt.seq_time(s) == pytest.approx(clean.seq_time(s), abs=0.3e-6)


def test_gaps_in_seq_stay_on_the_line() -> None:
    clock = fresh()
    seq = np.concatenate([np.arange(1000), np.arange(1500, 2500), np.arange(9000, 9600)])
    err = errors_us(feed(clock, seq, true_ns(seq, -50.0)), -50.0)
    assert np.abs(err).max() < 0.5
    assert clock.outliers == 0


def test_a_stepped_clock_restarts_the_fit() -> None:
    clock = fresh()
    seq = np.arange(3000)
    stamps = true_ns(seq)
    stamps[2000:] += 10_000_000  # the edge clock jumps 10 ms
    feed(clock, seq, stamps)
    assert (clock.outliers, clock.restarts) == (RESTART_AFTER, 1)
    assert clock.seq_time(2999) * 1e9 == pytest.approx(stamps[2999] + OFFSET_NS, abs=500)


def test_seq_at_is_the_nearest_sample() -> None:
    clock = fresh()
    seq = np.arange(500)
    feed(clock, seq, true_ns(seq))
    for s in (0, 123, 499, 10_000):
        t = clock.seq_time(s)
        assert clock.seq_at(t) == s
        assert clock.seq_at(t + 0.49 / FS) == s
        assert clock.seq_at(t + 0.51 / FS) == s + 1


def test_the_first_stamp_alone_uses_the_programmed_rate() -> None:
    clock = fresh()
    clock.update(np.array([7]), np.array([MONO0]))
    assert clock.seq_time(1007) - clock.seq_time(7) == pytest.approx(1000 / FS, abs=0.5e-6)
    line = clock.line
    assert line is not None and line.rate_hz == 0.0 and line.ppm == 0.0


def test_no_times_before_the_first_stamp_or_after_a_reset() -> None:
    clock = fresh()
    with pytest.raises(ClockNotReady, match="no sample has arrived yet"):
        clock.seq_time(0)
    clock.update(np.arange(3), true_ns(np.arange(3)))
    clock.reset(OFFSET_NS)
    with pytest.raises(ClockNotReady):
        clock.seq_at(1.7e9)


def test_the_state_stays_bounded_over_a_long_run() -> None:
    clock = SampleClock(FS, window_s=4.0)
    clock.reset(OFFSET_NS)
    seq = np.arange(int(60 * FS))
    feed(clock, seq, true_ns(seq), tick=7)
    assert len(clock._buckets) <= BUCKETS + 1
    line = clock.line
    assert line is not None and line.points <= 4 * FS


def test_jittered_stamps_from_the_first_one_on_need_no_restart() -> None:
    for seed in range(20):
        clock = fresh()
        seq = np.arange(int(5 * FS))
        feed(clock, seq, jittered(seq, 100.0, 50.0, seed=seed), tick=1)
        assert (clock.outliers, clock.restarts) == (0, 0), seed


def _fed_in_batches(
    clock: SampleClock, seq: npt.NDArray[np.int64], stamps: npt.NDArray[np.int64], tick: int = 3
) -> list[tuple[int, float]]:
    """As the source does: ``feed`` a tick at a time, each tick's first sample stamped."""
    out = []
    for i in range(0, len(seq), tick):
        clock.feed(seq[i : i + tick], stamps[i : i + tick])
        out.append((int(seq[i]), clock.seq_time(int(seq[i]))))
    return out


def test_batched_feeding_keeps_the_times_of_per_tick_updates() -> None:
    seq = np.arange(int(40 * FS))
    stamps = jittered(seq, 100.0, 50.0)
    each, batched = fresh(), fresh()
    per_tick = errors_us(feed(each, seq, stamps), 100.0)
    in_batches = errors_us(_fed_in_batches(batched, seq, stamps), 100.0)
    # A block is stamped up to BATCH samples beyond the newest fitted stamp: on a settled line
    # that moves its time by a couple of microseconds after a second (256 stamps, 50 us of
    # jitter: the slope is known to ~10 ppm), by well under one after ten.
    diff = np.abs(in_batches - per_tick)
    assert diff[int(FS / 3) :].max() < 2.5
    assert diff[int(10 * FS / 3) :].max() < 0.5
    settled = in_batches[int(10 * FS / 3) :]
    assert np.abs(settled - settled.mean()).max() < 5.0
    batched.flush()
    a, b = each.line, batched.line
    assert a is not None and b is not None
    # The same window (bucket edges fall at batch boundaries, so a few stamps more or less).
    assert b.points == pytest.approx(a.points, rel=0.05)
    assert b.ppm == pytest.approx(a.ppm, abs=0.05)
    assert b.residual_ns == pytest.approx(a.residual_ns, rel=0.01)


def test_batched_feeding_still_rejects_late_stamps_and_restarts_after_a_step() -> None:
    clock = fresh()
    seq = np.arange(2000)
    stamps = true_ns(seq, 0.0)
    stamps[1500] += 3_000_000  # one read 3 ms late
    stamps[1800:] += 50_000_000  # the edge clock steps by 50 ms
    times = _fed_in_batches(clock, seq, stamps)
    clock.flush()
    assert clock.outliers >= 1
    assert clock.restarts == 1
    late = [t for s, t in times if s == 1500]
    assert late and abs(late[0] - (true_ns(np.array([1500]))[0] + OFFSET_NS) / 1e9) < 1e-6
