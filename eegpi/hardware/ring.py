"""A single-producer / single-consumer ring of raw frames, in process or in shared memory.

One flat buffer holds everything, so the same code serves a thread (a ``bytearray``) and a
separate acquisition process (a shared-memory :class:`~eegpi.hardware.shm.Segment`)::

    counters  int64 x 8   written, taken, frames read, missed, overflowed, want, blocked, done
    seq       int64 x capacity   sample slot of each entry
    edge_ns   int64 x capacity   DRDY falling-edge time of each entry
    frames    uint8 x capacity x frame_len

Ordering: the producer stores an entry, then publishes ``written`` under a lock; the consumer
reads ``written`` under the same lock before it loads the entry, and publishes ``taken`` under it
after copying entries out. The lock's acquire/release are the memory barriers that make this safe
on weakly ordered CPUs (the Pi's ARM cores) as well as on x86. The producer only ever
*tries* the lock: when the consumer holds it, publishing waits for the next frame, so a consumer
preempted inside the lock never stalls acquisition.

Wake-ups cost nothing per frame: the consumer writes how many frames it wants (``want``) and
sleeps on a :class:`Signal`; the producer posts it only when that many are waiting, once. The
same handshake (``blocked`` and a second signal) lets a lossless producer sleep while the ring is
full. Counters other than ``written`` and ``taken`` are plain statistics, stored without the lock.

Across processes the lock and the signals are named semaphores and the buffer a named segment;
each name is removed as soon as both processes hold it (:meth:`FrameRing.unlink`,
:meth:`RingSync.unlink`), so a crash of either leaves nothing in /dev/shm.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import numpy as np
import numpy.typing as npt

from eegpi.exc import HardwareError
from eegpi.hardware.shm import NamedSemaphore, Segment

__all__ = ["FrameRing", "RawFrames", "RingCounts", "RingHandle", "RingSync", "Signal"]

_WRITTEN, _TAKEN, _READ, _MISSED, _OVERFLOWED, _WANT, _BLOCKED, _DONE = range(8)
_HEADER = 8 * 8
_LOCK_TIMEOUT_S = 2.0
"""The lock is held for a few stores; a longer wait means its holder died inside it."""


class RawFrames:
    """Frames taken out of the ring: bytes, sample slots and DRDY edge times."""

    def __init__(
        self,
        frames: npt.NDArray[np.uint8],
        seq: npt.NDArray[np.int64],
        edge_ns: npt.NDArray[np.int64],
    ) -> None:
        self.frames = frames
        """Shape (n, frame_len)."""
        self.seq = seq
        """Sample slot of each frame (consecutive unless samples were lost)."""
        self.edge_ns = edge_ns
        """Kernel CLOCK_MONOTONIC time of each frame's DRDY falling edge."""

    def __len__(self) -> int:
        return len(self.seq)


