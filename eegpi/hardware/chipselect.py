"""A chip on a GPIO chip-select: the second ADS1299 of a PiEEG-16-style board.

Both chips share SCLK, DIN and DOUT; chip 1 sits on the kernel's hardware CS (CE0), chip 2 on a
plain GPIO. A transfer to chip 2 drives that GPIO low, runs on the same spidev device with the
hardware CS left inactive (so chip 1 stays deselected and its DOUT Hi-Z), and drives it high.
"""

from __future__ import annotations

from typing import Protocol

from eegpi.hardware.base import ControlPins

__all__ = ["CS2", "HandSelectedBus"]

CS2 = "cs2"
"""Name of chip 2's chip-select among the link's output pins."""


class _NoCsBus(Protocol):
    path: str

    def transfer_without_cs(
        self, data: bytes | list[int], speed_hz: int, delay_usecs: int = 0
    ) -> list[int]: ...


class HandSelectedBus:
    """An :class:`~eegpi.hardware.base.SpiBus` for the chip behind the ``cs2`` output pin."""

    def __init__(self, bus: _NoCsBus, pins: ControlPins, pin: int) -> None:
        self._bus = bus
        self._pins = pins
        self.path = f"{bus.path} with CS on GPIO{pin}"

    def transfer(self, data: bytes | list[int], speed_hz: int, delay_usecs: int = 0) -> list[int]:
        self._pins.set(CS2, False)
        try:
            # The hold after the last byte happens with CS low, as tSCCS asks.
            return self._bus.transfer_without_cs(data, speed_hz, delay_usecs)
        finally:
            self._pins.set(CS2, True)

    def close(self) -> None:
        """Nothing of its own: the spidev device and the pin belong to the link."""
