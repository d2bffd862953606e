"""A stand-in for the ``RPi.GPIO`` module, wired to the emulated board instead of the SoC.

It keeps RPi.GPIO's rules (a numbering mode before anything else, BCM or BOARD numbers, an
input before edge detection, one edge detection per channel until it is removed, no
``wait_for_edge`` on a channel with edge detection) and its error messages, and reads DRDY's
level through ``input``.

Edges reach callbacks as in RPi.GPIO: **one** poll thread serves every channel, and it runs the
callbacks itself. Like RPi.GPIO's edge-triggered epoll, the edges that fall while the thread is
away from epoll (a callback still running, or the thread not scheduled) collapse into one
callback, however short the callback: a late reader misses conversions, it never gets repeats,
and there are fewer callbacks than edges. In real time the host decides: every edge that fell
before the thread looked again makes one callback with the others. In virtual time the thread
is away while a callback reads over SPI and while a test stalls it
(:meth:`EmulatedRpiGpio.stall_callbacks`, deterministic); an edge that falls while it waits gets
a callback of its own. ``bouncetime``
(ms) ignores edges that come sooner than that after the last one accepted, for callbacks and
``event_detected`` alike. Only DRDY's
falling edge is wired; edge detection on another pin never fires, and DRDY's rising edge is
refused with a ValueError.

In real time the poll thread wakes at each edge. In virtual time it wakes whenever the clock
moves, and the clock moves only when the reader acts: its SPI reads take time, a poll of a
level it has just read moves time to the next change, and :meth:`EmulatedRpiGpio.idle`,
``wait_for_edge`` and ``event_detected`` move it to the next edge. So edges come as fast as
they are read, deterministically: the thread never moves the clock itself.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from eegpi.hardware.emulator.clock import VirtualClock, spin_for
from eegpi.hardware.emulator.wiring import HEADER_GPIOS, Port, Wiring

__all__ = ["BOARD_TO_BCM", "EmulatedRpiGpio"]

_SLICE_NS = 10_000_000
"""Longest real-time sleep while nothing is scheduled, so a START or a stop is seen."""
_POLL_S = 0.01
_NEVER = -1
"""``back_ns`` for a look that merges nothing (``event_detected``, ``wait_for_edge``)."""
_ALWAYS = 1 << 62
"""``back_ns`` in real time: every edge that fell before the thread looked merges."""
_SELF_PACE_S = 0.001
"""Real time a self-paced stand-in's poll thread waits for someone else to move virtual time."""

BOARD_TO_BCM = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10,
    21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19,
    36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip
"""Header pin -> BCM GPIO (40-pin header)."""
_ALT = {7: 41, 8: 41, 9: 41, 10: 41, 11: 41, 2: 42, 3: 42, 14: 40, 15: 40}
"""What ``gpio_function`` reports for pins the Pi's config gives to SPI0, I2C1 and the UART."""

Callback = Callable[[int], object]
_NOT_MODULE = frozenset(
    {"wiring", "self_paced", "directions", "watched", "idle", "module_attributes"}
)


@dataclass
class _Watch:
    """Edge detection on one channel."""

    channel: int
    """As the caller numbers it (BCM or BOARD)."""
    port: Port | None
    bounce_ns: int
    callbacks: list[Callback] = field(default_factory=list)
    detected: bool = False
    queue: deque[int] = field(default_factory=deque)
    """Accepted edges whose callbacks have not run yet (their times)."""
    last_ns: int | None = None
    run_id: int = 0
    next_index: int = 0

    def start(self) -> None:
        if self.port is not None:
            chip = self.port.chip
            self.run_id, self.next_index = chip.run_id, chip.edges(chip.run_id, 0, 0).next_index

    def _accept(self, t: int) -> bool:
        if self.bounce_ns and self.last_ns is not None and t - self.last_ns <= self.bounce_ns:
            return False
        self.last_ns = t
        self.detected = True
        return True

    def collect(self, back_ns: int) -> None:
        """Take the edges since the last look: each is a callback round of its own (a waiting
        poll thread is woken by each), except that the edges that fell while the thread was
        away from epoll (up to ``back_ns``) make one round together, as with RPi.GPIO's
        edge-triggered epoll."""
        if self.port is None:
            return
        chip = self.port.chip
        batch = chip.edges(self.run_id, self.next_index, 1 << 30)
        self.run_id, self.next_index = batch.run_id, batch.next_index
        merged = False
        for _, t in batch.stamps:
            during = t <= back_ns
            if during and merged:
                continue
            merged = merged or during
            if self._accept(t):
                self.queue.append(t)

    def next_edge_ns(self) -> int | None:
        if self.port is None:
            return None
        return self.port.chip.next_edge_ns(self.run_id, self.next_index)


