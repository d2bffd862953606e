"""The real-time acquisition loop: one frame read per DRDY edge into a preallocated ring.

The chip has no FIFO, so the loop does as little as possible per frame: wait for edge events,
read one frame, store its bytes in a :class:`~eegpi.hardware.ring.FrameRing` with the sample slot
and the kernel's edge time. Decoding happens block-wise in the consumer. Losses are counted,
never hidden:

* missed conversions: gaps in the edge ``line_seqno`` (the kernel keeps 1024 events and drops
  the oldest), edge-time gaps of a whole period more than the seqno says (an edge the kernel
  never saw), and the older results of a burst (only the newest is readable);
* a frame during whose read a DRDY may have fallen before the transfer began: which conversion
  it holds cannot be known, so it is discarded and counted as missed
  (:mod:`eegpi.hardware.slots` labels frames and explains why);
* a full ring (consumer too slow): the frame is dropped and its slot left as a gap.

Every slot up to the newest frame is therefore either in the ring or counted:
``frames_read + missed == newest slot + 1`` (losses are counted with the frame after them, so
conversions lost after the last frame of a run are not).

The loop runs on a thread of its own; that thread lives in the daemon's process (``thread``
mode, tests) or in the acquisition process (:mod:`eegpi.hardware.process`), which hands the
same ring over in shared memory. It never touches asyncio.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from eegpi.exc import HardwareError
from eegpi.hardware.base import EdgeEventLike
from eegpi.hardware.driver import Ads1299
from eegpi.hardware.ring import FrameRing, RawFrames
from eegpi.hardware.slots import slot_counter
from eegpi.hardware.timeslice import request_short_slice

__all__ = [
    "SLEEPER_PRIORITY",
    "Acquisition",
    "FrameSource",
    "Granted",
    "RawFrames",
    "RingReader",
    "default_capacity",
    "raise_reader_priority",
    "reader_priority",
]

log = logging.getLogger("eegpi.hardware")


class FrameSource(Protocol):
    """The consumer's view of acquisition, in this process or in the acquisition process."""

    @property
    def available(self) -> int: ...

    @property
    def frames_read(self) -> int: ...

    @property
    def missed(self) -> int: ...

    @property
    def overflowed(self) -> int: ...

    @property
    def running(self) -> bool: ...

    @property
    def priority_set(self) -> bool: ...

    @property
    def nice_set(self) -> bool: ...

    def wait(self, count: int, timeout: float) -> int: ...

    def take(self, limit: int | None = None) -> RawFrames: ...

    def hurry(self) -> None:
        """End the consumer's current or next :meth:`wait` now (any thread; never blocks)."""

    def stop(self) -> None: ...


SLEEPER_PRIORITY = 50
"""SCHED_FIFO priority asked for a reader given a ``nice`` value whose DRDY wait sleeps at this
rate after all (the real-time emulator at 1000 SPS or slower), as on a board."""


def reader_priority(
    device: Ads1299, period_ns: float, priority: int | None, nice: int | None
) -> int | None:
    """The SCHED_FIFO priority a reader asks for: ``priority``, or given only ``nice``,
    :data:`SLEEPER_PRIORITY` where its DRDY wait sleeps at this period after all (the device's
    clock says so: the real-time emulator at 1000 SPS or slower), since a nice value does not
    make the kernel preempt a busy process when the reader wakes."""
    busy_waits = getattr(device.link.clock, "busy_waits", None)
    sleeps = not (callable(busy_waits) and busy_waits(period_ns))
    if priority is None and nice is not None and sleeps:
        return SLEEPER_PRIORITY
    return priority


@dataclass(frozen=True)
class Granted:
    """What :func:`raise_reader_priority` obtained for the calling thread."""

    cpus: frozenset[int] | None
    """CPUs the thread was pinned to, None when not pinned."""
    nice: bool
    short_slice: bool
    """The thread runs with the shortest time slice (:mod:`eegpi.hardware.timeslice`)."""
    priority: bool
    """SCHED_FIFO was granted."""


def raise_reader_priority(
    cpus: frozenset[int] | None, nice: int | None, priority: int | None, who: str = "acquisition"
) -> Granted:
    """Affinity, nice value, time slice and SCHED_FIFO of the calling thread (Linux: 0 is
    this thread), each as far as permitted, the refusals logged. The short slice is what an
    unprivileged thread gets: without it a busy process beside keeps a reader from the CPU
    for up to a few milliseconds after each DRDY."""
    cpus_set: frozenset[int] | None = None
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
            cpus_set = frozenset(cpus)
        except (OSError, AttributeError, ValueError) as exc:
            log.info("%s is not pinned to CPUs %s: %s", who, sorted(cpus), exc)
    nice_set = False
    if nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)  # Linux: 0 is this thread
            nice_set = True
        except (OSError, AttributeError) as exc:
            log.info("%s runs at nice 0 (nice %d not permitted: %s)", who, nice, exc)
    refused = request_short_slice()
    if refused is not None:
        log.info("%s runs with the default time slice (%s)", who, refused)
    priority_set = False
    if priority is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            priority_set = True
        except (OSError, AttributeError) as exc:
            log.info("%s runs at normal priority (SCHED_FIFO not permitted: %s)", who, exc)
    return Granted(cpus_set, nice_set, refused is None, priority_set)


