"""Board profiles (``device.board``) on the emulator: each profile's wiring, 16 channels from a
PiEEG-16 through the source stage, and per-chip settings where each chip has its own CS."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hw_helpers import SourceRunner, mock_config, stack

from eegpi.ads1299.registers import Reg
from eegpi.ads1299.settings import ChannelSettings, ChipSettings
from eegpi.emulator import Board
from eegpi.exc import ConfigError, HardwareError
from eegpi.hardware import open_device, probe
from eegpi.hardware.config import DeviceConfig
from eegpi.hardware.driver import Ads1299


def board_config(board: str, **device: Any) -> DeviceConfig:
    return dataclasses.replace(mock_config(stamp_index=True), board=board, **device)  # type: ignore[arg-type]


def gain_bits(regs: bytes) -> list[int]:
    """CHnSET.GAIN code of each channel."""
    return [(regs[Reg.CH1SET + k] >> 4) & 0x7 for k in range(8)]


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ({"board": "pieeg17"}, "device.board: 'pieeg17' is not one of pieeg, pieeg16"),
        ({"board": "pieeg", "cs2_pin": 19}, "board pieeg fixes its pins; set device.board: custom"),
        ({"board": "custom", "cs2_pin": 19}, "cs2_pin and device.drdy2_pin: a second chip"),
        ({"board": "custom", "cs2_pin": 40, "drdy2_pin": 13}, "cs2_pin: 40 is not a header GPIO"),
        ({"board": "pieeg16", "drdy_pin": 5}, "pieeg16 has DRDY on GPIO26"),
    ],
)
def test_bad_board_configs_name_the_key(device: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeviceConfig(**device)


@pytest.mark.parametrize(
    ("board", "chips", "message"),
    [
        ("pieeg16", 1, "chips: 1 does not fit device.board pieeg16, which holds 2 chip"),
        ("daisy", 1, "chips: 1 does not fit device.board daisy.*a daisy chain has 2-4"),
    ],
)
def test_a_chip_count_the_board_cannot_hold_is_refused(
    board: str, chips: int, message: str
) -> None:
    with pytest.raises(HardwareError, match=message):
        open_device(board_config(board), chips)


def run_frames(device: Ads1299, n: int) -> list[list[int]]:
    """Frames read at chip 1's DRDY, as the acquisition reads them."""
    device.start()
    frames = []
    while len(frames) < n:
        assert device.link.drdy.wait(5.0)
        device.link.drdy.read_events()
        frames.append(device.read_frame())
    device.stop()
    return frames


def counts(frame: list[int], chip: int, channel: int) -> int:
    """Channel ``channel`` (0-based) of ``chip`` in a frame of 27-byte chip frames."""
    at = chip * 27 + 3 + 3 * channel
    value = int.from_bytes(bytes(frame[at : at + 3]), "big")
    return value - (1 << 24) if value & 0x800000 else value


@pytest.mark.parametrize(
    ("board", "device", "chips", "pins"),
    [
        ("pieeg", {}, 1, {"drdy": 26, "cs": 8}),
        ("daisy", {}, 3, {"drdy": 26, "cs": 8}),
        ("custom", {"drdy_pin": 5, "spi_device": 1}, 1, {"drdy": 5, "cs": 7}),
    ],
)
def test_single_chip_select_profiles_wire_their_pins(
    board: str, device: dict[str, Any], chips: int, pins: dict[str, int]
) -> None:
    cfg = board_config(board, **device)
    emulated = Board.from_device(cfg, chips)
    assert {k: emulated.pins[k] for k in pins} == pins and "cs2" not in emulated.pins
    dev = open_device(cfg, chips, emulated)
    try:
        assert dev.chip_selects == 1 and dev.channels == 8 * chips
        frames = run_frames(dev, 5)
    finally:
        dev.close()
    assert all(len(f) == 27 * chips for f in frames)
    assert all(f[27 * c] >> 4 == 0xC for f in frames for c in range(chips))
    stamps = [counts(f, 0, 0) for f in frames]
    assert stamps == list(range(stamps[0], stamps[0] + 5))


@pytest.mark.parametrize(
    ("board", "device", "drdy2"),
    [("pieeg16", {}, 13), ("custom", {"cs2_pin": 6, "drdy2_pin": 12}, 12)],
)
def test_two_chip_selects_pair_the_conversions_of_one_slot(
    board: str, device: dict[str, Any], drdy2: int
) -> None:
    """Chip 2 is started first, so its DRDY falls just before chip 1's (the edges are not
    simultaneous) and a frame read at chip 1's DRDY holds the same conversion of both."""
    cfg = board_config(board, **device)
    emulated = Board.from_device(cfg, 2)
    assert emulated.pins["drdy2"] == drdy2
    dev = open_device(cfg, 2, emulated)
    second = emulated.request_drdy("/dev/gpiochip0", drdy2, 64)
    try:
        assert dev.chip_selects == 2 and dev.channels == 16 and dev.frame_len == 54
        dev.start()
        frames, first_edges = [], []
        while len(frames) < 8:
            assert dev.link.drdy.wait(5.0)
            first_edges += [e.timestamp_ns for e in dev.link.drdy.read_events()]
            frames.append(dev.read_frame())
        dev.stop()
        second_edges = [e.timestamp_ns for e in second.read_edge_events()]
    finally:
        second.release()
        dev.close()
    assert emulated.violations == []  # the hand-driven CS keeps every datasheet timing rule
    assert all(f[0] >> 4 == 0xC and f[27] >> 4 == 0xC for f in frames)
    # Both chips' channel 1 carries its conversion index: every frame pairs equal indices.
    assert [counts(f, 0, 0) for f in frames] == [counts(f, 1, 0) for f in frames]
    assert [counts(f, 0, 0) for f in frames] == list(range(8))
    period = first_edges[1] - first_edges[0]
    for k in range(7):
        assert second_edges[k] < first_edges[k] < second_edges[k] + period // 2


