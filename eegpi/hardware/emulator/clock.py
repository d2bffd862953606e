"""Time bases of the emulator: wall-clock, or virtual time that jumps to the next event."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

__all__ = ["EmulatorClock", "RealtimeClock", "VirtualClock", "spin_for"]


class EmulatorClock:
    """Monotonic nanoseconds plus waiting; subclasses decide whether waiting takes real time."""

    realtime: bool = True

    monotonic_ns = staticmethod(time.monotonic_ns)
    """The host's CLOCK_MONOTONIC: the builtin itself, read several times a frame."""

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def sleep_until(self, t_ns: int, spin_ns: int = 0) -> None:
        """Wait until ``t_ns``; ``spin_ns``: busy-wait that last stretch (real time only)."""
        self.sleep((t_ns - self.monotonic_ns()) / 1e9)

    def busy_waits(self, period_ns: float) -> bool:
        """Whether a reader waiting for DRDYs of this period spins (then SCHED_FIFO would get
        it throttled by the kernel; see :mod:`eegpi.hardware.acquisition`)."""
        return False


_PR_SET_TIMERSLACK = 29
_SPIN_NS = 150_000
"""Last stretch of a real-time wait done by spinning. A timed sleep on a busy host or a VM
overshoots by 40 us typically and by 100-200 us in its tail; at 8000 SPS an 80 us spin cost
0.1-0.2 % of the conversions, 150 us about 0.002 %."""
_SPIN_BELOW_NS = 1_000_000
"""DRDY periods from this long on get no spin (1000 SPS and slower): the emulated edge is
stamped with its scheduled time, as a kernel stamps the interrupt, so a reader woken a few
hundred microseconds late still labels the frame right and reads it long before the next DRDY;
spinning there would cost 4 % of a core at 250 SPS for nothing."""


class _Slack(threading.local):
    done = False
    """Whether this thread asked for the tight slack (a class default: read without getattr)."""


_slack = _Slack()


def spin_for(period_ns: float) -> int:
    """How long a wait for the next DRDY of this period spins at its end (ns)."""
    return _SPIN_NS if 0 < period_ns < _SPIN_BELOW_NS else 0


def _tighten_timer_slack() -> None:
    """Ask for 1 us timer slack on this thread (default 50 us), once per thread.

    A DRDY period is 62.5 us at 16000 SPS; with the default slack every emulated edge would
    arrive ~50 us late. On a Pi the kernel wakes the reader from the DRDY interrupt instead.
    """
    if _slack.done:
        return
    _slack.done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class RealtimeClock(EmulatorClock):
    """The host's CLOCK_MONOTONIC, the clock gpiod stamps edges with by default."""

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _tighten_timer_slack()
            time.sleep(seconds)

    def busy_waits(self, period_ns: float) -> bool:
        return spin_for(period_ns) > 0

    def sleep_until(self, t_ns: int, spin_ns: int = _SPIN_NS) -> None:
        # A kernel sleep overshoots by tens of microseconds, half a period at 16000 SPS, while
        # a real DRDY interrupt wakes the reader within a few. Sleep most of the way, then spin
        # (see ``spin_for``: only where the period is that short).
        remaining = t_ns - time.monotonic_ns()
        if remaining > spin_ns:
            if not _slack.done:
                _tighten_timer_slack()
            time.sleep((remaining - spin_ns) / 1e9)
        while time.monotonic_ns() < t_ns:
            pass


class VirtualClock(EmulatorClock):
    """Time that only moves when someone waits: DRDY is always 'just due', so tests and
    benchmarks run as fast as the host can read while timestamps stay exact."""

    realtime = False

    def __init__(self, max_speed: float = 0.0) -> None:
        # Start at the host's monotonic time so edge timestamps map to plausible Unix times.
        self._now_ns = self._start_ns = time.monotonic_ns()
        self._max_speed = max_speed
        """Virtual time never runs more than this many times ahead of the wall clock; 0: free."""
        self._lock = threading.Lock()
        self._moved = threading.Condition(self._lock)
        self._waiting = 0
        """Threads in :meth:`wait_moved`: time moves without a notify (a Python call chain)
        while there are none, as in a reader's every wait and read."""

    def wait_moved(self, since_ns: int, timeout: float) -> bool:
        """Wait (in real time) until someone moves time past ``since_ns``; False on timeout.

        A thread that delivers DRDY edges on its own waits here for the reader to act, so
        edges fall only as fast as they are read, as the gpiod stand-in's do.
        """
        with self._moved:
            self._waiting += 1
            try:
                return self._moved.wait_for(lambda: self._now_ns > since_ns, timeout)
            finally:
                self._waiting -= 1

    def monotonic_ns(self) -> int:
        return self._now_ns

    def _pace(self, t_ns: int) -> None:
        """Hold the caller (in real time, without the lock) until ``t_ns`` is allowed."""
        wall_ns = self._start_ns + (t_ns - self._start_ns) / self._max_speed
        ahead_s = (wall_ns - time.monotonic_ns()) / 1e9
        if ahead_s > 0:
            time.sleep(ahead_s)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            if self._max_speed:
                self._pace(self._now_ns + int(seconds * 1e9))
            with self._lock:
                self._now_ns += int(seconds * 1e9)
                if self._waiting:
                    self._moved.notify_all()

    def sleep_until(self, t_ns: int, spin_ns: int = 0) -> None:
        if self._max_speed and t_ns > self._now_ns:
            self._pace(t_ns)
        with self._lock:
            if t_ns > self._now_ns:
                self._now_ns = t_ns
                if self._waiting:
                    self._moved.notify_all()
