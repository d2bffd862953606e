"""``emulator.virtual_speed``: virtual time that never runs more than N times the wall clock,
and loses nothing for it."""

from __future__ import annotations

import time

import pytest

from eegpi.ads1299.settings import chain_settings
from eegpi.hardware import open_device
from eegpi.hardware.acquisition import Acquisition
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.emulator.clock import VirtualClock


def test_a_paced_clock_holds_its_caller_until_the_wall_clock_allows_the_time() -> None:
    clock = VirtualClock(max_speed=20.0)
    wall0 = time.monotonic_ns()
    start = clock.monotonic_ns()
    clock.sleep_until(start + 200_000_000)  # 200 ms of virtual time: at least 10 ms of wall
    clock.sleep(0.1)  # 100 ms more: at least 15 ms in all
    assert clock.monotonic_ns() == start + 300_000_000
    assert time.monotonic_ns() - wall0 >= 300_000_000 / 20


def test_an_unpaced_clock_moves_at_once() -> None:
    clock = VirtualClock()
    start = clock.monotonic_ns()
    clock.sleep_until(start + 3600 * 10**9)  # an hour, without waiting for it
    assert clock.monotonic_ns() == start + 3600 * 10**9


def test_a_paced_emulator_reads_every_conversion_at_no_more_than_its_pace() -> None:
    cfg = DeviceConfig(backend="mock", emulator=EmulatorConfig(realtime=False, virtual_speed=40))
    # The pace holds from the virtual clock's start, which open_device makes at the wall clock's
    # time: virtual time not spent while the test set up may be spent later, faster than 40x.
    wall0 = time.monotonic_ns()
    device = open_device(cfg, 1)
    try:
        device.configure(
            chain_settings(
                sample_rate=250,
                gain=24,
                input="normal",
                srb2=False,
                chips=1,
                channels_per_chip=device.channels_per_chip,
            )
        )
        acq = Acquisition(device, 250, capacity=4096)
        acq.start()
        try:
            assert acq.ring.wait(500, 120) >= 500  # two seconds of conversions
            wall = time.monotonic_ns() - wall0
        finally:
            acq.stop()
        frames = acq.take()
        assert acq.missed == 0
        assert list(frames.seq[:500]) == list(range(500))
        span = int(frames.edge_ns[499] - frames.edge_ns[0])
        assert span >= 499 * 4_000_000 * 0.999  # the chip's own 250 SPS, in virtual time
        # no faster than 40x the wall clock, both counted from before the clock started
        assert wall >= (int(frames.edge_ns[499]) - wall0) / 40 >= span / 40
    finally:
        device.close()


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "fast"])
def test_a_bad_virtual_speed_is_refused_with_its_name(bad: object) -> None:
    with pytest.raises(ValueError, match=r"emulator\.virtual_speed"):
        EmulatorConfig(realtime=False, virtual_speed=bad)  # type: ignore[arg-type]