def default_capacity(sample_rate: int) -> int:
    """Ring entries: 2 s of data, at least 4096 (a pipeline stall that long is survived)."""
    return max(4096, 2 * sample_rate)


class RingReader:
    """What every acquisition loop offers its consumer: the ring's counters and frames.

    A reader (the Python loop here, the native one in :mod:`eegpi.hardware.native`) sets
    ``ring`` and ``error`` and says whether it is ``running``.
    """

    ring: FrameRing
    error: HardwareError | None
    """Why the loop ended early (stuck DRDY, SPI failure); raised by :meth:`wait`."""

    @property
    def running(self) -> bool:
        raise NotImplementedError

    @property
    def frames_read(self) -> int:
        """Frames clocked out of the chip (stored or overflowed)."""
        return self.ring.frames_read

    @property
    def missed(self) -> int:
        """Conversions no frame carries: DRDY missed, result overwritten before the read, or
        the frame discarded because it could not be named."""
        return self.ring.missed

    @property
    def overflowed(self) -> int:
        """Frames read but dropped because the ring was full."""
        return self.ring.overflowed

    # --- consumer ----------------------------------------------------------------------------

    @property
    def available(self) -> int:
        return self.ring.available

    def wait(self, count: int, timeout: float) -> int:
        """Wait until ``count`` frames are waiting or ``timeout`` s pass; returns how many wait.

        Raises:
            HardwareError: the loop failed (stuck DRDY, SPI error) and nothing is left to take.
        """
        if timeout > 0 and self.error is None and self.running:
            available = self.ring.wait(count, timeout)  # returns at once when enough wait
        else:
            available = self.available
        if available == 0 and self.error is not None:
            raise self.error
        return available

    def hurry(self) -> None:
        self.ring.hurry()

    def take(self, limit: int | None = None) -> RawFrames:
        """Copy out (and release) up to ``limit`` of the waiting frames, oldest first."""
        return self.ring.take(limit)