class _PollThread:
    """RPi.GPIO's one edge thread: collects every watched channel's edges, runs callbacks."""

    def __init__(self, gpio: EmulatedRpiGpio) -> None:
        self._gpio = gpio
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rpigpio-poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        gpio = self._gpio
        clock = gpio.wiring.clock
        virtual = clock if isinstance(clock, VirtualClock) else None
        while not self._stop.is_set():
            now = clock.monotonic_ns()
            due = gpio._due(now)
            if due is not None:
                self._run_callbacks(*due)
                continue
            if self._stop.is_set():
                break
            if virtual is not None:
                # The reader moves the clock. A driver that leaves the work to its callbacks
                # (its main thread just sleeps) cannot: on a self-paced stand-in, time moves
                # to the next edge once the callbacks have returned and nobody else moved it.
                if not virtual.wait_moved(now, _SELF_PACE_S if gpio.self_paced else _POLL_S):
                    nxt = gpio._next_edge() if gpio.self_paced and gpio._has_callbacks() else None
                    if nxt is not None:
                        virtual.sleep_until(nxt[0])
                continue
            away = gpio._away_until - now
            if away > 0:  # a stalled thread: the edges wait for it
                clock.sleep(min(away, _SLICE_NS) / 1e9)
                continue
            nxt = gpio._next_edge()
            if nxt is None:
                self._stop.wait(_POLL_S)
            else:
                nxt[1].chip.idle(nxt[0])  # the chip's spare time: generate conversions ahead
                # A plain sleep, no busy wait: a spinning thread would hold the GIL the reader
                # needs, and the overshoot stands for RPi.GPIO's own wake-up latency.
                clock.sleep(min(nxt[0] - clock.monotonic_ns(), _SLICE_NS) / 1e9)

    def _run_callbacks(self, channel: int, rounds: int, callbacks: list[Callback]) -> None:
        """Run ``rounds`` rounds of callbacks back to back, as a poll thread woken by each edge
        would; stops early when the thread is away after a round (its callbacks read over SPI,
        or a stall): the edges that fall meanwhile merge."""
        gpio = self._gpio
        for done in range(rounds):
            transfers = gpio.wiring.transfers_here()
            board_transfers = gpio.wiring.transfers  # before the callbacks: see _round_done
            for callback in callbacks:
                try:
                    callback(channel)
                except Exception:  # RPi.GPIO prints the traceback and carries on
                    traceback.print_exc()
            # In virtual time a round that read nothing over SPI takes no time; in real time
            # the edges that fell meanwhile merge at the next look anyway.
            if gpio._round_done(gpio.wiring.transfers_here() != transfers, board_transfers):
                gpio._requeue(channel, rounds - done - 1)
                return

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class EmulatedRpiGpio:
    """Behaves like the ``RPi.GPIO`` module on a Pi wired to the emulated chips."""

    BOARD = 10
    BCM = 11
    OUT = 0
    IN = 1
    HIGH = 1
    LOW = 0
    PUD_OFF = 20
    PUD_DOWN = 21
    PUD_UP = 22
    RISING = 31
    FALLING = 32
    BOTH = 33
    UNKNOWN = -1
    SERIAL = 40
    SPI = 41
    I2C = 42
    HARD_PWM = 43
    VERSION = "0.7.1"
    RPI_REVISION = 3
    RPI_INFO = {
        "P1_REVISION": 3,
        "REVISION": "d04170",
        "TYPE": "Pi 5 Model B",
        "MANUFACTURER": "Sony UK",
        "PROCESSOR": "BCM2712",
        "RAM": "8G",
    }

    def __init__(self, wiring: Wiring, self_paced: bool = False) -> None:
        """
        Args:
            wiring: the board.
            self_paced: in virtual time, let the poll thread move the clock to the next edge
                when nobody else does (for drivers whose main thread only sleeps); eegpi's own
                reader moves it through :meth:`idle` instead, deterministically.
        """
        self.wiring = wiring
        self.self_paced = self_paced
        self._mode: int | None = None
        self.directions: dict[int, int] = {}
        """BCM pins set up, and as what; ``cleanup`` removes them."""
        self._pulls: dict[int, int] = {}
        self._watches: dict[int, _Watch] = {}
        self._lock = threading.RLock()
        self._poller: _PollThread | None = None
        self._inflight = 0
        """Callback rounds taken from the queues and not finished yet."""
        self._delivered_at = -1
        """The board's transfer count when a callback round last finished."""
        self._rounds = 0
        """Callback rounds run so far."""
        self._stalls: Callable[[int], int] | None = None
        self._away_until = _NEVER
        """Until when the poll thread is away from epoll (edges up to then merge)."""

    # --- numbering ---------------------------------------------------------------------------

    def setwarnings(self, flag: bool) -> None:
        pass

    def setmode(self, mode: int) -> None:
        if mode not in (self.BCM, self.BOARD):
            raise ValueError("An invalid mode was passed to setmode()")
        if self._mode is not None and mode != self._mode:
            raise ValueError("A different mode has already been set!")
        self._mode = mode

    def getmode(self) -> int | None:
        return self._mode

    def _bcm(self, channel: int) -> int:
        if self._mode is None:
            raise RuntimeError(
                "Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or "
                "GPIO.setmode(GPIO.BCM)"
            )
        if isinstance(channel, bool) or not isinstance(channel, int):
            raise ValueError("Channel must be an integer or list/tuple of integers")
        pin = BOARD_TO_BCM.get(channel) if self._mode == self.BOARD else channel
        if pin is None or pin not in HEADER_GPIOS:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")
        return pin

    @staticmethod
    def _channels(channel: int | Iterable[int]) -> list[int]:
        return list(channel) if isinstance(channel, list | tuple) else [channel]  # type: ignore[list-item]

    # --- setup and levels --------------------------------------------------------------------

    def setup(
        self,
        channel: int | Iterable[int],
        direction: int,
        pull_up_down: int = PUD_OFF,
        initial: int = -1,
    ) -> None:
        if direction not in (self.IN, self.OUT):
            raise ValueError("An invalid direction was passed to setup()")
        if direction == self.OUT and pull_up_down != self.PUD_OFF:
            raise ValueError("pull_up_down parameter is not valid for outputs")
        if direction == self.IN and initial != -1:
            raise ValueError("initial parameter is not valid for inputs")
        if pull_up_down not in (self.PUD_OFF, self.PUD_DOWN, self.PUD_UP):
            raise ValueError(
                "Invalid value for pull_up_down - should be either PUD_OFF, PUD_UP or PUD_DOWN"
            )
        for ch in self._channels(channel):
            pin = self._bcm(ch)
            with self._lock:
                self.directions[pin] = direction
                self._pulls[pin] = pull_up_down
            if direction == self.OUT:
                # Without ``initial`` the pin drives what its output latch holds: low at boot.
                level = self.wiring.driven(pin) if initial == -1 else bool(initial)
                self.wiring.drive(pin, bool(level))
            else:
                self.wiring.release(pin)

    def output(self, channel: int | Iterable[int], value: int | Iterable[int]) -> None:
        channels = self._channels(channel)
        values = (
            self._channels(value) if isinstance(value, list | tuple) else [value] * len(channels)
        )
        if len(values) != len(channels):
            raise RuntimeError("Number of channel != number of value")
        for ch, v in zip(channels, values, strict=True):
            pin = self._bcm(ch)
            if self.directions.get(pin) != self.OUT:
                raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
            self.wiring.drive(pin, bool(v))

    def input(self, channel: int) -> int:
        pin = self._bcm(channel)
        direction = self.directions.get(pin)
        if direction is None:
            raise RuntimeError("You must setup() the GPIO channel first")
        if direction == self.OUT:
            return int(bool(self.wiring.driven(pin)))
        pull = {self.PUD_UP: True, self.PUD_DOWN: False}.get(self._pulls.get(pin, self.PUD_OFF))
        return int(self.wiring.read(pin, pull, id(self)))

    def gpio_function(self, channel: int) -> int:
        pin = self._bcm(channel)
        direction = self.directions.get(pin)
        if direction is not None:
            return direction
        return _ALT.get(pin, self.IN)

    # --- edges -------------------------------------------------------------------------------

    def _watch_for(self, pin: int, channel: int, edge: int, bouncetime: int | None) -> _Watch:
        if self.directions.get(pin) != self.IN:
            raise RuntimeError("You must setup() the GPIO channel as an input first")
        if edge not in (self.RISING, self.FALLING, self.BOTH):
            raise ValueError("The edge must be set to RISING, FALLING or BOTH")
        if bouncetime is not None and bouncetime <= 0:
            raise ValueError("Bouncetime must be greater than 0")
        port = self.wiring.port_of_drdy(pin)
        if port is not None and edge != self.FALLING:
            raise ValueError(
                f"the emulated DRDY pin GPIO{pin} reports falling edges only; use GPIO.FALLING"
            )
        watch = _Watch(channel, port, int((bouncetime or 0) * 1_000_000))
        watch.start()
        return watch

    def add_event_detect(
        self,
        channel: int,
        edge: int,
        callback: Callback | None = None,
        bouncetime: int | None = None,
    ) -> None:
        pin = self._bcm(channel)
        with self._lock:
            if pin in self._watches:
                raise RuntimeError(
                    "Conflicting edge detection already enabled for this GPIO channel"
                )
            watch = self._watch_for(pin, channel, edge, bouncetime)
            if callback is not None:
                watch.callbacks.append(callback)
            self._watches[pin] = watch
            if self._poller is None:
                self._poller = _PollThread(self)

    def add_event_callback(self, channel: int, callback: Callback) -> None:
        pin = self._bcm(channel)
        if not callable(callback):
            raise TypeError("Parameter must be callable")
        with self._lock:
            watch = self._watches.get(pin)
            if watch is None:
                raise RuntimeError(
                    "Add event detection using add_event_detect first before adding a callback"
                )
            watch.callbacks.append(callback)

    def remove_event_detect(self, channel: int) -> None:
        pin = self._bcm(channel)
        with self._lock:
            self._watches.pop(pin, None)
            poller = self._poller if not self._watches else None
            if poller is not None:
                self._poller = None
        if poller is not None:
            poller.stop()

    def event_detected(self, channel: int) -> bool:
        """True once per batch of edges since the last call (edge detection must be on)."""
        pin = self._bcm(channel)
        clock = self.wiring.clock
        for attempt in range(2):
            with self._lock:
                watch = self._watches.get(pin)
                if watch is None:
                    return False
                watch.collect(_NEVER)
                if watch.detected:
                    watch.detected = False
                    return True
                nxt = watch.next_edge_ns()
            if clock.realtime or attempt:
                return False
            # Virtual time: a host polling for an event it has not got is spinning.
            if nxt is None:
                clock.sleep(_POLL_S)
            else:
                clock.sleep_until(nxt)
        return False

    def wait_for_edge(
        self,
        channel: int,
        edge: int,
        bouncetime: int | None = None,
        timeout: int | None = None,
    ) -> int | None:
        """Block until the next edge (the channel) or ``timeout`` ms (None)."""
        pin = self._bcm(channel)
        if timeout is not None and timeout <= 0:
            raise ValueError("Timeout must be greater than 0")
        with self._lock:
            if pin in self._watches:
                raise RuntimeError(
                    "Conflicting edge detection already enabled for this GPIO channel"
                )
            watch = self._watch_for(pin, channel, edge, bouncetime)
        clock = self.wiring.clock
        deadline = clock.monotonic_ns() + int((3600_000 if timeout is None else timeout) * 1e6)
        while True:
            now = clock.monotonic_ns()
            watch.collect(_NEVER)
            if watch.detected:
                return channel
            if now >= deadline:
                return None
            nxt = watch.next_edge_ns()
            target = deadline if nxt is None else min(nxt, deadline)
            spin = 0
            if clock.realtime:
                target = min(target, now + _SLICE_NS)
                if nxt is not None and watch.port is not None:
                    watch.port.chip.idle(nxt)
                    spin = spin_for(watch.port.chip.period_ns)
            clock.sleep_until(target, spin)

    def _due(self, now: int) -> tuple[int, int, list[Callback]] | None:
        """The channel whose oldest pending edge came first, its pending rounds, callbacks."""
        with self._lock:
            if now < self._away_until:
                return None  # the poll thread is not back at epoll yet
            back = _ALWAYS if self.wiring.clock.realtime else self._away_until
            for watch in self._watches.values():
                watch.collect(back)
                if not watch.callbacks:
                    watch.queue.clear()  # ``event_detected`` only
            waiting = [w for w in self._watches.values() if w.queue]
            if not waiting:
                return None
            first = min(waiting, key=lambda w: w.queue[0])
            rounds = len(first.queue)
            first.queue.clear()
            self._inflight += rounds
            return first.channel, rounds, list(first.callbacks)

    def _round_done(self, worked: bool, transfers_before: int) -> bool:
        """A callback round returned (``worked``: its callbacks read over SPI); True when the
        thread is away for a while now (its work took time, or a stall was asked for).

        ``transfers_before`` is the board's SPI transfer count when the round began: a reader
        that read over SPI after that has seen the round's edge, even when it read before the
        round returned (taking the count at return instead made :meth:`idle` wait for an edge
        the reader had already taken, and virtual time stopped)."""
        with self._lock:
            self._rounds += 1
            stall = self._stalls(self._rounds) if self._stalls is not None else 0
            now = self.wiring.clock.monotonic_ns()
            away = worked or stall > 0
            if away:
                self._away_until = now + max(stall, 0)
            self._inflight -= 1
            self._delivered_at = transfers_before
            return away

    def stall_callbacks(self, stalls: Callable[[int], int] | None) -> None:
        """Keep the poll thread away from epoll after some callback rounds, as a busy host
        would: after round ``n`` (counting from 1) it comes back ``stalls(n)`` ns later, and
        the edges that fell meanwhile make one callback. Deterministic in virtual time (the
        reader's wait moves the clock to the stall's end); None stops stalling."""
        with self._lock:
            self._stalls = stalls

    def _requeue(self, channel: int, rounds: int) -> None:
        """Rounds not run yet go back, ahead of the edges that fell meanwhile."""
        with self._lock:
            self._inflight -= rounds
            watch = next((w for w in self._watches.values() if w.channel == channel), None)
            if watch is not None and rounds:
                watch.queue.extendleft([watch.last_ns or 0] * rounds)

    def _has_callbacks(self) -> bool:
        with self._lock:
            return any(w.callbacks for w in self._watches.values())

    def _next_edge(self) -> tuple[int, Port] | None:
        with self._lock:
            upcoming = [
                (t, w.port)
                for w in self._watches.values()
                if w.port is not None and (t := w.next_edge_ns()) is not None
            ]
        return min(upcoming, key=lambda u: u[0]) if upcoming else None

    # --- releasing ---------------------------------------------------------------------------

    def cleanup(self, channel: int | Iterable[int] | None = None) -> None:
        if channel is None:
            pins = list(self.directions)
        else:
            pins = [self._bcm(ch) for ch in self._channels(channel)]
        for pin in pins:
            with self._lock:
                watch = self._watches.get(pin)
            if watch is not None:
                self.remove_event_detect(watch.channel)
            with self._lock:
                self.directions.pop(pin, None)
                self._pulls.pop(pin, None)
            self.wiring.release(pin)
        if channel is None:
            self._mode = None

    # --- for eegpi's own reader --------------------------------------------------------------

    def idle(self, timeout: float) -> None:
        """The reader waits for DRDY with nothing to read. In virtual time, move the clock to
        the next edge of a watched DRDY pin (or by ``timeout`` when none will come, so a
        stuck DRDY is still detected); in real time edges come by themselves."""
        clock = self.wiring.clock
        if not isinstance(clock, VirtualClock):
            return
        with self._lock:
            away_until = self._away_until
        if clock.monotonic_ns() < away_until:
            clock.sleep_until(away_until)  # the stalled poll thread comes back then
            return
        with self._lock:
            if self._inflight or any(w.queue for w in self._watches.values()):
                return  # edges already due: their callbacks are on their way
            if self._delivered_at == self.wiring.transfers:
                # A callback came after the reader's last read: it looked for events just
                # before that, and finds them when it waits now.
                return
        nxt = self._next_edge()
        if nxt is None:
            clock.sleep(timeout)
        else:
            clock.sleep_until(nxt[0])

    @property
    def watched(self) -> frozenset[int]:
        """BCM pins with edge detection while the poll thread is alive."""
        with self._lock:
            alive = self._poller is not None and self._poller.alive
            return frozenset(self._watches) if alive else frozenset()

    def module_attributes(self) -> dict[str, Any]:
        """The public names of the ``RPi.GPIO`` module this instance stands for."""
        return {
            name: getattr(self, name)
            for name in dir(self)
            if not name.startswith("_") and name not in _NOT_MODULE
        }
