"""The acquisition thread: DRDY cadence, gap detection, ring overflow, faults."""

from __future__ import annotations

import numpy as np
import pytest
from hw_helpers import mock_config

from eegpi.ads1299.frames import decode_frames
from eegpi.ads1299.registers import DataRate
from eegpi.ads1299.settings import chain_settings
from eegpi.exc import HardwareError
from eegpi.hardware import open_device
from eegpi.hardware.acquisition import Acquisition
from eegpi.hardware.config import DeviceConfig
from eegpi.hardware.driver import Ads1299


def _device(cfg: DeviceConfig, rate: int = 250) -> Ads1299:
    device = open_device(cfg)
    device.configure(
        chain_settings(
            sample_rate=rate, gain=24, input="normal", srb2=False, chips=1, channels_per_chip=8
        )
    )
    return device


def _acquire(cfg: DeviceConfig, rate: int, n: int) -> Acquisition:
    # Virtual time runs as fast as the thread reads: wait for the consumer, never overflow.
    acq = Acquisition(_device(cfg, rate), rate, lossless=True)
    acq.start()
    try:
        assert acq.wait(n, 10.0) >= n
    finally:
        acq.stop()
        acq.device.close()
    return acq


@pytest.mark.parametrize("rate", [r.sps for r in DataRate])
def test_drdy_cadence_at_every_rate_in_virtual_time(rate: int) -> None:
    acq = _acquire(mock_config(), rate, 300)
    raw = acq.take()
    period = 1e9 * 128 * (16000 // rate) / 2.048e6
    assert np.allclose(np.diff(raw.edge_ns), period, atol=1.0)
    assert np.array_equal(raw.seq, np.arange(len(raw)))
    assert acq.missed == 0 and acq.overflowed == 0


def test_clock_error_shows_in_edge_times() -> None:
    acq = _acquire(mock_config(clock_ppm=10_000), 1000, 200)  # 1 % fast
    assert np.median(np.diff(acq.take().edge_ns)) == pytest.approx(1e6 / 1.01, abs=1)


def test_real_time_cadence_at_250_sps() -> None:
    # A loaded host may miss DRDYs: each one is counted and shows as a gap, and every frame
    # still carries the conversion its slot names. How few it misses is for bench/.
    device = _device(mock_config(realtime=True, stamp_index=True), 250)
    acq = Acquisition(device, 250)
    acq.start()
    parts = []
    try:
        while not parts or parts[-1].seq[-1] < 150:  # > 0.5 s of slots
            assert acq.wait(1, 5.0) >= 1
            parts.append(acq.take())
    finally:
        acq.stop()
        device.close()
    parts.append(acq.take())
    seq = np.concatenate([p.seq for p in parts])
    edge_ns = np.concatenate([p.edge_ns for p in parts])
    conversion = decode_frames(np.concatenate([p.frames for p in parts]), 1, 8).counts[:, 0]
    assert np.array_equal(conversion, seq)  # slot 0 is conversion 0: the first edge
    assert np.allclose(np.diff(edge_ns) / np.diff(seq), 4e6, atol=1.0)  # the chip's cadence
    assert acq.frames_read == len(seq) and acq.frames_read + acq.missed == seq[-1] + 1


def test_full_ring_drops_are_counted_as_gaps() -> None:
    device = _device(mock_config(), 1000)
    acq = Acquisition(device, 1000, capacity=64)
    acq.start()
    try:
        assert acq.wait(64, 5.0) == 64
        while acq.overflowed == 0:  # the consumer is too slow: the ring stays full
            acq.wait(65, 0.01)
        first = acq.take()
        assert acq.wait(10, 5.0) >= 10
        later = acq.take(10)
    finally:
        acq.stop()
    device.close()
    assert np.array_equal(first.seq, np.arange(64))
    assert 1 <= later.seq[0] - 64 <= acq.overflowed  # dropped slots show as a gap
    assert acq.frames_read == acq.overflowed + 64 + 10 + acq.available


def test_stuck_drdy_is_an_error_after_the_timeout() -> None:
    device = _device(mock_config(stuck_drdy_after=5), 250)
    acq = Acquisition(device, 250)
    acq.start()
    try:
        assert acq.wait(5, 5.0) == 5
        acq.take()
        with pytest.raises(HardwareError, match=r"no DRDY from the ADS1299 for 0\.5\d s"):
            acq.wait(1, 5.0)
    finally:
        acq.stop()
        device.close()
