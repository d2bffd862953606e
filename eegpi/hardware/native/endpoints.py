"""The file descriptors the native reader works on, from an opened driver's link.

On a Pi: the gpiod line request of DRDY (``struct gpio_v2_line_event`` records, kernel stamps)
and the spidev device (one ``SPI_IOC_MESSAGE(1)`` per frame). On the emulator: the pipe and
socket of :class:`~eegpi.hardware.emulator.fdlink.EmulatorFdLink`.

What the native reader does not do is refused here with the reason, so ``reader: auto`` can
fall back to the Python reader and say why: DRDY through RPi.GPIO (no kernel stamps, no file
descriptor) and a second chip on a hand-driven chip-select (``pieeg16``; a GPIO write around
each transfer).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eegpi.exc import HardwareError
from eegpi.hardware.driver import Ads1299
from eegpi.hardware.pi import GpiodDrdy, SpidevBus

if TYPE_CHECKING:
    from eegpi.hardware.emulator.fdlink import EmulatorFdLink

__all__ = ["EMULATOR_SOCKET", "SPI_IOCTL", "Endpoints", "NotNative", "open_endpoints"]

SPI_IOCTL = 0
EMULATOR_SOCKET = 1


class NotNative(HardwareError):
    """This device cannot be read natively (the message says why)."""


@dataclass
class Endpoints:
    drdy_fd: int
    spi_fd: int
    transport: int
    """SPI_IOCTL or EMULATOR_SOCKET."""
    virtual_now: int | None = None
    """Address of the emulator's virtual clock (None: CLOCK_MONOTONIC)."""
    link: EmulatorFdLink | None = None

    def close(self) -> None:
        if self.link is not None:
            self.link.close()


def check_native(device: Ads1299) -> tuple[GpiodDrdy, SpidevBus]:
    """The link's DRDY and SPI objects when the native reader can drive them.

    Raises:
        NotNative: RPi.GPIO DRDY, or a second chip-select driven by hand.
    """
    link = device.link
    if link.spi2 is not None:
        raise NotNative(
            "the native reader reads one chip-select per DRDY; this board's second chip is "
            "selected by a GPIO driven by hand (pieeg16/custom cs2_pin): use device.reader: python"
        )
    drdy, spi = link.drdy, link.spi
    if not isinstance(drdy, GpiodDrdy):
        raise NotNative(
            "the native reader needs DRDY through gpiod (kernel edge stamps and a file "
            "descriptor); this device uses RPi.GPIO: set device.gpio: gpiod, or device.reader: "
            "python"
        )
    if not isinstance(spi, SpidevBus):
        raise NotNative(f"the native reader needs a spidev SPI bus, not {type(spi).__name__}")
    return drdy, spi


def open_endpoints(device: Ads1299, prepare: Callable[[], object] | None = None) -> Endpoints:
    """The descriptors of ``device``'s DRDY and SPI; on the emulator, a started link, whose
    thread first calls ``prepare`` (its scheduling: it stands in for the kernel's interrupt).

    Raises:
        NotNative: see :func:`check_native`.
    """
    drdy, spi = check_native(device)
    request, spidev = drdy.request, spi.spidev
    if device.link.backend == "mock":  # the emulator's modules stay out of a Pi's process
        from eegpi.hardware.emulator.clock import EmulatorClock
        from eegpi.hardware.emulator.fdlink import EmulatorFdLink
        from eegpi.hardware.emulator.gpiochip import LineRequest
        from eegpi.hardware.emulator.kernel import EmulatedSpiDev

        clock = device.link.clock
        if not (
            isinstance(request, LineRequest)
            and isinstance(spidev, EmulatedSpiDev)
            and isinstance(clock, EmulatorClock)
        ):
            raise NotNative(
                "the native reader on the emulator needs its gpiod and spidev stand-ins"
            )
        link = EmulatorFdLink(request, spidev, clock, prepare)
        link.start()
        return Endpoints(link.drdy_fd, link.spi_fd, EMULATOR_SOCKET, link.now_address, link)
    try:
        drdy_fd = int(request.fileno())  # type: ignore[attr-defined]
        spi_fd = int(spidev.fileno())  # type: ignore[attr-defined]
    except (AttributeError, io.UnsupportedOperation, OSError) as exc:
        raise NotNative(
            f"the native reader needs the file descriptors of DRDY and SPI: {exc}"
        ) from exc
    return Endpoints(drdy_fd, spi_fd, SPI_IOCTL)
