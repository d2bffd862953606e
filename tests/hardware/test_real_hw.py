"""Opt-in checks against a real ADS1299 board; skipped unless EEGPI_TEST_SPI names one.

    EEGPI_TEST_SPI=/dev/spidev0.0 [EEGPI_TEST_DRDY=26] [EEGPI_TEST_GPIO=auto|gpiod|rpigpio] \\
        pytest -m hardware tests/hardware/test_real_hw.py

``EEGPI_TEST_SPI=mock`` runs the same checks on the real-time emulator, to check the checks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import numpy as np
import pytest

from eegpi.ads1299.frames import decode_frames
from eegpi.ads1299.registers import Reg
from eegpi.ads1299.settings import TestSignal, chain_settings
from eegpi.hardware import open_device
from eegpi.hardware.acquisition import Acquisition
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.driver import Ads1299
from eegpi.hardware.ring import RawFrames

SPI = os.environ.get("EEGPI_TEST_SPI", "")

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(not SPI, reason="set EEGPI_TEST_SPI=/dev/spidev0.0 to test a real board"),
]

VREF_V = 4.5


def _config() -> DeviceConfig:
    gpio = os.environ.get("EEGPI_TEST_GPIO", "auto")
    drdy = int(os.environ.get("EEGPI_TEST_DRDY", "26"))
    if SPI == "mock":
        return DeviceConfig(
            backend="mock",
            gpio=gpio,  # type: ignore[arg-type]
            drdy_pin=drdy,
            acquisition="thread",
            emulator=EmulatorConfig(realtime=True),
        )
    match = re.fullmatch(r"/dev/spidev(\d+)\.(\d+)", SPI)
    if match is None:
        pytest.fail(f"EEGPI_TEST_SPI={SPI!r} is not /dev/spidevB.D (e.g. /dev/spidev0.0)")
    return DeviceConfig(
        backend="pi",
        spi_bus=int(match.group(1)),
        spi_device=int(match.group(2)),
        drdy_pin=drdy,
        gpio=gpio,  # type: ignore[arg-type]
        acquisition="thread",
    )


@pytest.fixture
def device() -> Iterator[Ads1299]:
    dev = open_device(_config())
    try:
        yield dev
    finally:
        dev.close()


def _record(device: Ads1299, rate: int, seconds: float) -> tuple[RawFrames, int]:
    n = int(rate * seconds)
    acq = Acquisition(device, rate)
    acq.start()
    try:
        assert acq.wait(n, seconds + 2.0) >= n, f"fewer than {n} frames in {seconds + 2} s"
    finally:
        acq.stop()
    return acq.take(), acq.missed


def test_id_register_names_an_ads1299(device: Ads1299) -> None:
    assert device.identity is not None
    assert device.identity.id_register & 0x1F in (0x1C, 0x1D, 0x1E)
    assert device.identity.chip.startswith("ADS1299")


def test_register_write_reads_back(device: Ads1299) -> None:
    for value in (0x15, 0xEA, 0x00):  # LOFF: every writable bit both ways
        device.write_register(Reg.LOFF, value)  # raises when the read-back differs
        assert device.read_registers(Reg.LOFF, 1)[0] == value


def test_250_sps_for_2_s_is_contiguous(device: Ads1299) -> None:
    device.configure(
        chain_settings(
            sample_rate=250, gain=24, input="shorted", srb2=False, chips=1, channels_per_chip=8
        )
    )
    raw, missed = _record(device, 250, 2.0)
    assert missed == 0
    assert np.array_equal(raw.seq, np.arange(len(raw)))
    assert np.median(np.diff(raw.edge_ns)) == pytest.approx(4e6, rel=0.01)
    decoded = decode_frames(raw.frames, 1, device.channels_per_chip)
    assert decoded.valid.all()


def test_test_signal_amplitude_at_gain_1(device: Ads1299) -> None:
    device.configure(
        chain_settings(
            sample_rate=250,
            gain=1,
            input="test",
            srb2=False,
            chips=1,
            channels_per_chip=8,
            test_signal=TestSignal("1x", "slow"),
        )
    )
    raw, _ = _record(device, 250, 3.0)  # ~3 periods of the ~1 Hz square wave
    counts = decode_frames(raw.frames, 1, device.channels_per_chip).counts[250:]  # settled
    volts = counts * VREF_V / 2**23
    half_pp = (np.percentile(volts, 95, axis=0) - np.percentile(volts, 5, axis=0)) / 2
    # The datasheet says +-1 mV in one place and +-VREF/2400 = +-1.875 mV in another.
    assert np.all((half_pp > 0.9e-3) & (half_pp < 2.1e-3)), half_pp