@pytest.mark.parametrize("ppm", [None, 5000.0])
def test_pieeg16_chips_run_on_a_shared_or_their_own_oscillator(ppm: float | None) -> None:
    """``chip2_clock_ppm`` gives chip 2 its own oscillator: its DRDY period differs."""
    cfg = dataclasses.replace(
        board_config("pieeg16"),
        emulator=dataclasses.replace(mock_config().emulator, chip2_clock_ppm=ppm),
    )
    emulated = Board.from_device(cfg, 2)
    dev = open_device(cfg, 2, emulated)
    second = emulated.request_drdy("/dev/gpiochip0", 13, 64)
    try:
        dev.start()
        first_edges: list[int] = []
        while len(first_edges) < 20:
            assert dev.link.drdy.wait(5.0)
            first_edges += [e.timestamp_ns for e in dev.link.drdy.read_events()]
            dev.read_frame()
        second_edges = [e.timestamp_ns for e in second.read_edge_events()]
    finally:
        second.release()
        dev.close()
    period1 = (first_edges[19] - first_edges[0]) / 19
    period2 = (second_edges[19] - second_edges[0]) / 19
    assert period2 / period1 == pytest.approx(1 / (1 + (ppm or 0) * 1e-6), rel=1e-5)


def test_pieeg16_streams_16_channels_through_the_source_stage(runner: SourceRunner) -> None:
    src = runner.open(board_config("pieeg16"), chips=2)
    meta = src._meta
    assert meta is not None and meta.channels == tuple(f"ch{k}" for k in range(1, 17))
    data = stack(runner.collect(src, 600))
    assert data.shape[1] == 16
    # Channel 1 of each chip carries its conversion index: the two chips stay in step.
    assert np.array_equal(data[:, 0], data[:, 8])
    assert np.array_equal(np.diff(data[:, 0]), np.ones(len(data) - 1))
    stats = src.stats()
    assert stats.samples_dropped == 0


def test_per_chip_settings_reach_each_chip() -> None:
    cfg = board_config("pieeg16")
    emulated = Board.from_device(cfg, 2)
    chip1 = ChipSettings(channels=tuple(ChannelSettings(gain=24) for _ in range(8)))
    chip2 = ChipSettings(
        channels=tuple(ChannelSettings(gain=12, input="shorted") for _ in range(8))
    )
    dev = open_device(cfg, 2, emulated)
    try:
        dev.configure([chip1, chip2])
        assert dev.chip_registers == (emulated.registers(chip=0), emulated.registers(chip=1))
    finally:
        dev.close()
    assert gain_bits(emulated.registers(chip=0)) == [6] * 8  # gain 24
    assert gain_bits(emulated.registers(chip=1)) == [5] * 8  # gain 12
    assert emulated.registers(chip=1)[Reg.CH1SET] & 0x7 == 1  # shorted
    assert emulated.registers(chip=0)[Reg.CH1SET] & 0x7 == 0  # normal


def test_per_chip_lists_in_the_source_stage_program_each_chip(runner: SourceRunner) -> None:
    src = runner.open(
        board_config("pieeg16"),
        chips=2,
        gain=[24] * 8 + [12] * 8,
        input=["normal"] * 8 + ["shorted"] * 8,
    )
    meta = src._meta
    assert meta is not None
    assert meta.extra["gain"] == (24,) * 8 + (12,) * 8
    assert meta.extra["input"] == ("normal",) * 8 + ("shorted",) * 8
    device = src._device
    assert device is not None
    assert [gain_bits(regs) for regs in device.chip_registers] == [[6] * 8, [5] * 8]


@pytest.mark.parametrize("board", ["daisy", "pieeg"])
def test_per_chip_lists_are_refused_on_a_shared_chip_select(
    runner: SourceRunner, board: str
) -> None:
    with pytest.raises(ConfigError, match=rf"chip 2 channel 1.*set alike.*device.board {board}"):
        runner.open(board_config(board), chips=2, gain=[24] * 8 + [12] * 8)


def test_pieeg16_in_the_acquisition_process(runner: SourceRunner) -> None:
    cfg = dataclasses.replace(board_config("pieeg16"), acquisition="process")
    src = runner.open(cfg, chips=2, gain=[24] * 8 + [12] * 8)
    meta = src._meta
    assert meta is not None and meta.extra["gain"] == (24,) * 8 + (12,) * 8
    snap = src._snapshot
    assert snap is not None
    assert [gain_bits(regs) for regs in snap.chip_registers] == [[6] * 8, [5] * 8]
    data = stack(runner.collect(src, 300))
    assert data.shape[1] == 16 and np.array_equal(data[:, 0], data[:, 8])


def test_probe_identifies_both_chips_of_a_pieeg16() -> None:
    report = probe(board_config("pieeg16"))
    assert (report.chips, report.channels, report.chip) == (2, 16, "ADS1299")