class Acquisition(RingReader):
    """Owns the thread that services DRDY for one started :class:`Ads1299`."""

    def __init__(
        self,
        device: Ads1299,
        sample_rate: int,
        *,
        capacity: int | None = None,
        priority: int | None = None,
        stuck_timeout_s: float | None = None,
        lossless: bool = False,
        ring: FrameRing | None = None,
        cpus: frozenset[int] | None = None,
        nice: int | None = None,
        on_failure: Callable[[HardwareError], None] | None = None,
    ) -> None:
        """
        Args:
            device: a configured (not yet started) driver.
            sample_rate: the programmed data rate, for gap detection and timeouts.
            capacity: ring size in frames; default :func:`default_capacity`.
            priority: SCHED_FIFO priority to request for the thread (None = leave as is, but
                see ``nice``).
            stuck_timeout_s: no DRDY for this long while started is an error; default
                max(20 periods, 0.5 s) after the settling time.
            lossless: wait for the consumer instead of dropping when the ring is full. Only
                for the emulator's virtual time, where DRDY waits for the reader anyway.
            ring: where frames go (e.g. a shared-memory ring read by another process);
                default: a new in-process ring of ``capacity`` frames.
            cpus: pin the thread to these CPUs (None = leave it to the scheduler).
            nice: nice value to request for the thread instead of SCHED_FIFO, for a thread
                that busy-waits (the real-time emulator): the kernel throttles a busy SCHED_FIFO
                thread, while a low nice value only keeps other work from preempting it. Where
                the DRDY wait does not busy-wait at this rate (the device's clock says so: the
                emulator at 1000 SPS or slower) SCHED_FIFO at :data:`SLEEPER_PRIORITY` is asked
                for too, since a nice value does not make the kernel preempt a busy process
                when the reader wakes: it waits for the next scheduler tick, up to 4 ms.
            on_failure: called from the thread when it ends by itself with an error (after
                the consumer was woken).
        """
        self.device = device
        self.sample_rate = sample_rate
        self.period_ns = 1e9 / sample_rate
        self.frame_len = device.frame_len
        if ring is None:
            ring = FrameRing(capacity or default_capacity(sample_rate), self.frame_len)
        elif ring.frame_len != self.frame_len:
            raise ValueError(
                f"ring holds {ring.frame_len}-byte frames, the chain sends {self.frame_len}"
            )
        self.ring = ring
        self.capacity = ring.capacity
        self.priority = reader_priority(device, self.period_ns, priority, nice)
        self.stuck_timeout_s = stuck_timeout_s or max(20 / sample_rate, 0.5)
        self.lossless = lossless
        self._stopping = threading.Event()
        self._stop_asked = False
        """``_stopping`` as a plain flag, for the loop to look at once per frame."""
        self._thread: threading.Thread | None = None
        self.error: HardwareError | None = None
        """Why the thread ended early (stuck DRDY, SPI failure); raised by :meth:`wait`."""
        self.cpus = cpus
        self.nice = nice
        self.nice_set = False
        self.on_failure = on_failure
        self.priority_set = False
        self.slice_set = False
        """The thread runs with the shortest time slice (:mod:`eegpi.hardware.timeslice`)."""
        self.cpus_set: frozenset[int] | None = None
        """CPUs the thread was pinned to, None when not pinned."""
        self._ready = threading.Event()

    # --- control -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start conversions and the thread."""
        if self._thread is not None:
            raise RuntimeError("acquisition already started")
        self.ring.restart()
        self.ring.prefault()
        drdy = self.device.link.drdy
        while drdy.wait(0):  # edges of an earlier run must not count in this one
            drdy.read_events()
        self.device.start()
        self._thread = threading.Thread(target=self._run, name="eegpi-acquisition", daemon=True)
        self._thread.start()
        self._ready.wait(1.0)  # priority and affinity are known once start() returns

    def stop(self) -> None:
        """Stop the thread, then the chip; idempotent."""
        self._stop_asked = True
        self._stopping.set()
        self.ring.wake_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.error("acquisition thread did not stop within 5 s")
        self.device.stop()
        self.ring.wake_all()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end by itself (an error); True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # --- producer ----------------------------------------------------------------------------

    def _raise_priority(self) -> None:
        """Affinity, nice value, time slice and SCHED_FIFO of the calling thread: see
        :func:`raise_reader_priority`."""
        granted = raise_reader_priority(self.cpus, self.nice, self.priority)
        self.cpus_set, self.nice_set = granted.cpus, granted.nice
        self.slice_set, self.priority_set = granted.short_slice, granted.priority

    def _run(self) -> None:
        try:
            self._raise_priority()
        finally:
            self._ready.set()
        try:
            self._loop()
        except HardwareError as exc:
            self.error = exc
        except Exception as exc:  # any failure must reach the consumer, not vanish
            self.error = HardwareError(f"acquisition on {self.device.path} failed: {exc!r}")
        finally:
            self.ring.finish()
        if self.error is not None and self.on_failure is not None:
            self.on_failure(self.error)

    def _loop(self) -> None:
        device, drdy, clock = self.device, self.device.link.drdy, self.device.link.clock
        read_frame = device.read_frame
        ring = self.ring
        put, count_missed, lossless = ring.put, ring.count_missed, self.lossless
        settle_s = 4 / self.sample_rate + 0.001
        stuck_ns = int((self.stuck_timeout_s + settle_s) * 1e9)
        poll_s = min(0.05, self.stuck_timeout_s / 4)
        stopping = self._stopping
        is_stopping = stopping.is_set
        now = clock.monotonic_ns
        slots = slot_counter(drdy.kernel_stamps, self.period_ns)
        observe, place, observes = slots.observe, slots.place, slots.observes
        wait, read_events = drdy.wait, drdy.read_events
        progress = now()
        lost = 0
        carry: Sequence[EdgeEventLike] = ()
        nothing: Sequence[EdgeEventLike] = ()
        while not self._stop_asked:
            if carry:
                events, carry = carry, ()
            else:
                if not wait(poll_s):
                    idle = now() - progress
                    if idle > stuck_ns:
                        raise HardwareError(
                            f"no DRDY from the ADS1299 for {idle / 1e9:.2f} s: is DRDY wired to "
                            f"{device.link.drdy_name} and the chip converting (START)? a board "
                            "that stops mid-run may have lost power or its clock"
                        )
                    continue
                events = read_events()
                if not events:
                    continue
                if observes:
                    observe(events)
            # The clock before and after the read bound when the transfer began; edges seen
            # after it are sorted by their stamps (see eegpi.hardware.slots).
            began = now()
            frame = read_frame()
            ended = now()
            late = nothing
            if wait(0):
                late = read_events()
                if observes:
                    observe(late)
            where = place(events, late, began, ended)
            carry = where.carry
            lost += where.lost
            progress = ended
            if where.slot is not None:
                if lost:  # counted with the frame after them: every slot up to it is accounted
                    count_missed(lost)
                    lost = 0
                put(
                    bytes(frame), where.slot, where.edge_ns, lossless=lossless, stopping=is_stopping
                )
