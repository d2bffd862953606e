"""The real-time acquisition thread: one frame read per DRDY edge into a preallocated ring.

The chip has no FIFO, so the thread does as little as possible per frame: wait for edge events,
read one frame, copy its bytes into the ring with the sample slot and the kernel's edge time.
Decoding happens block-wise in the consumer. Losses are counted, never hidden:

* missed DRDYs: from gaps in the edge ``line_seqno`` (the kernel keeps 16 events and drops the
  oldest) and from edge-time gaps longer than 1.5 periods (an edge the kernel never saw); only
  the newest result of a burst is readable, so the others are lost too;
* a full ring (consumer too slow): the frame is dropped and its slot left as a gap.

The thread never touches asyncio; the consumer waits on a threading.Event.
"""

from __future__ import annotations

import logging
import os
import threading
from array import array
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from eegpi.exc import HardwareError
from eegpi.hardware.base import EdgeEventLike
from eegpi.hardware.driver import Ads1299

__all__ = ["Acquisition", "RawFrames"]

log = logging.getLogger("eegpi.hardware")


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


class Acquisition:
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
    ) -> None:
        """
        Args:
            device: a configured (not yet started) driver.
            sample_rate: the programmed data rate, for gap detection and timeouts.
            capacity: ring size in frames; default 2 s of data, at least 4096.
            priority: SCHED_FIFO priority to request for the thread (None = leave as is).
            stuck_timeout_s: no DRDY for this long while started is an error; default
                max(20 periods, 0.5 s) after the settling time.
            lossless: wait for the consumer instead of dropping when the ring is full. Only
                for the emulator's virtual time, where DRDY waits for the reader anyway.
        """
        self.device = device
        self.sample_rate = sample_rate
        self.period_ns = 1e9 / sample_rate
        self.capacity = capacity or max(4096, 2 * sample_rate)
        self.frame_len = device.frame_len
        self.priority = priority
        self.stuck_timeout_s = stuck_timeout_s or max(20 / sample_rate, 0.5)
        self._ring = bytearray(self.capacity * self.frame_len)
        self._seq = array("q", bytes(8 * self.capacity))
        self._edge = array("q", bytes(8 * self.capacity))
        self._written = 0  # frames ever stored (producer only)
        self._taken = 0  # frames ever taken (consumer only)
        self._want = 0  # consumer wakes when this many frames are waiting
        self._wake = threading.Event()
        self._space = threading.Event()
        self.lossless = lossless
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: HardwareError | None = None
        """Why the thread ended early (stuck DRDY, SPI failure); raised by :meth:`wait`."""
        self.frames_read = 0
        self.missed = 0
        """Conversions whose DRDY was missed or overwritten before the read."""
        self.overflowed = 0
        """Frames read but dropped because the ring was full."""
        self.priority_set = False

    # --- control -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start conversions and the thread."""
        if self._thread is not None:
            raise RuntimeError("acquisition already started")
        self.device.start()
        self._thread = threading.Thread(target=self._run, name="eegpi-acquisition", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then the chip; idempotent."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.error("acquisition thread did not stop within 5 s")
        self.device.stop()
        self._wake.set()
        self._space.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- producer ----------------------------------------------------------------------------

    def _raise_priority(self) -> None:
        if self.priority is None:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))
            self.priority_set = True
        except (OSError, AttributeError) as exc:
            log.info("acquisition runs at normal priority (SCHED_FIFO not permitted: %s)", exc)

    def _run(self) -> None:
        self._raise_priority()
        try:
            self._loop()
        except HardwareError as exc:
            self.error = exc
        except Exception as exc:  # any failure must reach the consumer, not vanish
            self.error = HardwareError(f"acquisition on {self.device.path} failed: {exc!r}")
        finally:
            self._wake.set()

    def _loop(self) -> None:
        device, drdy, clock = self.device, self.device.link.drdy, self.device.link.clock
        read_frame = device.read_frame
        ring, seqs, edges = self._ring, self._seq, self._edge
        cap, flen, period = self.capacity, self.frame_len, self.period_ns
        settle_s = 4 / self.sample_rate + 0.001
        stuck_ns = int((self.stuck_timeout_s + settle_s) * 1e9)
        poll_s = min(0.05, self.stuck_timeout_s / 4)
        stopping = self._stopping
        last_seqno = -1
        last_edge = 0
        slot = -1
        progress = clock.monotonic_ns()
        # Time to clock one frame out: an edge older than (read end - this) fell before the
        # read began, so the output register already held that newer conversion.
        read_ns = int(flen * 8e9 / device.data_speed_hz)
        carry: Sequence[EdgeEventLike] = ()
        while not stopping.is_set():
            if carry:
                events, carry = carry, ()
            else:
                if not drdy.wait(poll_s):
                    idle = clock.monotonic_ns() - progress
                    if idle > stuck_ns:
                        raise HardwareError(
                            f"no DRDY from the ADS1299 for {idle / 1e9:.2f} s: is DRDY wired to "
                            f"{device.link.drdy_name} and the chip converting (START)? a board "
                            "that stops mid-run may have lost power or its clock"
                        )
                    continue
                events = drdy.read_events()
                if not events:
                    continue
            event = events[-1]  # only the newest result is in the output register
            frame = read_frame()
            if drdy.wait(0):
                # The read came late (preempted host): label the frame with the newest edge
                # that fell before it started, keep later edges for the next round.
                began = clock.monotonic_ns() - read_ns
                late = drdy.read_events()
                older = [e for e in late if e.timestamp_ns <= began]
                if older:
                    event = older[-1]
                carry = late[len(older) :]
            edge_ns = event.timestamp_ns
            if slot < 0:
                step = 1
            else:
                step = event.line_seqno - last_seqno
                gap = edge_ns - last_edge
                if gap > 1.5 * period * step:
                    step = round(gap / period)
                if step < 1:
                    step = 1
                self.missed += step - 1
            slot += step
            last_seqno, last_edge = event.line_seqno, edge_ns
            progress = clock.monotonic_ns()
            self.frames_read += 1
            written = self._written
            if written - self._taken >= cap:
                if not self.lossless:
                    self.overflowed += 1
                    continue
                while self._written - self._taken >= cap and not stopping.is_set():
                    self._space.clear()
                    if self._written - self._taken >= cap:
                        self._space.wait(0.1)
                if stopping.is_set():
                    break
            i = written % cap
            ring[i * flen : (i + 1) * flen] = bytes(frame)
            seqs[i] = slot
            edges[i] = edge_ns
            self._written = written + 1
            if self._want and written + 1 - self._taken >= self._want:
                self._wake.set()

    # --- consumer ----------------------------------------------------------------------------

    @property
    def available(self) -> int:
        return self._written - self._taken

    def wait(self, count: int, timeout: float) -> int:
        """Wait until ``count`` frames are waiting or ``timeout`` s pass; returns how many wait.

        Raises:
            HardwareError: the thread failed (stuck DRDY, SPI error) and nothing is left to take.
        """
        if self.available < count and timeout > 0 and self.error is None:
            self._want = count
            self._wake.clear()
            if self.available < count and self.running:
                self._wake.wait(timeout)
            self._want = 0
        available = self.available
        if available == 0 and self.error is not None:
            raise self.error
        return available

    def take(self, limit: int | None = None) -> RawFrames:
        """Copy out (and release) up to ``limit`` of the waiting frames, oldest first."""
        n = self.available if limit is None else min(limit, self.available)
        cap, flen = self.capacity, self.frame_len
        ring = np.frombuffer(self._ring, dtype=np.uint8).reshape(cap, flen)
        seq = np.frombuffer(self._seq, dtype=np.int64)
        edge = np.frombuffer(self._edge, dtype=np.int64)
        idx = (self._taken + np.arange(n)) % cap
        out = RawFrames(ring[idx], seq[idx], edge[idx])
        self._taken += n
        if n:
            self._space.set()
        return out
