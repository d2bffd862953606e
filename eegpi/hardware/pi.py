"""The Raspberry Pi backend: ``spidev`` in SPI mode 1 and ``gpiod`` v2 edge events on DRDY.

Each class takes the library object (or a factory for it) it wraps, so the ``mock`` backend is
these same classes built on the emulator's stand-ins. The real libraries are imported only
where a real object is made; a missing one is reported with the package to install.
"""

from __future__ import annotations

import errno
import glob
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eegpi.exc import HardwareError
from eegpi.hardware.base import EdgeEventLike, EdgeRequestLike, OutputRequestLike, SpiDevLike

__all__ = [
    "DRDY_EVENT_BUFFER",
    "HEADER_CHIP_LABELS",
    "GpiodDrdy",
    "GpiodPins",
    "MonotonicClock",
    "SpidevBus",
    "find_gpiochip",
    "gpiod_request_drdy",
    "gpiod_request_outputs",
    "real_spidev",
]

HEADER_CHIP_LABELS = ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835")
"""Labels of the gpiochip that carries the 40-pin header: Pi 5, Pi 4, Pi 3 and older. The
Pi 5 chip moved from gpiochip4 to gpiochip0 in 2024, so chips are found by label."""

SPI_MODE = 1
"""CPOL 0, CPHA 1: the ADS1299 latches DIN on the falling edge."""
DRDY_EVENT_BUFFER = 1024
"""Edge events the kernel keeps for the DRDY request (its default is 16 per line): a reader
stalled for up to 1024 periods still sees every edge, and a longer stall shows as a gap in
``line_seqno`` instead of going unseen. 1024 is also the kernel's upper limit."""


def _missing(package: str, exc: ImportError) -> HardwareError:
    return HardwareError(
        f"the pi backend needs the Python package {package!r} ({exc}); "
        "install eegpi[pi], or pass --mock / set device.backend: mock to use the emulator"
    )


def real_spidev() -> SpiDevLike:
    """A fresh ``spidev.SpiDev``."""
    try:
        import spidev
    except ImportError as exc:
        raise _missing("spidev", exc) from exc
    dev: SpiDevLike = spidev.SpiDev()
    return dev


class SpidevBus:
    """One spidev device in mode 1; every call is one CS-low ``xfer2`` transaction."""

    def __init__(
        self, bus: int, device: int, speed_hz: int, factory: Callable[[], SpiDevLike] = real_spidev
    ) -> None:
        self.path = f"/dev/spidev{bus}.{device}"
        self._dev = factory()
        try:
            self._dev.open(bus, device)
        except OSError as exc:
            hint = {
                errno.ENOENT: "is SPI enabled (dtparam=spi=on in config.txt) and the bus right?",
                errno.EACCES: "is the user in the spi group?",
            }.get(exc.errno or 0, "")
            raise HardwareError(
                exc.errno, f"cannot open {self.path}: {exc.strerror}; {hint}"
            ) from exc
        self._dev.mode = SPI_MODE
        self._dev.max_speed_hz = speed_hz
        self._closed = False

    @property
    def spidev(self) -> SpiDevLike:
        """The open ``SpiDev`` (its file descriptor serves the native reader)."""
        return self._dev

    def transfer(self, data: bytes | list[int], speed_hz: int, delay_usecs: int = 0) -> list[int]:
        try:
            return self._dev.xfer2(list(data), speed_hz, delay_usecs)
        except OSError as exc:
            raise HardwareError(exc.errno, f"SPI transfer on {self.path} failed: {exc}") from exc

    def transfer_without_cs(
        self, data: bytes | list[int], speed_hz: int, delay_usecs: int = 0
    ) -> list[int]:
        """One transaction with the device's hardware CS left inactive (``SPI_NO_CS``), for a
        chip whose chip-select is a GPIO the host drives by hand."""
        self._dev.no_cs = True
        try:
            return self.transfer(data, speed_hz, delay_usecs)
        finally:
            self._dev.no_cs = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._dev.close()


