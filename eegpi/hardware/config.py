"""How to reach the ADS1299: the `device:` section of the daemon config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DeviceConfig", "EmulatorConfig"]

Backend = Literal["auto", "pi", "mock"]


@dataclass(frozen=True)
class EmulatorConfig:
    """Options of the emulated ADS1299 used by the ``mock`` backend."""

    realtime: bool = True
    """DRDY at the programmed data rate in wall-clock time; False = as fast as read."""
    seed: int = 0
    """Seed of the synthetic EEG, so runs are reproducible."""


@dataclass(frozen=True)
class DeviceConfig:
    """The `device:` section of /etc/eegpi/eegpi.yaml."""

    backend: Backend = "auto"
    """``pi`` (spidev + gpiod), ``mock`` (emulator), or ``auto`` (pi when /dev/spidev* exists)."""
    spi_bus: int = 0
    spi_device: int = 0
    spi_speed_hz: int = 4_000_000
    """SCLK for register access; the chip needs <= 4.096 MHz without inter-byte gaps."""
    gpiochip: str = "auto"
    """gpiochip path or label holding the DRDY line; ``auto`` finds the 40-pin header chip."""
    drdy_pin: int = 26
    """BCM GPIO number of DRDY (PiEEG: GPIO26, header pin 37)."""
    reset_pin: int | None = None
    start_pin: int | None = None
    pwdn_pin: int | None = None
    emulator: EmulatorConfig = field(default_factory=EmulatorConfig)

    @property
    def spi_path(self) -> str:
        return f"/dev/spidev{self.spi_bus}.{self.spi_device}"
