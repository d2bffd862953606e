"""Acquisition with the per-frame loop in C: :class:`NativeAcquisition`.

It is a drop-in for :class:`~eegpi.hardware.acquisition.Acquisition` (the same constructor,
control and consumer surface, the same ring, the same loss counters): a Python thread raises
its own priority as the Python reader does, then calls ``eegpi_reader_run`` through ctypes,
which releases the GIL and runs the whole loop until :meth:`stop` sets a flag the loop checks
on every wake-up (at least every ``poll`` interval: 50 ms or a quarter of the stuck timeout).

The ring's lock and semaphores are ``multiprocessing`` SemLocks: on Linux a SemLock's
``handle`` is the ``sem_t *`` in this process, so the C side posts and tries the very same
semaphores the consumer in the daemon waits on. A thread-only ring (``threading`` locks) cannot
be shared with C; without a ring, one with process-shared primitives is made.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import Any

from eegpi.exc import HardwareError
from eegpi.hardware.acquisition import (
    RingReader,
    default_capacity,
    raise_reader_priority,
    reader_priority,
)
from eegpi.hardware.driver import Ads1299
from eegpi.hardware.native.endpoints import Endpoints, check_native, open_endpoints
from eegpi.hardware.native.library import ABI, ReaderConfig, ReaderStats, load_library
from eegpi.hardware.ring import FrameRing, RingSync, Signal

__all__ = ["NativeAcquisition", "semaphore_address"]

log = logging.getLogger("eegpi.hardware")

_STOPPED, _STUCK, _DRDY_FAILED, _SPI_FAILED, _LOCK_TIMEOUT, _LINK_CLOSED = range(6)


def semaphore_address(primitive: Any) -> int:
    """The ``sem_t *`` behind a ring primitive (a ``multiprocessing`` Lock or Semaphore, or a
    :class:`~eegpi.hardware.ring.Signal` wrapping one).

    Raises:
        HardwareError: a ``threading`` primitive, which native code cannot use.
    """
    obj, handle = primitive, None
    for _ in range(3):  # Signal -> its semaphore -> the _multiprocessing.SemLock inside
        handle = getattr(obj, "handle", None)
        if isinstance(handle, int) and handle:
            return handle
        obj = getattr(obj, "_sem", None) or getattr(obj, "_semlock", None)
    if not isinstance(handle, int) or handle == 0:
        raise HardwareError(
            "the native reader needs a ring with process-shared locks (RingSync.shared), as the "
            "acquisition process makes; device.acquisition: thread uses the Python reader"
        )
    return handle


class NativeAcquisition(RingReader):
    """Services DRDY for one started :class:`Ads1299` with the C loop (module doc)."""

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
        library: ctypes.CDLL | None = None,
    ) -> None:
        """Arguments as :class:`~eegpi.hardware.acquisition.Acquisition`'s, plus ``library``
        (default: :func:`~eegpi.hardware.native.library.load_library`).

        Raises:
            HardwareError: the library is not built (the message says how), or the device
                cannot be read natively (:class:`~eegpi.hardware.native.endpoints.NotNative`).
        """
        self._lib = library or load_library()
        check_native(device)
        self.device = device
        self.sample_rate = sample_rate
        self.period_ns = 1e9 / sample_rate
        self.frame_len = device.frame_len
        if ring is None:  # in this process, but with primitives C can post ("fork": unnamed)
            ctx = multiprocessing.get_context("fork")
            sync = RingSync(ctx.Lock(), Signal(ctx.Semaphore(0)), Signal(ctx.Semaphore(0)))
            ring = FrameRing(capacity or default_capacity(sample_rate), self.frame_len, sync=sync)
        elif ring.frame_len != self.frame_len:
            raise ValueError(
                f"ring holds {ring.frame_len}-byte frames, the chain sends {self.frame_len}"
            )
        self._sems = tuple(
            semaphore_address(p) for p in (ring.sync.lock, ring.sync.wake, ring.sync.space)
        )
        self.ring = ring
        self.capacity = ring.capacity
        self.priority = reader_priority(device, self.period_ns, priority, nice)
        self.stuck_timeout_s = stuck_timeout_s or max(20 / sample_rate, 0.5)
        self.lossless = lossless
        self.cpus = cpus
        self.nice = nice
        self.on_failure = on_failure
        self.error: HardwareError | None = None
        """Why the loop ended early (stuck DRDY, SPI failure); raised by :meth:`wait`."""
        self.priority_set = False
        self.nice_set = False
        self.slice_set = False
        self.cpus_set: frozenset[int] | None = None
        self.stats = ReaderStats()
        """The loop's own counters: frames read, its thread's CPU time, wake-ups."""
        self._stop_flag = ctypes.c_int32(0)
        self._config: ReaderConfig | None = None
        self._ring_pointer: ctypes.Array[ctypes.c_char] | None = None
        self._endpoints: Endpoints | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # --- counters ----------------------------------------------------------------------------

    @property
    def cpu_ns_per_frame(self) -> float:
        """CPU time of the reading thread per frame read (sampled every 256 frames and at the
        end): the reader's own cost, whatever serves its descriptors."""
        frames = self.stats.frames
        return self.stats.cpu_ns / frames if frames else 0.0

    # --- control -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start conversions and the native loop's thread."""
        if self._thread is not None:
            raise RuntimeError("acquisition already started")
        ring = self.ring
        ring.restart()
        ring.prefault()
        drdy = self.device.link.drdy
        while drdy.wait(0):  # edges of an earlier run must not count in this one
            drdy.read_events()
        self.device.start()
        try:
            self._endpoints = endpoints = open_endpoints(self.device, self._schedule_link)
            self._ring_pointer = pointer = (ctypes.c_char * len(ring.buffer)).from_buffer(
                ring.buffer
            )
        except BaseException:
            self._release()
            self.device.stop()
            raise
        settle_s = 4 / self.sample_rate + 0.001
        lock, wake, space = self._sems
        self._stop_flag.value = 0
        self._config = ReaderConfig(
            abi=ABI,
            ring=ctypes.addressof(pointer),
            capacity=ring.capacity,
            frame_len=self.frame_len,
            lock=lock,
            wake=wake,
            space=space,
            drdy_fd=endpoints.drdy_fd,
            spi_fd=endpoints.spi_fd,
            transport=endpoints.transport,
            speed_hz=self.device.data_speed_hz,
            period_ns=self.period_ns,
            stuck_ns=int((self.stuck_timeout_s + settle_s) * 1e9),
            poll_ms=max(1, int(min(0.05, self.stuck_timeout_s / 4) * 1000)),
            lossless=int(self.lossless),
            virtual_now=endpoints.virtual_now,
            stop=ctypes.addressof(self._stop_flag),
        )
        self._thread = threading.Thread(target=self._run, name="eegpi-native-reader", daemon=True)
        self._thread.start()
        self._ready.wait(1.0)  # priority and affinity are known once start() returns

    def stop(self) -> None:
        """Stop the loop, then the chip; idempotent."""
        self._stop_flag.value = 1
        self.ring.wake_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.error("native acquisition thread did not stop within 5 s")
                return  # it still uses the ring and the descriptors: keep them
        self._release()
        self.device.stop()
        self.ring.wake_all()

    def _release(self) -> None:
        """Close the emulator's link and let go of the ring (so the ring can be closed)."""
        endpoints, self._endpoints = self._endpoints, None
        if endpoints is not None:
            endpoints.close()
        self._config = None
        self._ring_pointer = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        """Wait for the loop to end by itself (an error); True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # --- the thread ----------------------------------------------------------------------------

    def _schedule_link(self) -> None:
        """The emulator's DRDY/SPI thread stands in for the interrupt and the SPI controller,
        and each frame waits on it twice: it runs as the reader does (nice value, short slice,
        SCHED_FIFO at the reader's priority, as a threaded interrupt handler runs), unpinned,
        so a busy process beside holds up neither."""
        raise_reader_priority(None, self.nice, self.priority, who="the emulated DRDY and SPI")

    def _raise_priority(self) -> None:
        """Affinity, nice value, time slice and SCHED_FIFO of this thread, as the Python reader
        asks (:func:`~eegpi.hardware.acquisition.raise_reader_priority`)."""
        granted = raise_reader_priority(self.cpus, self.nice, self.priority)
        self.cpus_set, self.nice_set = granted.cpus, granted.nice
        self.slice_set, self.priority_set = granted.short_slice, granted.priority

    def _run(self) -> None:
        try:
            self._raise_priority()
        finally:
            self._ready.set()
        config = self._config
        assert config is not None
        result = self._lib.eegpi_reader_run(ctypes.byref(config), ctypes.byref(self.stats))
        self.error = self._error_of(int(result))
        if self.error is not None and self.on_failure is not None:
            self.on_failure(self.error)

    def _error_of(self, result: int) -> HardwareError | None:
        """The Python reader's message for each way the C loop can end."""
        detail = int(self.stats.detail)
        device = self.device
        if result == _STOPPED:
            return None
        if result == _STUCK:
            return HardwareError(
                f"no DRDY from the ADS1299 for {detail / 1e9:.2f} s: is DRDY wired to "
                f"{device.link.drdy_name} and the chip converting (START)? a board that stops "
                "mid-run may have lost power or its clock"
            )
        if result == _DRDY_FAILED:
            return HardwareError(
                detail,
                f"reading DRDY events of {device.link.drdy_name} failed: {os.strerror(detail)}",
            )
        if result == _SPI_FAILED:
            return HardwareError(
                detail, f"SPI transfer on {device.path} failed: {os.strerror(detail)}"
            )
        if result == _LOCK_TIMEOUT:
            return HardwareError(
                "the acquisition ring's lock was not released within 2 s; the consumer "
                "probably died while holding it"
            )
        if result == _LINK_CLOSED:
            link = self._endpoints.link if self._endpoints is not None else None
            cause = link.error if link is not None else None
            if cause is not None:
                return HardwareError(f"acquisition on {device.path} failed: {cause!r}")
            return HardwareError(f"the DRDY or SPI descriptor of {device.path} was closed")
        return HardwareError(
            f"the native reader refused its configuration (result {result}): frames of "
            f"{self.frame_len} bytes, a ring of {self.capacity}"
        )