def find_gpiochip(spec: str) -> str:
    """Path of the gpiochip named by ``spec``: a path, a label, or ``auto`` (header chip).

    Raises:
        HardwareError: no chip matches; the message lists the chips seen.
    """
    if spec.startswith("/dev/"):
        return spec
    try:
        import gpiod
    except ImportError as exc:
        raise _missing("gpiod", exc) from exc
    wanted = HEADER_CHIP_LABELS if spec == "auto" else (spec,)
    seen = []
    for path in sorted(glob.glob("/dev/gpiochip*")):
        try:
            with gpiod.Chip(path) as chip:
                label = chip.get_info().label
        except OSError:
            continue
        seen.append(f"{path} ({label})")
        if label in wanted:
            return path
    raise HardwareError(
        errno.ENODEV,
        f"no gpiochip labelled {' or '.join(wanted)}; found: {', '.join(seen) or 'none'}. "
        "Set device.gpiochip to the path or label of the chip that has the DRDY line",
    )


def gpiod_request_drdy(
    chip_path: str, offset: int, event_buffer_size: int = DRDY_EVENT_BUFFER
) -> EdgeRequestLike:
    """Request DRDY as an input with falling-edge events stamped by CLOCK_MONOTONIC, the
    kernel keeping ``event_buffer_size`` of them."""
    try:
        import gpiod
        from gpiod.line import Bias, Clock, Direction, Edge
    except ImportError as exc:
        raise _missing("gpiod", exc) from exc
    settings = gpiod.LineSettings(
        direction=Direction.INPUT,
        edge_detection=Edge.FALLING,
        bias=Bias.PULL_UP,  # DRDY idles high; a pull-up keeps an unwired line from chattering
        event_clock=Clock.MONOTONIC,
    )
    try:
        request: EdgeRequestLike = gpiod.request_lines(
            chip_path,
            consumer="eegpi-drdy",
            config={offset: settings},
            event_buffer_size=event_buffer_size,
        )
    except OSError as exc:
        raise HardwareError(
            exc.errno,
            f"cannot request DRDY line {offset} on {chip_path}: {exc.strerror}; "
            "is the user in the gpio group and the line free?",
        ) from exc
    return request


class _GpiodOutputs:
    """Boolean levels over a gpiod output request."""

    def __init__(self, request: Any) -> None:
        self._request = request

    def set_level(self, offset: int, high: bool) -> None:
        from gpiod.line import Value

        self._request.set_value(offset, Value.ACTIVE if high else Value.INACTIVE)

    def release(self) -> None:
        self._request.release()


def gpiod_request_outputs(chip_path: str, lines: Mapping[str, int]) -> OutputRequestLike:
    """Request RESET/START/PWDN as outputs: RESET and PWDN high (inactive), START low."""
    try:
        import gpiod
        from gpiod.line import Direction, Value
    except ImportError as exc:
        raise _missing("gpiod", exc) from exc
    config: dict[Any, Any] = {
        offset: gpiod.LineSettings(
            direction=Direction.OUTPUT,
            output_value=Value.INACTIVE if name == "start" else Value.ACTIVE,
        )
        for name, offset in lines.items()
    }
    try:
        request = gpiod.request_lines(chip_path, consumer="eegpi-ctl", config=config)
    except OSError as exc:
        raise HardwareError(
            exc.errno, f"cannot request control lines {dict(lines)} on {chip_path}: {exc}"
        ) from exc
    return _GpiodOutputs(request)


class GpiodDrdy:
    """DRDY falling edges from a gpiod v2 line request (or its stand-in)."""

    kernel_stamps = True
    """Edges are stamped in the interrupt and numbered by the kernel (``line_seqno``)."""

    def __init__(self, request: EdgeRequestLike) -> None:
        self._request = request
        self._closed = False

    @property
    def request(self) -> EdgeRequestLike:
        """The line request (its file descriptor serves the native reader)."""
        return self._request

    def wait(self, timeout: float) -> bool:
        return self._request.wait_edge_events(timeout)

    def read_events(self) -> Sequence[EdgeEventLike]:
        return self._request.read_edge_events()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._request.release()


class GpiodPins:
    """Optional RESET/START/PWDN outputs; unwired ones are simply not ``available``."""

    def __init__(self, request: OutputRequestLike | None, lines: Mapping[str, int]) -> None:
        self._request = request
        self._lines = dict(lines)
        self.available = frozenset(self._lines) if request is not None else frozenset()

    def set(self, name: str, high: bool) -> None:
        if self._request is None or name not in self._lines:
            raise HardwareError(errno.ENODEV, f"no {name.upper()} pin configured")
        self._request.set_level(self._lines[name], high)

    def close(self) -> None:
        if self._request is not None:
            self._request.release()
            self._request = None


class MonotonicClock:
    """CLOCK_MONOTONIC, the clock gpiod stamps edges with."""

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
