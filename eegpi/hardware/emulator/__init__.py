"""The emulated ADS1299: a chip model plus stand-ins for the spidev, gpiod and RPi.GPIO objects.

:class:`EmulatedBoard` hands out the factories the Pi backend classes accept, so the ``mock``
backend is the ``pi`` backend wired to this board instead of the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping

from eegpi.hardware.config import EmulatorConfig
from eegpi.hardware.emulator.chip import Ads1299Emulator, channels_for_id
from eegpi.hardware.emulator.clock import EmulatorClock, RealtimeClock, VirtualClock
from eegpi.hardware.emulator.kernel import (
    KERNEL_DEFAULT_EVENT_BUFFER,
    EmulatedEdgeRequest,
    EmulatedOutputRequest,
    EmulatedSpiDev,
)
from eegpi.hardware.emulator.rpigpio import EmulatedRpiGpio

__all__ = ["Ads1299Emulator", "EmulatedBoard", "channels_for_id"]


class EmulatedBoard:
    """An ADS1299 chain on a board, with its SPI device and GPIO lines."""

    def __init__(self, cfg: EmulatorConfig, chips: int = 1) -> None:
        self.clock: EmulatorClock = RealtimeClock() if cfg.realtime else VirtualClock()
        self.chip = Ads1299Emulator(cfg, cfg.chips or chips, self.clock)

    def spidev(self) -> EmulatedSpiDev:
        """Stand-in for ``spidev.SpiDev()``."""
        return EmulatedSpiDev(self.chip)

    def request_drdy(
        self, chip_path: str, offset: int, event_buffer_size: int | None = None
    ) -> EmulatedEdgeRequest:
        """Stand-in for ``gpiod.request_lines`` with falling-edge detection on DRDY: keeps the
        events asked for (the kernel's 16 when not asked), at most the emulator's limit."""
        asked = event_buffer_size or KERNEL_DEFAULT_EVENT_BUFFER
        return EmulatedEdgeRequest(self.chip, offset, min(asked, self.chip.cfg.event_buffer_size))

    def request_outputs(self, chip_path: str, lines: Mapping[str, int]) -> EmulatedOutputRequest:
        """Stand-in for ``gpiod.request_lines`` of the RESET/START/PWDN outputs."""
        return EmulatedOutputRequest(self.chip, {offset: name for name, offset in lines.items()})

    def rpi_gpio(self, drdy_pin: int, outputs: Mapping[str, int]) -> EmulatedRpiGpio:
        """Stand-in for the ``RPi.GPIO`` module, with DRDY and ``outputs`` wired to the chip."""
        return EmulatedRpiGpio(self.chip, drdy_pin, {pin: name for name, pin in outputs.items()})

    def find_gpiochip(self, spec: str) -> str:
        return "/dev/gpiochip0" if spec == "auto" else spec
