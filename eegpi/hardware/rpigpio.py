"""DRDY and the control pins through the RPi.GPIO API: the fallback for images without gpiod.

One class covers both libraries that provide ``RPi.GPIO``: RPi.GPIO itself and rpi-lgpio (a
shim over lgpio and the gpiochip device; both install the ``RPi`` package, so only one can be
present). Edges arrive as callbacks on the library's own thread; each callback stamps
``time.monotonic_ns()`` and a running sequence number into a buffer that drops the oldest, like
the kernel's. Those stamps are late by the callback's latency, so the acquisition labels frames
from the DRDY cadence and its own clock instead (:class:`~eegpi.hardware.slots.CadenceSlots`).

Weaker than gpiod, and why gpiod stays the default:

* timestamps are taken in user space when the callback runs, not in the interrupt: callback
  latency (thread wake-up, the GIL) shifts them by tens of microseconds to milliseconds, and a
  starved callback thread delivers late edges with late stamps;
* RPi.GPIO's poll thread waits in edge-triggered epoll: the edges that fall while it is away
  make one callback, so the sequence numbers fall short of the edges (the cadence corrects its
  count, see :mod:`eegpi.hardware.slots`);
* the callback thread runs at normal priority even when the acquisition thread has SCHED_FIFO;
  rates above about 1000 SPS are not dependable;
* RPi.GPIO itself fails on a Pi 5 ("Cannot determine SOC peripheral base address") and, on
  kernel 6.6 and later, on every Pi ("Failed to add edge detection": sysfs GPIO numbering
  moved). Only rpi-lgpio works there; it opens gpiochip 0 unless ``RPI_LGPIO_CHIP`` says
  otherwise (set from ``device.gpiochip`` when that is a /dev/gpiochipN path).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from eegpi.exc import HardwareError
from eegpi.hardware.base import EdgeType

__all__ = [
    "EVENT_BUFFER_SIZE",
    "RpiGpioDrdy",
    "RpiGpioEdgeEvent",
    "RpiGpioLike",
    "RpiGpioPins",
    "real_rpi_gpio",
]

EVENT_BUFFER_SIZE = 1024
"""Edge events kept for the reader, as many as the kernel keeps for the gpiod DRDY request."""

_FAILED_EDGE_HINT = (
    "RPi.GPIO cannot detect edges on a Pi 5 or on kernel 6.6 and later: install gpiod "
    "(pip install eegpi[pi]) and set device.gpio: gpiod, or replace RPi.GPIO with rpi-lgpio; "
    "otherwise check that the pin is free and the user is in the gpio group"
)


class RpiGpioLike(Protocol):
    """The part of the ``RPi.GPIO`` module (or rpi-lgpio's) the backend uses."""

    BCM: int
    IN: int
    OUT: int
    PUD_UP: int
    FALLING: int
    HIGH: int
    LOW: int

    def setwarnings(self, flag: bool) -> None: ...

    def setmode(self, mode: int) -> None: ...

    def setup(
        self, channel: int, direction: int, pull_up_down: int = ..., initial: int = ...
    ) -> Any: ...

    def add_event_detect(
        self, channel: int, edge: int, callback: Callable[[int], object] | None = ...
    ) -> Any: ...

    def remove_event_detect(self, channel: int) -> Any: ...

    def output(self, channel: int, value: int) -> Any: ...

    def cleanup(self, channel: int | None = ...) -> Any: ...


@dataclass(frozen=True, slots=True)
class RpiGpioEdgeEvent:
    """The fields of a ``gpiod.EdgeEvent`` the acquisition reads, stamped in user space."""

    timestamp_ns: int
    line_seqno: int
    global_seqno: int
    event_type: EdgeType = EdgeType.FALLING_EDGE


def real_rpi_gpio(gpiochip: str = "auto") -> RpiGpioLike:
    """The ``RPi.GPIO`` module; a /dev/gpiochipN ``gpiochip`` is passed on to rpi-lgpio.

    Raises:
        HardwareError: neither RPi.GPIO nor rpi-lgpio is installed, or it refuses this machine.
    """
    match = re.fullmatch(r"/dev/gpiochip(\d+)", gpiochip)
    if match:
        os.environ.setdefault("RPI_LGPIO_CHIP", match.group(1))  # read by rpi-lgpio on import
    try:
        module = importlib.import_module("RPi.GPIO")
    except ImportError as exc:
        raise HardwareError(
            f"device.gpio: rpigpio needs the Python package RPi.GPIO or rpi-lgpio ({exc}); "
            "install rpi-lgpio, or better gpiod (pip install eegpi[pi]) with device.gpio: gpiod"
        ) from exc
    except RuntimeError as exc:  # "Cannot determine SOC peripheral base address" (Pi 5)
        raise HardwareError(
            errno.ENODEV, f"RPi.GPIO cannot run here: {exc}; {_FAILED_EDGE_HINT}"
        ) from exc
    return cast(RpiGpioLike, module)


class RpiGpioDrdy:
    """DRDY falling edges from RPi.GPIO callbacks, buffered like gpiod edge events."""

    kernel_stamps = False
    """Stamped when the callback runs: an upper bound on the edge time, late by the latency."""

    def __init__(
        self,
        gpio: RpiGpioLike,
        pin: int,
        clock: Callable[[], int] = time.monotonic_ns,
        buffer_size: int = EVENT_BUFFER_SIZE,
        idle: Callable[[float], None] | None = None,
    ) -> None:
        """
        Args:
            gpio: the ``RPi.GPIO`` module or a stand-in.
            pin: BCM number of DRDY.
            clock: stamps each edge when its callback runs (CLOCK_MONOTONIC on a Pi).
            buffer_size: events kept; when full the oldest is dropped, leaving a
                ``line_seqno`` gap.
            idle: called (with the timeout) when the reader is about to wait with nothing to
                read; the emulator's virtual clock moves to the next edge there.
        """
        self._gpio = gpio
        self._pin = pin
        self._clock = clock
        self._idle = idle
        self._events: deque[RpiGpioEdgeEvent] = deque(maxlen=buffer_size)
        self._seqno = 0
        self._cond = threading.Condition()
        self._closed = False
        try:
            gpio.setwarnings(False)  # "channel already in use" after an unclean exit is noise
            gpio.setmode(gpio.BCM)
            gpio.setup(pin, gpio.IN, pull_up_down=gpio.PUD_UP)
            gpio.add_event_detect(pin, gpio.FALLING, callback=self._on_edge)
        except (RuntimeError, ValueError, OSError) as exc:
            self._release()
            raise HardwareError(
                errno.EBUSY,
                f"cannot watch DRDY on GPIO{pin} through RPi.GPIO: {exc}; {_FAILED_EDGE_HINT}",
            ) from exc

    @property
    def gpio(self) -> RpiGpioLike:
        """The library (or stand-in) the edges come from."""
        return self._gpio

    def _on_edge(self, channel: int) -> None:
        """Runs on the library's callback thread: stamp, number, wake the reader."""
        stamp = self._clock()
        with self._cond:
            self._seqno += 1
            self._events.append(RpiGpioEdgeEvent(stamp, self._seqno, self._seqno))
            self._cond.notify()

    def wait(self, timeout: float) -> bool:
        with self._cond:
            if self._events or timeout <= 0:
                return bool(self._events)
        if self._idle is not None:
            self._idle(timeout)
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._events), timeout)

    def read_events(self) -> Sequence[RpiGpioEdgeEvent]:
        with self._cond:
            events = list(self._events)
            self._events.clear()
        return events

    def _release(self) -> None:
        for step in (self._gpio.remove_event_detect, self._gpio.cleanup):
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                step(self._pin)  # may never have been set up that far

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()


class RpiGpioPins:
    """Optional RESET/START/PWDN outputs: RESET and PWDN start high (inactive), START low."""

    def __init__(self, gpio: RpiGpioLike, lines: Mapping[str, int]) -> None:
        self._gpio = gpio
        self._lines = dict(lines)
        self.available = frozenset(self._lines)
        gpio.setmode(gpio.BCM)
        done: list[int] = []
        try:
            for name, pin in self._lines.items():
                initial = gpio.LOW if name == "start" else gpio.HIGH
                gpio.setup(pin, gpio.OUT, initial=initial)
                done.append(pin)
        except (RuntimeError, ValueError, OSError) as exc:
            for pin in done:
                gpio.cleanup(pin)
            raise HardwareError(
                errno.EBUSY, f"cannot set up control pins {self._lines} through RPi.GPIO: {exc}"
            ) from exc

    def set(self, name: str, high: bool) -> None:
        if name not in self._lines:
            raise HardwareError(errno.ENODEV, f"no {name.upper()} pin configured")
        self._gpio.output(self._lines[name], self._gpio.HIGH if high else self._gpio.LOW)

    def close(self) -> None:
        lines, self._lines = self._lines, {}
        for pin in lines.values():
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                self._gpio.cleanup(pin)
