"""The driver through the real Pi backend classes, wired to the emulator."""

from __future__ import annotations

import glob

import pytest
from hw_helpers import mock_config

from eegpi.ads1299.registers import REGISTERS, Reg, reset_values
from eegpi.ads1299.settings import chain_settings
from eegpi.exc import HardwareError
from eegpi.hardware import open_device, probe, resolve_backend
from eegpi.hardware.config import DeviceConfig
from eegpi.hardware.emulator.kernel import EmulatedSpiDev
from eegpi.hardware.pi import GpiodDrdy, SpidevBus


def test_mock_backend_is_the_pi_backend_on_emulator_stand_ins() -> None:
    device = open_device(mock_config())
    try:
        assert isinstance(device.link.spi, SpidevBus)
        assert isinstance(device.link.drdy, GpiodDrdy)
        assert isinstance(device.link.spi._dev, EmulatedSpiDev)
        assert device.link.spi._dev.mode == 1
    finally:
        device.close()


def test_probe_reports_identity_and_reset_values() -> None:
    report = probe(mock_config())
    assert (report.chip, report.id_register, report.channels, report.backend) == (
        "ADS1299",
        0x3E,
        8,
        "mock",
    )
    assert [r.value for r in report.registers] == list(reset_values())
    assert [r.name for r in report.registers][:2] == ["ID", "CONFIG1"]


@pytest.mark.parametrize(
    ("id_register", "chip", "channels"),
    [
        (0x3E, "ADS1299", 8),
        (0x3D, "ADS1299-6", 6),
        (0x3C, "ADS1299-4", 4),
        (0xDE, "ADS1299", 8),
    ],
)
def test_id_variants_are_recognised(id_register: int, chip: str, channels: int) -> None:
    report = probe(mock_config(id_register=id_register))
    assert (report.chip, report.channels) == (chip, channels)


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        ({"id_register": 0x00}, "read 0x00; is SPI enabled and the board wired"),
        ({"miso_stuck": 0x00}, "read 0x00; is SPI enabled and the board wired"),
        ({"miso_stuck": 0xFF}, "read 0xFF; MISO reads all ones: is the board powered"),
        ({"id_register": 0x92}, "read 0x92; that is an ADS1294/6/8"),
    ],
)
def test_wrong_ids_give_a_clear_error(config: dict[str, int], pattern: str) -> None:
    with pytest.raises(HardwareError, match=f"^no ADS1299 on emulator: ID register {pattern}"):
        open_device(mock_config(**config))


def test_every_writable_register_round_trips() -> None:
    device = open_device(mock_config())
    try:
        for info in REGISTERS:
            if info.writable != 0xFF or info.address in (Reg.CONFIG1, Reg.MISC2):
                continue
            for value in (0xA5, 0x5A):
                device.write_register(info.address, value)
                assert device.read_registers(info.address, 1)[0] == value
    finally:
        device.close()


def test_configure_writes_verified_registers() -> None:
    device = open_device(mock_config())
    try:
        settings = chain_settings(
            sample_rate=2000, gain=6, input="normal", srb2=False, chips=1, channels_per_chip=8
        )
        device.configure(settings)
        assert device.registers[Reg.CONFIG1] == 0x93
        assert device.registers[Reg.CH5SET] == 0x30
        assert all(device.registers[a] == v for a, v in settings.registers())
    finally:
        device.close()


def test_register_access_too_fast_is_refused_or_caught() -> None:
    with pytest.raises(ValueError, match="spi_speed_hz: 8000000 is above 4096000"):
        open_device(DeviceConfig(backend="mock", spi_speed_hz=8_000_000))


def test_lost_writes_are_caught_by_read_back() -> None:
    device = open_device(mock_config())
    try:
        device.link.spi._dev.mode = 0  # type: ignore[attr-defined]  # wrong SPI mode
        with pytest.raises(HardwareError, match=r"register CONFIG2 \(0x02\) on emulator reads"):
            device.write_register(Reg.CONFIG2, 0xD0)
    finally:
        device.close()


@pytest.mark.skipif(bool(glob.glob("/dev/spidev*")), reason="this machine has SPI devices")
def test_auto_backend_without_spi_is_an_error_not_the_emulator() -> None:
    with pytest.raises(HardwareError, match=r"pass --mock / set device\.backend: mock"):
        resolve_backend(DeviceConfig(backend="auto"))


@pytest.mark.skipif(bool(glob.glob("/dev/spidev0.0")), reason="this machine has spidev0.0")
def test_pi_backend_without_spi_names_the_device() -> None:
    with pytest.raises(HardwareError, match=r"cannot open /dev/spidev0\.0: .*SPI enabled"):
        open_device(DeviceConfig(backend="pi"))
