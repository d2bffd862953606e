"""The RPi.GPIO fallback for DRDY: the real backend class against the emulated chip."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from eegpi.ads1299.frames import decode_frames
from eegpi.ads1299.settings import chain_settings
from eegpi.daemon.config import AppConfig, from_mapping
from eegpi.exc import HardwareError
from eegpi.hardware import open_device, open_link, resolve_gpio
from eegpi.hardware.acquisition import Acquisition
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.driver import Ads1299
from eegpi.hardware.emulator import EmulatedBoard
from eegpi.hardware.ring import RawFrames
from eegpi.hardware.rpigpio import RpiGpioDrdy, real_rpi_gpio


def _config(gpio: str = "rpigpio", realtime: bool = False, **emulator: Any) -> DeviceConfig:
    return DeviceConfig(
        backend="mock",
        gpio=gpio,  # type: ignore[arg-type]
        acquisition="thread",
        emulator=EmulatorConfig(realtime=realtime, **emulator),
    )


def _device(cfg: DeviceConfig, rate: int) -> Ads1299:
    device = open_device(cfg)
    device.configure(
        chain_settings(
            sample_rate=rate, gain=24, input="normal", srb2=False, chips=1, channels_per_chip=8
        )
    )
    return device


def _acquire(cfg: DeviceConfig, rate: int, n: int, lossless: bool) -> tuple[RawFrames, int]:
    """``n`` frames or more, and the missed count."""
    device = _device(cfg, rate)
    assert isinstance(device.link.drdy, RpiGpioDrdy) == (cfg.gpio == "rpigpio")
    acq = Acquisition(device, rate, lossless=lossless)
    acq.start()
    try:
        assert acq.wait(n, 10.0) >= n
    finally:
        acq.stop()
        device.close()
    return acq.take(), acq.missed


def _rpigpio_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rpigpio-")]


def _conversions(raw: RawFrames) -> np.ndarray[Any, Any]:
    """The conversion each frame holds (the emulator's ``stamp_index``)."""
    return decode_frames(raw.frames, 1, 8).counts[:, 0].astype(np.int64)


def _check_labels(raw: RawFrames, missed: int) -> None:
    """Every frame carries the conversion its slot names; every other slot is counted."""
    offset = _conversions(raw) - raw.seq
    assert np.all(offset == offset[0]), np.flatnonzero(offset != offset[0])
    assert len(raw) + missed == raw.seq[-1] + 1


def test_contiguous_at_250_sps_in_virtual_time() -> None:
    raw, missed = _acquire(_config(stamp_index=True), 250, 300, lossless=True)
    assert np.array_equal(raw.seq, np.arange(len(raw)))
    assert np.allclose(np.diff(raw.edge_ns), 4e6, atol=1.0)
    assert missed == 0
    _check_labels(raw, missed)


# The RPi.GPIO fallback labels frames from callback times. When the callback thread is late by
# about the same amount for many callbacks in a row (a host busy with other work), the cadence
# can take the lateness for a missed edge and label frames one conversion off: a known limit of
# the fallback (docs/hardware.md), which gpiod's kernel stamps do not have. The virtual-time tests
# in test_loss_accounting.py check the logic deterministically; these two measure the host.
@pytest.mark.host_timing
def test_labels_and_counts_hold_in_real_time() -> None:
    # A loaded host loses conversions (counted); how many is for bench/, not a test.
    raw, missed = _acquire(_config(realtime=True, stamp_index=True), 250, 150, lossless=False)
    _check_labels(raw, missed)
    span_s = (raw.edge_ns[-1] - raw.edge_ns[0]) / 1e9
    assert (raw.seq[-1] - raw.seq[0]) / span_s == pytest.approx(250, rel=0.01)


@pytest.mark.host_timing
def test_missed_edges_while_the_reader_stalls_are_counted_gaps() -> None:
    raw, missed = _acquire(
        _config(realtime=True, late_read_every=10, late_read_periods=3, stamp_index=True),
        250,
        120,
        lossless=False,
    )
    assert np.diff(raw.seq).max() >= 3  # each stall loses the conversions that went by
    _check_labels(raw, missed)  # callbacks stamped late do not move the labels


def test_a_long_stall_is_counted_whole() -> None:
    # A 40-period stall: the callbacks come late and in a burst; the cadence counts 40.
    raw, missed = _acquire(
        _config(late_read_every=100, late_read_periods=40, stamp_index=True),
        1000,
        300,
        lossless=True,
    )
    steps = np.diff(raw.seq)
    assert set(steps.tolist()) == {1, 41}
    _check_labels(raw, missed)


def test_buffer_keeps_the_newest_16_events_with_running_seqnos() -> None:
    board = EmulatedBoard(EmulatorConfig(realtime=False))
    gpio = board.rpi_gpio()
    ticks = iter(range(1000, 2000))
    drdy = RpiGpioDrdy(gpio, 26, clock=lambda: next(ticks), buffer_size=16)
    callback: Callable[[int], None] = drdy._on_edge
    try:
        assert not drdy.wait(0)
        for _ in range(20):
            callback(26)
        assert drdy.wait(0)
        events = drdy.read_events()
        assert [e.line_seqno for e in events] == list(range(5, 21))
        assert [e.timestamp_ns for e in events] == list(range(1004, 1020))
        assert not drdy.wait(0) and drdy.read_events() == []
    finally:
        drdy.close()


def test_stuck_drdy_is_an_error_naming_the_pin() -> None:
    device = _device(_config(realtime=True, stuck_drdy_after=20), 250)
    acq = Acquisition(device, 250)
    acq.start()
    try:
        # The frames before DRDY stopped (a busy host may lose or discard some: counted), then
        # the error.
        with pytest.raises(
            HardwareError, match=r"no DRDY .* for \d+\.\d\d s.*GPIO26 \(RPi\.GPIO\)"
        ):
            while True:
                acq.wait(1, 5.0)
                acq.take()
        assert acq.frames_read + acq.missed <= 20
    finally:
        acq.stop()
        device.close()


def test_control_pins_drive_the_chip() -> None:
    # With a START pin the driver starts conversions by raising it: no DRDY without it.
    cfg = DeviceConfig(
        backend="mock",
        gpio="rpigpio",
        acquisition="thread",
        reset_pin=22,
        start_pin=23,
        pwdn_pin=24,
        emulator=EmulatorConfig(realtime=False),
    )
    device = _device(cfg, 500)
    assert device.link.pins.available == {"reset", "start", "pwdn"}
    acq = Acquisition(device, 500, lossless=True)
    acq.start()
    try:
        assert acq.wait(100, 10.0) >= 100
    finally:
        acq.stop()
        device.close()
    assert np.array_equal(acq.take().seq[:100], np.arange(100))


def test_close_releases_the_pin() -> None:
    board = EmulatedBoard(EmulatorConfig(realtime=False))
    gpio = board.rpi_gpio()
    first = RpiGpioDrdy(gpio, 26, board.clock.monotonic_ns)
    assert gpio.watched == {26}
    with pytest.raises(HardwareError, match=r"Conflicting edge detection.*gpio group"):
        RpiGpioDrdy(gpio, 26, board.clock.monotonic_ns)
    first.close()
    first.close()
    assert gpio.watched == frozenset() and 26 not in gpio.directions
    second = RpiGpioDrdy(gpio, 26, board.clock.monotonic_ns)
    assert gpio.watched == {26}
    second.close()


def test_closing_the_link_stops_the_callback_thread() -> None:
    before = _rpigpio_threads()
    link = open_link(_config())
    assert len(_rpigpio_threads()) == len(before) + 1
    link.close()
    assert _rpigpio_threads() == before


def test_a_library_in_another_numbering_mode_is_a_clear_error() -> None:
    board = EmulatedBoard(EmulatorConfig(realtime=False))
    gpio = board.rpi_gpio()
    gpio.setmode(gpio.BOARD)
    with pytest.raises(HardwareError, match=r"GPIO26 through RPi\.GPIO: A different mode"):
        RpiGpioDrdy(gpio, 26)
    assert gpio.watched == frozenset()


def test_gpio_library_choice() -> None:
    assert resolve_gpio(_config(gpio="auto"), "mock") == "gpiod"  # mock stays as it was
    assert resolve_gpio(_config(gpio="rpigpio"), "mock") == "rpigpio"
    assert resolve_gpio(DeviceConfig(backend="pi"), "pi") == "gpiod"  # installed here
    with pytest.raises(ValueError, match=r"device\.gpio: 'lgpio' is not one of"):
        DeviceConfig(gpio="lgpio")  # type: ignore[arg-type]
    app = from_mapping(AppConfig, {"device": {"gpio": "rpigpio"}}, "")
    assert app.device.gpio == "rpigpio"


def test_auto_without_either_library_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)
    monkeypatch.setitem(sys.modules, "RPi", None)
    with pytest.raises(HardwareError, match=r"gpiod .*RPi\.GPIO / rpi-lgpio.*eegpi\[pi\]"):
        resolve_gpio(DeviceConfig(backend="pi"), "pi")
    with pytest.raises(HardwareError, match=r"RPi\.GPIO or rpi-lgpio"):
        real_rpi_gpio()
