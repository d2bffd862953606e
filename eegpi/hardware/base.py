"""The seams between the driver and the world: an SPI bus, a DRDY edge source, control pins and
a clock.

The Pi backend implements them over ``spidev.SpiDev`` and a ``gpiod`` v2 line request; the
emulator stands in for those two library objects (not for these interfaces), so CI runs the same
backend classes as a Pi. The ``*Like`` protocols below spell out the library surface used.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Clock",
    "ControlPins",
    "DrdyLine",
    "EdgeEventLike",
    "EdgeRequestLike",
    "EdgeType",
    "HardwareLink",
    "OutputRequestLike",
    "SpiBus",
    "SpiDevLike",
]


class EdgeType(enum.Enum):
    """Mirrors ``gpiod.EdgeEvent.Type``."""

    RISING_EDGE = 1
    FALLING_EDGE = 2


class SpiDevLike(Protocol):
    """The part of ``spidev.SpiDev`` the backend uses."""

    mode: int
    max_speed_hz: int
    no_cs: bool

    def open(self, bus: int, device: int) -> None: ...

    def xfer2(self, data: list[int], speed_hz: int = 0, delay_usecs: int = 0) -> list[int]: ...

    def close(self) -> None: ...


class EdgeEventLike(Protocol):
    """The fields of a ``gpiod.EdgeEvent`` the acquisition reads."""

    @property
    def timestamp_ns(self) -> int: ...

    @property
    def line_seqno(self) -> int: ...

    @property
    def global_seqno(self) -> int: ...

    @property
    def event_type(self) -> Any: ...


class EdgeRequestLike(Protocol):
    """The part of a ``gpiod`` v2 ``LineRequest`` (edge detection on DRDY) the backend uses."""

    def wait_edge_events(self, timeout: float | None = None) -> bool: ...

    def read_edge_events(self, max_events: int | None = None) -> Sequence[EdgeEventLike]: ...

    def release(self) -> None: ...


class OutputRequestLike(Protocol):
    """A ``gpiod`` v2 ``LineRequest`` of output lines, reduced to booleans."""

    def set_level(self, offset: int, high: bool) -> None: ...

    def release(self) -> None: ...


class SpiBus(Protocol):
    """A full-duplex SPI device; one call = one CS-low transaction."""

    path: str
    """Device path for messages, e.g. ``/dev/spidev0.0``."""

    def transfer(self, data: bytes | list[int], speed_hz: int, delay_usecs: int = 0) -> list[int]:
        """Clock ``data`` out and return what came in; CS is held ``delay_usecs`` after."""
        ...

    def close(self) -> None: ...


class DrdyLine(Protocol):
    """Falling edges of DRDY with timestamps and sequence numbers."""

    kernel_stamps: bool
    """True: each event's time was taken when the edge fell and its ``line_seqno`` counts every
    edge (gpiod). False: times were taken later, in user space, so they only bound the edge
    from above, and edges the library never reported have no number (RPi.GPIO)."""

    def wait(self, timeout: float) -> bool:
        """True when at least one edge event is waiting, False after ``timeout`` seconds."""
        ...

    def read_events(self) -> Sequence[EdgeEventLike]:
        """All waiting edge events, oldest first (the kernel keeps a bounded buffer)."""
        ...

    def close(self) -> None: ...


class ControlPins(Protocol):
    """Optional RESET, START and PWDN pins; names missing from ``available`` are not wired."""

    available: frozenset[str]

    def set(self, name: str, high: bool) -> None: ...

    def close(self) -> None: ...


class Clock(Protocol):
    """Monotonic time of the DRDY edge timestamps, and how the driver waits datasheet delays."""

    def monotonic_ns(self) -> int: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass
class HardwareLink:
    """Everything the driver needs to talk to one ADS1299 chain."""

    backend: str
    """``pi`` or ``mock``."""
    path: str
    spi: SpiBus
    drdy: DrdyLine
    pins: ControlPins
    clock: Clock
    drdy_name: str = "the DRDY line"
    """For messages, e.g. ``GPIO26 on /dev/gpiochip0``."""
    spi2: SpiBus | None = None
    """Chip 2 on its own chip-select (``pieeg16``); None when every chip shares ``spi``'s."""

    def close(self) -> None:
        """Release SPI and GPIO; safe to call twice."""
        for part in (self.drdy, self.pins, self.spi):
            part.close()
