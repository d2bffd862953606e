"""A stand-in for the ``RPi.GPIO`` module, wired to an emulated chip instead of the SoC.

It keeps RPi.GPIO's rules that the backend relies on (a numbering mode before ``setup``, an
input before ``add_event_detect``, one edge detection per channel until ``cleanup``), and runs
one callback thread per watched channel, as RPi.GPIO does. The thread calls the callback once
per DRDY edge of the emulated chip that reaches the pin (not for ``drop_conversions`` or
``silent_conversions``: RPi.GPIO has no sequence number to show either). In real time it calls
at the edge; in virtual time as soon as the clock has passed the edge, and the clock moves only
when the reader acts: its SPI reads take time, and while it waits with nothing to read,
:meth:`EmulatedRpiGpio.idle` moves the clock to the next edge. So edges come as fast as they
are read, and deterministically: the thread never moves the clock while the reader works.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from eegpi.hardware.emulator.chip import Ads1299Emulator
from eegpi.hardware.emulator.clock import VirtualClock

__all__ = ["EmulatedRpiGpio"]

_SLICE_NS = 10_000_000
"""Longest real-time sleep while nothing is scheduled, so a START or a stop is seen."""
_POLL_S = 0.01


class _EdgeThread:
    """Delivers the chip's DRDY edges to one callback until stopped."""

    def __init__(self, chip: Ads1299Emulator, channel: int, callback: Callable[[int], object]):
        self._chip = chip
        self._channel = channel
        self._callback = callback
        self._stop = threading.Event()
        self._run_id = 0
        self._next_index = 0
        self._thread = threading.Thread(target=self._run, name=f"rpigpio-{channel}", daemon=True)
        self._thread.start()

    def _deliver(self) -> int:
        batch = self._chip.edges(self._run_id, self._next_index, 0)
        self._run_id, self._next_index = batch.run_id, batch.next_index
        for _ in range(batch.delivered):
            self._callback(self._channel)
        return batch.delivered

    def next_edge_ns(self) -> int | None:
        """When the next edge this thread has not delivered falls (None: none will)."""
        return self._chip.next_edge_ns(self._run_id, self._next_index)

    def _run(self) -> None:
        chip, clock = self._chip, self._chip.clock
        virtual = clock if isinstance(clock, VirtualClock) else None
        while not self._stop.is_set():
            now = clock.monotonic_ns()
            self._deliver()
            if virtual is not None:
                virtual.wait_moved(now, _POLL_S)  # the reader moves the clock
                continue
            nxt = chip.next_edge_ns(self._run_id, self._next_index)
            if nxt is None:
                self._stop.wait(_POLL_S)
            else:
                chip.idle(nxt)  # the chip's spare time: generate conversions ahead
                # A plain sleep, no busy wait: a spinning thread would hold the GIL the reader
                # needs, and the overshoot stands for RPi.GPIO's own callback latency.
                clock.sleep(min(nxt - clock.monotonic_ns(), _SLICE_NS) / 1e9)

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class EmulatedRpiGpio:
    """Behaves like the ``RPi.GPIO`` module on a board whose DRDY and control pins are wired
    to the emulated chip (``outputs`` maps BCM pins to ``reset``, ``start``, ``pwdn``)."""

    BCM = 11
    BOARD = 10
    IN = 1
    OUT = 0
    PUD_UP = 22
    PUD_DOWN = 21
    PUD_OFF = 20
    FALLING = 32
    RISING = 31
    HIGH = 1
    LOW = 0

    def __init__(self, chip: Ads1299Emulator, drdy_pin: int, outputs: Mapping[int, str]) -> None:
        self._chip = chip
        self._drdy_pin = drdy_pin
        self._outputs = dict(outputs)
        self._mode: int | None = None
        self.directions: dict[int, int] = {}
        """Channels set up, and as what; ``cleanup`` removes them."""
        self._detect: dict[int, _EdgeThread] = {}
        self._lock = threading.Lock()

    def setwarnings(self, flag: bool) -> None:
        pass

    def setmode(self, mode: int) -> None:
        if mode not in (self.BCM, self.BOARD):
            raise ValueError("An invalid mode was passed to setmode()")
        if self._mode is not None and mode != self._mode:
            raise ValueError("A different mode has already been set!")
        self._mode = mode

    def setup(
        self, channel: int, direction: int, pull_up_down: int = PUD_OFF, initial: int = -1
    ) -> None:
        if self._mode is None:
            raise RuntimeError(
                "Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or "
                "GPIO.setmode(GPIO.BCM)"
            )
        if direction not in (self.IN, self.OUT):
            raise ValueError("An invalid direction was passed to setup()")
        with self._lock:
            self.directions[channel] = direction
        if direction == self.OUT and initial != -1:
            self.output(channel, initial)

    def add_event_detect(
        self, channel: int, edge: int, callback: Callable[[int], object] | None = None
    ) -> None:
        with self._lock:
            if self.directions.get(channel) != self.IN:
                raise RuntimeError("You must setup() the GPIO channel as an input first")
            if channel in self._detect:
                raise RuntimeError(
                    "Conflicting edge detection already enabled for this GPIO channel"
                )
            if edge != self.FALLING or callback is None or channel != self._drdy_pin:
                # Only DRDY's falling edge is wired; a callback on anything else never runs.
                callback = _never
            self._detect[channel] = _EdgeThread(self._chip, channel, callback)

    def remove_event_detect(self, channel: int) -> None:
        with self._lock:
            thread = self._detect.pop(channel, None)
        if thread is not None:
            thread.stop()

    def output(self, channel: int, value: int) -> None:
        if self.directions.get(channel) != self.OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        name = self._outputs.get(channel)
        if name is not None:
            self._chip.set_pin(name, bool(value))

    def cleanup(self, channel: int | None = None) -> None:
        channels = list(self.directions) if channel is None else [channel]
        for ch in channels:
            self.remove_event_detect(ch)
            with self._lock:
                self.directions.pop(ch, None)
        if channel is None:
            self._mode = None

    def idle(self, timeout: float) -> None:
        """The reader waits for DRDY with nothing to read. In virtual time, move the clock to
        the next edge of the watched DRDY channel (or by ``timeout`` when none will come, so a
        stuck DRDY is still detected); in real time edges come by themselves."""
        clock = self._chip.clock
        if not isinstance(clock, VirtualClock):
            return
        with self._lock:
            thread = self._detect.get(self._drdy_pin)
        nxt = thread.next_edge_ns() if thread is not None else None
        if nxt is None:
            clock.sleep(timeout)
        else:
            clock.sleep_until(nxt)

    @property
    def watched(self) -> frozenset[int]:
        """Channels with edge detection and a live callback thread."""
        with self._lock:
            return frozenset(ch for ch, t in self._detect.items() if t.alive)


def _never(channel: int) -> None:
    """The callback of a channel no emulated edge reaches."""
