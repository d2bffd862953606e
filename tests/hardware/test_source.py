"""The ads1299_source stage end to end on the emulator: params, signals, chains, faults."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hw_helpers import SourceRunner, mock_config, stack
from scipy import signal

from eegpi.exc import ConfigError, HardwareError
from eegpi.pipeline.registry import lookup
from eegpi.pipeline.stages.source import Ads1299Source, Ads1299SourceParams
from eegpi.stream import Block

VREF = 4.5


def to_uv(counts: np.ndarray[Any, Any], gain: int) -> np.ndarray[Any, Any]:
    return counts * (VREF * 1e6 / (gain * 2**23))


def test_registered_under_its_type_name() -> None:
    assert lookup("ads1299_source") is Ads1299Source
    assert Ads1299Source.claims_device


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sample_rate": 300}, "sample_rate: 300 is not one of 250, 500, 1000"),
        ({"gain": 3}, "gain: 3 is not one of 1, 2, 4, 6, 8, 12, 24"),
        ({"gain": [24] * 7}, r"gain: a list needs one entry per channel \(8 for 1 chip"),
        ({"input": "emg"}, "input: 'emg' is not one of normal, shorted, test"),
        ({"chips": 5}, "chips: 5 is not one of 1, 2, 3, 4"),
        ({"test_signal": {"amplitude": "3x"}}, "test_signal.amplitude: '3x' is not one of"),
        ({"test_signal": {"freq": "slow"}}, "test_signal: unknown key"),
        ({"lead_off": {"current": "1mA"}}, "lead_off.current: '1mA' is not one of 6nA"),
        ({"chips": 2, "gain": [24] * 8 + [3] * 8}, "gain: 3 is not one of 1, 2, 4"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Ads1299SourceParams(**params)


def test_meta_and_contiguous_seq_with_an_alpha_peak(runner: SourceRunner) -> None:
    src = runner.open(mock_config())
    meta = src._meta
    assert meta is not None
    assert (meta.sample_rate, meta.units, meta.channels[0], len(meta.channels)) == (
        250.0,
        "counts",
        "ch1",
        8,
    )
    assert meta.extra["gain"] == (24,) * 8 and meta.extra["vref_v"] == 4.5
    assert meta.extra["input"] == ("normal",) * 8 and meta.extra["device"] == "ADS1299"
    blocks = runner.collect(src, 4096)
    assert blocks[0].seq == 0
    assert all(b.seq == a.end_seq for a, b in itertools.pairwise(blocks))
    assert all(b.data.dtype == np.int32 for b in blocks)
    uv = to_uv(stack(blocks), 24)
    freqs, psd = signal.welch(uv - uv.mean(axis=0), fs=250, nperseg=1024, axis=0)
    for ch in range(8):
        assert freqs[np.argmax(psd[:, ch])] == pytest.approx(10.0, abs=0.3)
    amplitude = np.sqrt(2 * psd[np.abs(freqs - 10) < 1.0].sum(axis=0) * (freqs[1] - freqs[0]))
    assert np.allclose(amplitude, 20.0, rtol=0.2)  # the emulator's 20 uV alpha
    stats = src.stats()
    assert stats.samples_dropped == 0 and stats.samples_acquired >= 4096


def test_timestamps_follow_the_drdy_edges(runner: SourceRunner) -> None:
    import time

    src = runner.open(mock_config())
    blocks = runner.collect(src, 500)
    assert abs(blocks[0].timestamp - time.time()) < 60
    for a, b in itertools.pairwise(blocks):
        assert b.timestamp - a.timestamp == pytest.approx(a.n_samples / 250, abs=1e-6)


@pytest.mark.parametrize("gain", [1, 2, 4, 6, 8, 12, 24])
def test_every_gain_scales_to_the_same_microvolts(runner: SourceRunner, gain: int) -> None:
    src = runner.open(
        mock_config(noise_uv=0.0), gain=gain, input="test", test_signal={"frequency": "dc"}
    )
    uv = to_uv(stack(runner.collect(src, 200)), gain)
    assert np.allclose(uv.mean(axis=0), 4.5e6 / 2400, rtol=0.002)  # +1.875 mV at gain 1..24


@pytest.mark.parametrize(
    ("amplitude", "frequency", "amp_uv", "hz"),
    [("1x", "slow", 1875.0, 2.048e6 / 2**21), ("2x", "fast", 3750.0, 2.048e6 / 2**20)],
)
def test_test_signal_amplitude_and_frequency(
    runner: SourceRunner, amplitude: str, frequency: str, amp_uv: float, hz: float
) -> None:
    src = runner.open(
        mock_config(),
        sample_rate=1000,
        gain=1,
        input="test",
        test_signal={"amplitude": amplitude, "frequency": frequency},
    )
    uv = to_uv(stack(runner.collect(src, 8192)), 1)[:8192, 0]
    assert np.median(uv[uv > 0]) == pytest.approx(amp_uv, rel=0.01)
    assert np.median(uv[uv < 0]) == pytest.approx(-amp_uv, rel=0.01)
    rising = np.flatnonzero((uv[1:] > 0) & (uv[:-1] <= 0))
    assert 1000 / np.diff(rising).mean() == pytest.approx(hz, rel=0.01)


def test_temperature_follows_the_datasheet_formula(runner: SourceRunner) -> None:
    src = runner.open(mock_config(temperature_c=37.0), gain=1, input="temperature")
    uv = to_uv(stack(runner.collect(src, 100)), 1).mean(axis=0)
    celsius = (uv - 145300) / 490 + 25
    assert np.allclose(celsius, 37.0, atol=0.2)


def test_supply_shorted_and_powered_down_channels(runner: SourceRunner) -> None:
    src = runner.open(
        mock_config(),
        gain=[1, 1, 1, 1, 24, 24, 24, 24],
        input=["supply", "supply", "supply", "supply", "shorted", "shorted", "off", "normal"],
    )
    data = stack(runner.collect(src, 1000))
    volts = to_uv(data[:, :4], 1).mean(axis=0) / 1e6
    assert volts == pytest.approx([2.5, 2.5, 0.825, 0.825], rel=0.01)  # AVDD/2 and DVDD/4
    shorted_rms = to_uv(data[:, 4:6], 24).std(axis=0)
    assert np.allclose(shorted_rms, 0.14, rtol=0.3)  # datasheet: 0.14 uVrms at 250 SPS, G24
    assert not data[:, 6].any()  # powered down reads 0


@pytest.mark.parametrize("chips", [2, 4])
def test_daisy_chains(runner: SourceRunner, chips: int) -> None:
    src = runner.open(mock_config(), chips=chips, input=["normal"] * 8 * chips)
    assert src._meta is not None and len(src._meta.channels) == 8 * chips
    assert src._meta.channels[-1] == f"ch{8 * chips}"
    data = stack(runner.collect(src, 300))
    assert data.shape[1] == 8 * chips
    assert src.stats().samples_dropped == 0  # every chip's status word carried the 0xC mark
    # Each chip has its own electrodes: chip 2's columns are not a copy of chip 1's.
    assert not np.array_equal(data[:, :8], data[:, 8:16])


def test_missing_chips_in_the_chain_are_caught(runner: SourceRunner) -> None:
    src = runner.open(mock_config(chips=1), chips=2)  # the board has one chip, config says 2
    src.start()
    with pytest.raises(HardwareError, match=r"fail the status-word check \(chip 2 status 0x000000"):
        while True:  # chip 2's slot reads zeros (DAISY_IN grounded): no 0xC mark
            assert src.read(5.0) is None
    assert src.stats().samples_dropped >= 125


def test_smaller_parts_have_fewer_channels(runner: SourceRunner) -> None:
    src = runner.open(mock_config(id_register=0x3C))
    assert src._meta is not None and len(src._meta.channels) == 4
    assert stack(runner.collect(src, 50)).shape[1] == 4
    with pytest.raises(ConfigError, match="stage 'acquire': gain: a list needs one entry"):
        runner.open(mock_config(id_register=0x3C), gain=[24] * 8)


def test_lead_off_bits_reach_the_device_report(runner: SourceRunner) -> None:
    src = runner.open(mock_config(leads_off=(3, 12)), chips=2, lead_off=True)
    data = stack(runner.collect(src, 50))
    assert (data[:, 2] == 2**23 - 1).all() and (data[:, 11] == 2**23 - 1).all()  # saturated
    report = src.device_report()
    assert report is not None
    off = {lo.channel for lo in report.lead_off if lo.p_off}
    assert off == {"ch3", "ch12"}
    assert not any(lo.n_off for lo in report.lead_off)  # SRB1 reference: N side not sensed
    assert all(lo.sensed for lo in report.lead_off)
    regs = {r.name: r.value for r in report.registers}
    assert regs["CONFIG4"] == 0x02 and regs["LOFF_SENSP"] == 0xFF and regs["MISC1"] == 0x20
    assert (report.held_by, report.sample_rate, report.channels) == ("test", 250, 16)


def test_no_lead_off_sensing_no_bits(runner: SourceRunner) -> None:
    src = runner.open(mock_config(leads_off=(3,)))
    runner.collect(src, 10)
    report = src.device_report()
    assert report is not None and not any(lo.p_off or lo.sensed for lo in report.lead_off)


def test_no_chip_gives_a_clear_error(runner: SourceRunner) -> None:
    with pytest.raises(HardwareError, match="no ADS1299 on emulator: ID register read 0xFF"):
        runner.open(mock_config(miso_stuck=0xFF))


def test_stuck_drdy_raises_from_read(runner: SourceRunner) -> None:
    src = runner.open(mock_config(stuck_drdy_after=20))
    runner.collect(src, 20)
    with pytest.raises(HardwareError, match="no DRDY from the ADS1299 for"):
        while True:
            src.read(5.0)


def test_corrupt_frames_are_dropped_and_split_blocks(runner: SourceRunner) -> None:
    src = runner.open(mock_config(corrupt_every=50))
    blocks = runner.collect(src, 500)
    seqs = np.concatenate([b.seq + np.arange(b.n_samples) for b in blocks])
    assert not np.isin(np.arange(49, 500, 50), seqs).any()  # every 50th conversion is gone
    assert all(np.all(np.diff(b.seq + np.arange(b.n_samples)) == 1) for b in blocks)
    assert src.stats().samples_dropped >= 9


def test_blocks_coalesce_at_high_rates(runner: SourceRunner) -> None:
    src = runner.open(mock_config(), sample_rate=16000)
    blocks = runner.collect(src, 16000)
    assert np.median([b.n_samples for b in blocks]) >= 32


@pytest.mark.parametrize(("tick_ms", "frames"), [(0.0, 1), (8.0, 3), (20.0, 6)])
def test_low_rate_blocks_hold_one_tick_in_real_time(
    runner: SourceRunner, tick_ms: float, frames: int
) -> None:
    src = runner.open(mock_config(realtime=True, stamp_index=True), tick_ms=tick_ms)
    assert src.params.tick_frames == frames
    blocks: list[Block] = runner.collect(src, 40 * frames, timeout=2.0)
    # A tick waits for the frames due within tick_ms of its first one (250 SPS: 1 + 250 *
    # tick_ms / 1000), then runs on what arrived: bigger only when the host held the reader
    # up, smaller only at a lost conversion.
    sizes = [b.n_samples for b in blocks]
    if frames == 1:
        assert np.median(sizes) <= 2
    else:
        assert np.median(sizes) >= frames
    for b in blocks:  # every sample is the conversion its seq names; gaps are counted
        assert np.array_equal(b.data[:, 0], b.seq + np.arange(b.n_samples))
    stats = src.stats()
    assert stats.samples_acquired + stats.samples_dropped == blocks[-1].end_seq


@pytest.mark.parametrize("tick_ms", [-1, 51, "8", True])
def test_tick_ms_out_of_range_is_refused(tick_ms: object) -> None:
    with pytest.raises(ValueError, match=r"tick_ms: .* from 0 to 50"):
        Ads1299SourceParams(tick_ms=tick_ms)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_stats_count_every_loss_once_and_survive_stop_and_close(
    runner: SourceRunner, mode: str
) -> None:
    # 2 conversions lost at the DRDY line, every 50th frame torn (status word broken).
    cfg = mock_config(
        acquisition=mode,  # type: ignore[arg-type]
        corrupt_every=50,
        drop_conversions=(120, 121),
        stamp_index=True,
    )
    src = runner.open(cfg)
    blocks = runner.collect(src, 400)
    end = blocks[-1].end_seq
    seqs = np.concatenate([b.seq + np.arange(b.n_samples) for b in blocks])
    assert np.array_equal(np.concatenate([b.data[:, 0] for b in blocks]), seqs)
    torn = set(range(49, end, 50))
    assert set(range(end)) - set(seqs.tolist()) == torn | {120, 121}
    running = src.stats()
    assert running.samples_acquired == len(seqs)
    assert running.samples_dropped == len(torn) + 2
    assert running.samples_acquired + running.samples_dropped == src.next_slot == end
    src.stop()
    assert src.stats() == running
    src.close()
    assert src.stats() == running  # the counters outlive the ring and the process
