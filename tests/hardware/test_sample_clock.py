"""Sample-clock timestamps on the emulator: DRDY stamps with interrupt jitter and a crystal off
its nominal rate, against the true conversion times the emulator knows (virtual time)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hw_helpers import SourceRunner, mock_config

from eegpi.ads1299.commands import Opcode
from eegpi.hardware.config import EmulatorConfig
from eegpi.hardware.emulator import EmulatedBoard
from eegpi.pipeline.clock import ClockNotReady
from eegpi.stream import Block

FCLK_HZ = 2.048e6
SPEED = 4_000_000


def true_period_ns(sample_rate: int, ppm: float) -> float:
    """tDR of the emulated chip: fMOD / data rate periods of its (ppm-off) master clock."""
    return FCLK_HZ / sample_rate / (FCLK_HZ * (1 + ppm * 1e-6)) * 1e9


def edge_lateness(jitter_us: float, seed: int = 0, edges: int = 300) -> np.ndarray[Any, Any]:
    """How late each DRDY stamp is against its conversion (ns), through the gpiod stand-in."""
    board = EmulatedBoard(EmulatorConfig(realtime=False, drdy_jitter_us=jitter_us, seed=seed))
    dev = board.spidev()
    dev.open(0, 0)
    dev.mode = 1
    drdy = board.request_drdy("/dev/gpiochip0", 26)
    dev.xfer2([Opcode.SDATAC], SPEED, 2)
    t0 = board.clock.monotonic_ns()
    dev.xfer2([Opcode.START], SPEED, 2)
    stamps: list[int] = []
    while len(stamps) < edges:
        board.clock.sleep(0.004 * 8)
        stamps += [e.timestamp_ns for e in drdy.read_edge_events()]
    period = true_period_ns(250, 0.0)
    first = t0 + 4 * period + 9 * 1e9 / FCLK_HZ
    true = first + np.arange(len(stamps)) * period
    return np.array(stamps) - true


def test_emulated_stamps_are_late_by_up_to_the_jitter() -> None:
    late = edge_lateness(50.0)
    assert late.min() >= -1 and late.max() <= 50_001
    assert late.max() - late.min() > 40_000  # spread over the range, not a constant delay
    assert np.array_equal(late, edge_lateness(50.0))  # reproducible from the seed
    assert not np.array_equal(late, edge_lateness(50.0, seed=1))
    assert np.abs(edge_lateness(0.0)).max() <= 1


@pytest.mark.parametrize("ppm", [100.0, -37.3, 10000.0])
def test_virtual_time_with_a_clock_off_nominal_never_stalls(
    runner: SourceRunner, ppm: float
) -> None:
    # An edge is due at ceil(first + k tDR); counting the fallen ones by floor division alone
    # disagreed with that by one for some k, and the virtual clock then waited forever.
    src = runner.open(mock_config(stamp_index=True, clock_ppm=ppm))
    blocks = runner.collect(src, 6000)
    data = np.concatenate([b.data[:, 0] for b in blocks])
    assert np.array_equal(np.diff(data), np.ones(len(data) - 1))


@pytest.mark.parametrize("bad", [-1.0, 1e5, True, "50"])
def test_a_jitter_that_is_not_a_duration_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"emulator\.drdy_jitter_us: .* is not a number of micro"):
        EmulatorConfig(drdy_jitter_us=bad)


def collect_run(runner: SourceRunner, seconds: float, **emulator: Any) -> tuple[Any, list[Block]]:
    src = runner.open(mock_config(stamp_index=True, **emulator))
    return src, runner.collect(src, int(seconds * 250))


def errors_us(blocks: list[Block], ppm: float) -> np.ndarray[Any, Any]:
    """Each block's timestamp minus its first conversion's true time, up to one constant (the
    run's start and the stamps' mean lateness), in microseconds. The conversion is the index
    the emulator wrote into channel 1, not the block's seq."""
    k = np.array([int(b.data[0, 0]) for b in blocks])
    t = np.array([b.timestamp for b in blocks])
    rel = (t - t[0]) - (k - k[0]) * true_period_ns(250, ppm) * 1e-9
    return np.asarray(rel * 1e6)


def test_timestamps_lose_the_edge_jitter_and_follow_a_fast_crystal(
    runner: SourceRunner,
) -> None:
    src, blocks = collect_run(runner, 40.0, drdy_jitter_us=50.0, clock_ppm=100.0)
    settled = [b for b in blocks if b.seq >= 10 * 250]  # the fit has 10 s behind it
    err = errors_us(settled, 100.0)
    assert np.abs(err - err.mean()).max() < 5.0, np.abs(err - err.mean()).max()
    stats = src.stats()
    assert stats.clock_ppm == pytest.approx(100.0, abs=1.0)
    assert stats.sample_rate_measured_hz == pytest.approx(250.025, abs=0.00025)
    assert stats.timestamp_residual_us == pytest.approx(50 / np.sqrt(12), rel=0.15)


def test_the_stamps_it_smooths_do_jitter(runner: SourceRunner) -> None:
    """The check above can fail: the edge stamps themselves spread over the jitter."""
    _, blocks = collect_run(runner, 4.0, drdy_jitter_us=50.0, clock_ppm=100.0)
    err = errors_us(blocks[len(blocks) // 2 :], 100.0)
    assert np.abs(err - err.mean()).max() < 5.0  # the sample clock
    src = runner.sources[-1]
    assert src.clock is not None and src.clock.residual_ns > 10_000  # what it smoothed


def test_a_missed_interrupt_leaves_the_times_on_the_line(runner: SourceRunner) -> None:
    missed = tuple(range(3000, 3040))  # 160 ms of conversions without an edge
    src, blocks = collect_run(
        runner, 20.0, drdy_jitter_us=50.0, clock_ppm=-40.0, silent_conversions=missed
    )
    assert src.stats().samples_dropped > 0
    assert any(b.seq != a.end_seq for a, b in itertools.pairwise(blocks))
    err = errors_us([b for b in blocks if b.seq >= 2500], -40.0)
    assert np.abs(err - err.mean()).max() < 5.0


def test_seq_time_and_seq_at_on_the_source(runner: SourceRunner) -> None:
    src = runner.open(mock_config(drdy_jitter_us=50.0))
    with pytest.raises(ClockNotReady):
        src.seq_time(0)
    blocks = runner.collect(src, 500)
    for block in blocks[-5:]:
        assert src.seq_at(block.timestamp) == block.seq
        assert src.seq_time(block.seq) == pytest.approx(block.timestamp, abs=5e-6)
    newest = blocks[-1].end_seq - 1
    assert src.seq_at(src.seq_time(newest) + 1.0) == newest + 250


def test_a_backlog_comes_in_blocks_short_enough_for_the_nominal_rate(
    runner: SourceRunner,
) -> None:
    # Virtual time runs the chip as fast as the reader: every read finds a backlog. Samples
    # inside a block are timed at the nominal rate from its timestamp, so a long block of a
    # crystal 1 % fast would put its last samples hundreds of microseconds off the clock.
    src = runner.open(mock_config(clock_ppm=10000.0))
    blocks = runner.collect(src, 5000)
    assert max(b.n_samples for b in blocks) <= 6  # two ticks of 3 (20 ms is 5 samples)
    for block in blocks[len(blocks) // 2 :]:
        last = block.timestamp + (block.n_samples - 1) / 250
        assert abs(last - src.seq_time(block.end_seq - 1)) < 250e-6