class _Lock(Protocol):
    def acquire(self, block: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


class _Semaphore(Protocol):
    def acquire(self, block: bool = ..., timeout: float | None = ...) -> bool: ...

    def release(self) -> None: ...


class Signal:
    """A wake-up that survives the death of either side.

    A counting semaphore: ``set`` posts, ``wait`` takes a post, ``clear`` drains. Unlike
    ``multiprocessing.Event``, whose ``set`` waits for every sleeper to acknowledge and so
    hangs for good when a sleeper was killed, a post never blocks.
    """

    def __init__(self, sem: _Semaphore) -> None:
        self._sem = sem

    def set(self) -> None:
        self._sem.release()

    def clear(self) -> None:
        while self._sem.acquire(False):
            pass

    def wait(self, timeout: float) -> bool:
        """True when a post arrived within ``timeout`` seconds (it is consumed)."""
        return self._sem.acquire(True, max(0.0, timeout))


@dataclass
class RingSync:
    """The lock and the two events of one ring (picklable when :meth:`shared`)."""

    lock: _Lock
    wake: Signal
    """Set by the producer when the consumer's ``want`` is met (or the producer ends)."""
    space: Signal
    """Set by the consumer when it frees room for a blocked lossless producer."""

    @classmethod
    def local(cls) -> RingSync:
        """Primitives for a producer thread in this process."""
        return cls(threading.Lock(), Signal(threading.Semaphore(0)), Signal(threading.Semaphore(0)))

    @classmethod
    def shared(cls) -> RingSync:
        """Named semaphores another process opens by unpickling this; :meth:`unlink` their
        names once it has."""
        return cls(NamedSemaphore(1, 1), Signal(NamedSemaphore()), Signal(NamedSemaphore()))

    def unlink(self) -> None:
        """Remove the semaphores' names (both processes keep using them); idempotent, and
        nothing to do for thread primitives."""
        for sem in (self.lock, self.wake._sem, self.space._sem):
            if isinstance(sem, NamedSemaphore):
                sem.unlink()


@dataclass(frozen=True)
class RingHandle:
    """What another process needs to :meth:`FrameRing.attach` (picklable)."""

    name: str
    capacity: int
    frame_len: int


@dataclass(frozen=True)
class RingCounts:
    """The producer's loss counters of one run, detached from the ring (they outlive it)."""

    frames_read: int = 0
    """Frames the producer stored or dropped because the ring was full."""
    missed: int = 0
    """Conversions no frame carries (see :mod:`eegpi.hardware.acquisition`)."""
    overflowed: int = 0
    """Frames dropped because the ring was full."""

    @classmethod
    def of(cls, ring: FrameRing) -> RingCounts:
        return cls(ring.frames_read, ring.missed, ring.overflowed)


def _size(capacity: int, frame_len: int) -> int:
    return _HEADER + 16 * capacity + capacity * frame_len


class FrameRing:
    """Preallocated ring of ``capacity`` frames of ``frame_len`` bytes; see the module doc."""

    def __init__(
        self,
        capacity: int,
        frame_len: int,
        *,
        sync: RingSync | None = None,
        shared: bool = False,
        _attach: str | None = None,
    ) -> None:
        """
        Args:
            capacity: entries; a full ring drops new frames (counted) unless lossless.
            frame_len: bytes per frame (27 per chip).
            sync: lock and events; default: thread primitives (in-process use).
            shared: put the buffer in shared memory, for a producer in another process;
                this ring then owns the segment's name and removes it in :meth:`unlink` (or
                :meth:`close`).
        """
        if capacity < 1 or frame_len < 1:
            raise ValueError(f"ring of {capacity} x {frame_len} bytes is empty")
        self.capacity = capacity
        self.frame_len = frame_len
        self.sync = sync or RingSync.local()
        self._hurried = False
        """Set by :meth:`hurry` (the consumer's process only): the consumer's wait ends now."""
        self._shm: Segment | None = None
        self._owner = False
        size = _size(capacity, frame_len)
        buf: Any
        if _attach is not None:
            self._shm = _open_shm(_attach)
            buf = self._shm.buf
        elif shared:
            self._shm = _create_shm(size)
            self._owner = True
            buf = self._shm.buf
        else:
            buf = bytearray(size)
        self._mv = memoryview(buf)[:size]
        seq_end = _HEADER + 8 * capacity
        edge_end = seq_end + 8 * capacity
        # memoryviews for the producer's per-frame stores (cheaper than numpy scalars) ...
        self._counters = self._mv[:_HEADER].cast("q")
        self._seqs = self._mv[_HEADER:seq_end].cast("q")
        self._edges = self._mv[seq_end:edge_end].cast("q")
        self._frames = self._mv[edge_end:]
        # ... and numpy views for the consumer's block copies.
        self._np_seq = np.frombuffer(self._mv, np.int64, capacity, _HEADER)
        self._np_edge = np.frombuffer(self._mv, np.int64, capacity, seq_end)
        self._np_frames = np.frombuffer(self._mv, np.uint8, capacity * frame_len, edge_end).reshape(
            capacity, frame_len
        )
        self._written = int(self._counters[_WRITTEN])  # producer's own copy
        self._taken_seen = int(self._counters[_TAKEN])  # producer's last look at ``taken``
        self._closed = False

    # --- sharing -----------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """Shared-memory segment name, None for an in-process ring."""
        return self._shm.name if self._shm is not None else None

    @property
    def buffer(self) -> memoryview:
        """The whole ring in the layout of the module doc, for a producer in native code
        (:mod:`eegpi.hardware.native`), which keeps the same protocol. Anything that holds a
        pointer into it must let go before :meth:`close`."""
        return self._mv

    def handle(self) -> RingHandle:
        """What a producer in another process needs to attach (with the same :class:`RingSync`).

        Raises:
            ValueError: the ring is not in shared memory.
        """
        if self._shm is None:
            raise ValueError("an in-process ring cannot be attached from another process")
        return RingHandle(self._shm.name, self.capacity, self.frame_len)

    @classmethod
    def attach(cls, handle: RingHandle, sync: RingSync) -> FrameRing:
        """Map a ring another process created; :meth:`close` unmaps it without unlinking."""
        return cls(handle.capacity, handle.frame_len, sync=sync, _attach=handle.name)

    def unlink(self) -> None:
        """Remove the segment's name once both processes have mapped it (either may call
        this): the mappings stay, and nothing is left in /dev/shm whichever process dies."""
        if self._shm is not None:
            self._shm.unlink()

    def prefault(self) -> None:
        """Touch every page of the entries, so the producer's first pass through the ring
        takes no page faults (each costs microseconds at 16000 SPS). Only on a ring never
        written to."""
        if self._counters[_WRITTEN]:
            return
        self._np_seq[:] = 0
        self._np_edge[:] = 0
        self._np_frames[:] = 0

    def close(self) -> None:
        """Release the buffer; the creator of a shared ring also unlinks it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for view in (self._counters, self._seqs, self._edges, self._frames):
            view.release()
        del self._np_seq, self._np_edge, self._np_frames
        self._mv.release()
        if self._shm is not None:
            self._shm.close()
            if self._owner:
                self._shm.unlink()

    # --- producer ----------------------------------------------------------------------------

    def put(
        self,
        frame: bytes | bytearray,
        slot: int,
        edge_ns: int,
        *,
        lossless: bool = False,
        stopping: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Store one frame; False when it was dropped (ring full, counted) or ``stopping``.

        Args:
            frame: exactly ``frame_len`` bytes.
            lossless: wait for the consumer instead of dropping (virtual-time emulator only).
            stopping: polled while a lossless producer waits for room.
        """
        counters = self._counters
        written = self._written
        counters[_READ] += 1
        if written - self._taken_seen >= self.capacity:
            self._publish(written)  # also refreshes ``taken`` when the lock is free
            if written - self._taken_seen >= self.capacity:
                if not lossless:
                    counters[_OVERFLOWED] += 1
                    return False
                if not self._wait_for_space(stopping):
                    return False
        i = written % self.capacity
        flen = self.frame_len
        self._frames[i * flen : i * flen + flen] = frame
        self._seqs[i] = slot
        self._edges[i] = edge_ns
        written += 1
        self._written = written
        # _publish(written), without the call: this runs once per frame.
        lock = self.sync.lock
        if not lock.acquire(False):
            return True  # the consumer holds it: the next frame publishes both
        counters[_WRITTEN] = written
        taken = counters[_TAKEN]
        want = counters[_WANT]
        fire = want > 0 and written - taken >= want
        if fire:
            counters[_WANT] = 0
        lock.release()
        self._taken_seen = taken
        if fire:
            self.sync.wake.set()
        return True

    def _publish(self, written: int) -> None:
        """Make ``written`` visible, unless the consumer holds the lock right now: the producer
        never waits for the consumer (a consumer preempted inside the lock would stall it for
        a scheduler tick); the next frame publishes both."""
        lock = self.sync.lock
        if not lock.acquire(False):
            return
        counters = self._counters
        counters[_WRITTEN] = written
        taken = counters[_TAKEN]
        want = counters[_WANT]
        fire = want > 0 and written - taken >= want
        if fire:
            counters[_WANT] = 0  # one wake-up per wait, not one per frame
        lock.release()
        self._taken_seen = taken
        if fire:
            self.sync.wake.set()

    def _wait_for_space(self, stopping: Callable[[], bool]) -> bool:
        space = self.sync.space
        while not stopping():
            with _held(self.sync.lock):
                taken = self._counters[_TAKEN]
                if self._written - taken < self.capacity:
                    self._taken_seen = taken
                    return True
                self._counters[_BLOCKED] = 1
                space.clear()
            space.wait(0.1)
        return False

    def count_missed(self, n: int) -> None:
        """Add conversions the producer saw go by unread."""
        self._counters[_MISSED] += n

    def finish(self) -> None:
        """The producer ends (stopped or failed): publish the last frames, wake the consumer."""
        with _held(self.sync.lock):
            self._counters[_WRITTEN] = self._written
            self._counters[_DONE] = 1
        self.sync.wake.set()

    def restart(self) -> None:
        """Clear the ``done`` flag for a new producer run on the same ring."""
        self._counters[_DONE] = 0

    # --- consumer ----------------------------------------------------------------------------

    @property
    def available(self) -> int:
        """Frames written and not yet taken."""
        with _held(self.sync.lock):
            return int(self._counters[_WRITTEN] - self._counters[_TAKEN])

    @property
    def waiting(self) -> bool:
        """A consumer sleeps in :meth:`wait` for frames still to come."""
        return bool(self._counters[_WANT])

    @property
    def done(self) -> bool:
        """The producer has ended (see :meth:`finish`)."""
        return bool(self._counters[_DONE])

    @property
    def frames_read(self) -> int:
        return int(self._counters[_READ])

    @property
    def missed(self) -> int:
        return int(self._counters[_MISSED])

    @property
    def overflowed(self) -> int:
        return int(self._counters[_OVERFLOWED])

    def wait(self, count: int, timeout: float, alive: Callable[[], bool] | None = None) -> int:
        """Wait until ``count`` frames are waiting, ``timeout`` s pass or the producer ends.

        Args:
            alive: extra liveness check (e.g. the producer's process), polled whenever a
                quarter of a second passes without the producer's signal (a dead producer
                posts nothing; a live one's signal needs no check).

        Returns:
            how many frames wait (may be fewer than ``count``, also after :meth:`hurry`).
        """
        deadline = time.monotonic() + timeout
        counters, lock, wake = self._counters, self.sync.lock, self.sync.wake
        signalled = True
        while True:
            if not lock.acquire(True, _LOCK_TIMEOUT_S):  # the tick's path: no helper call
                _lock_lost()
            try:
                available = int(counters[_WRITTEN] - counters[_TAKEN])
                remaining = deadline - time.monotonic()
                done = (
                    available >= count
                    or remaining <= 0
                    or counters[_DONE]
                    or (not signalled and alive is not None and not alive())
                )
                if not done:
                    counters[_WANT] = count
                    wake.clear()
                # After the clear: :meth:`hurry` sets the flag before it posts, so a post the
                # clear just drained left its flag to be seen here.
                if done or self._hurried:
                    counters[_WANT] = 0
                    self._hurried = False
                    return available
            finally:
                lock.release()
            signalled = wake.wait(min(remaining, 0.25) if alive is not None else remaining)

    def hurry(self) -> None:
        """End the consumer's current (or next) :meth:`wait` at once, with what waits then:
        its consumer wants frames sooner than it asked (any thread of the consumer's process;
        never blocks)."""
        self._hurried = True
        self.sync.wake.set()

    def take(self, limit: int | None = None) -> RawFrames:
        """Copy out (and release) up to ``limit`` of the waiting frames, oldest first.

        One hold of the lock: the producer never waits for it (it publishes with the next
        frame instead), and copying a tick's frames takes microseconds."""
        counters, lock, capacity = self._counters, self.sync.lock, self.capacity
        if not lock.acquire(True, _LOCK_TIMEOUT_S):  # the tick's path: no helper call
            _lock_lost()
        try:
            taken = int(counters[_TAKEN])
            available = int(counters[_WRITTEN]) - taken
            n = available if limit is None else max(0, min(limit, available))
            start = taken % capacity
            if start + n <= capacity:  # no wrap (nearly always): slices copy fastest
                end = start + n
                out = RawFrames(
                    self._np_frames[start:end].copy(),
                    self._np_seq[start:end].copy(),
                    self._np_edge[start:end].copy(),
                )
            else:
                idx = (taken + np.arange(n)) % capacity
                out = RawFrames(self._np_frames[idx], self._np_seq[idx], self._np_edge[idx])
            blocked = 0
            if n:
                counters[_TAKEN] = taken + n
                blocked = int(counters[_BLOCKED])
                counters[_BLOCKED] = 0
        finally:
            lock.release()
        if blocked:
            self.sync.space.set()
        return out

    def wake_all(self) -> None:
        """Release anyone waiting on either event (used when stopping)."""
        self.sync.wake.set()
        self.sync.space.set()


def _lock_lost() -> NoReturn:
    """The ring's lock did not come within its timeout (taken inline on the hot paths)."""
    raise HardwareError(
        f"the acquisition ring's lock was not released within {_LOCK_TIMEOUT_S} s; the "
        "acquisition process probably died while holding it"
    )


class _held:
    """``with`` on a lock, with a timeout: a producer process killed inside the lock (SIGKILL,
    OOM) must give the consumer an error, not a hang."""

    def __init__(self, lock: _Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        if not self._lock.acquire(True, _LOCK_TIMEOUT_S):
            _lock_lost()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _create_shm(size: int) -> Segment:
    try:
        return Segment.create(size)
    except OSError as exc:
        raise HardwareError(
            exc.errno,
            f"cannot create the {size}-byte shared-memory ring in /dev/shm: {exc.strerror}; "
            "is /dev/shm mounted and writable (systemd: PrivateDevices/ProtectSystem keep it)?",
        ) from exc


def _open_shm(name: str) -> Segment:
    try:
        return Segment.attach(name)
    except OSError as exc:
        raise HardwareError(
            exc.errno, f"cannot attach the shared-memory ring /dev/shm/{name}: {exc.strerror}"
        ) from exc
