"""The emulated DRDY line and SPI bus as file descriptors, for the native reader.

On a Pi the native reader polls the kernel's GPIO line request and reads 48-byte
``struct gpio_v2_line_event`` records from it, and clocks frames out with an
``SPI_IOC_MESSAGE(1)`` ioctl on spidev. Here a thread of the emulator stands in for both:

* DRDY is a pipe that yields the same records, written from the gpiod stand-in's events (so
  ``drop_conversions``, ``silent_conversions``, ``late_read_*`` and the kernel's bounded event
  buffer behave as for the Python reader);
* SPI is a ``SOCK_SEQPACKET`` socket: ``T`` + speed (u32) + the bytes out, answered with the
  bytes in, from the spidev stand-in the driver configured.

The rule that keeps labels honest: before answering a transfer, every edge that has fallen by
then is in the pipe, as the kernel queues an edge's event in its interrupt. In real time the
thread also writes each edge's event when it falls. On the virtual clock time moves only when
the reader waits: the reader sends ``W`` + timeout (ns) before it blocks, the thread moves time
to the next edge (or by the timeout) and answers ``k``; the reader reads the virtual time from
:attr:`EmulatorFdLink.now`, a shared int64 the thread updates after every step.

The emulator's per-frame work stays Python; it stands in for silicon, so only the reader's own
time (its CPU time counter) says what a frame costs the reader.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable

from eegpi.hardware.emulator.clock import EmulatorClock
from eegpi.hardware.emulator.gpiochip import LineRequest
from eegpi.hardware.emulator.kernel import EmulatedSpiDev

__all__ = ["RECORD", "EmulatorFdLink"]

log = logging.getLogger("eegpi.hardware.emulator")

RECORD = struct.Struct("<QIIII24x")
"""``struct gpio_v2_line_event``: timestamp_ns, id, offset, seqno, line_seqno, padding."""
_FALLING_EDGE = 2
"""GPIO_V2_LINE_EVENT_FALLING_EDGE."""
_PER_WRITE = 4096 // RECORD.size
"""Records per write: a pipe write up to PIPE_BUF bytes is atomic, never split."""
_F_SETPIPE_SZ = 1031
_SLICE_S = 0.01
_U32 = 0xFFFFFFFF


class EmulatorFdLink:
    """A thread serving the native reader's DRDY pipe and SPI socket from the stand-ins."""

    def __init__(
        self,
        request: LineRequest,
        spidev: EmulatedSpiDev,
        clock: EmulatorClock,
        prepare: Callable[[], object] | None = None,
    ) -> None:
        """
        Args:
            prepare: called first on the link's thread, to give it its scheduling: it stands
                in for the kernel's DRDY interrupt and the SPI controller, which on a board
                run before the reader they wake.
        """
        self._request = request
        self._prepare = prepare
        self._spin_ns = request.spin_ns()
        """The end of a real-time wait for an edge that is spun: the chip's rate is set before
        a run starts and its link is made, and stays until it stops."""
        self._spi = spidev
        self._clock = clock
        self.virtual = not clock.realtime
        self.now = ctypes.c_int64(clock.monotonic_ns())
        """The virtual clock as the reader reads it (meaningless in real time)."""
        self.events_written = 0
        self.events_dropped = 0
        """Events the pipe had no room for (the reader stalled for over a thousand edges):
        lost like the kernel's, so the reader sees a ``line_seqno`` gap."""
        self.error: BaseException | None = None
        """What ended the thread early (the chip refused a transfer in ``timing: raise``)."""
        self._read_end, self._write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._write_end, False)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._write_end, _F_SETPIPE_SZ, 1024 * RECORD.size)
        self._reader_sock, self._sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="eegpi-emulator-fd", daemon=True)
        self._closed = False

    @property
    def drdy_fd(self) -> int:
        return self._read_end

    @property
    def spi_fd(self) -> int:
        return self._reader_sock.fileno()

    @property
    def now_address(self) -> int | None:
        """Address of :attr:`now` for the reader's clock on the virtual clock, else None."""
        return ctypes.addressof(self.now) if self.virtual else None

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and close every descriptor (the reader must have stopped)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._close_emulator_ends()
        with contextlib.suppress(OSError):
            os.close(self._read_end)
        self._reader_sock.close()

    # --- the thread --------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            if self._prepare is not None:
                self._prepare()
            while not self._stop.is_set():
                if self.virtual:
                    self._step_virtual()
                else:
                    self._step_realtime()
        except Exception as exc:  # the reader must see the link close, not hang
            self.error = exc
            log.error("emulated DRDY/SPI link failed: %r", exc)
        finally:
            self._close_emulator_ends()

    def _close_emulator_ends(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(OSError):
            os.close(self._write_end)
        self._write_end = -1

    def _step_virtual(self) -> None:
        ready, _, _ = select.select([self._sock], [], [], 0.25)
        if ready:
            self._handle(self._sock.recv(8192))

    def _step_realtime(self) -> None:
        self._flush()
        clock = self._clock
        nxt = self._request.next_edge_ns()
        now = clock.monotonic_ns()
        wait_ns = (
            int(_SLICE_S * 1e9) if nxt is None else min(max(nxt - now, 0), int(_SLICE_S * 1e9))
        )
        spin_ns = self._spin_ns
        ready, _, _ = select.select([self._sock], [], [], max(wait_ns - spin_ns, 0) / 1e9)
        if ready:
            self._handle(self._sock.recv(8192))
        elif nxt is not None and nxt - clock.monotonic_ns() <= spin_ns:
            clock.sleep_until(nxt, spin_ns)

    def _handle(self, message: bytes) -> None:
        if not message:  # the reader closed its end
            self._stop.set()
            return
        op = message[:1]
        if op == b"W":
            timeout_ns = int.from_bytes(message[1:9], "little", signed=True)
            self._request.wait_edge_events(timeout_ns / 1e9)
            self._flush()
            self.now.value = self._clock.monotonic_ns()
            self._sock.send(b"k")
        elif op == b"T":
            speed = int.from_bytes(message[1:5], "little")
            out = self._spi.xfer2(list(message[5:]), speed)
            self._flush()
            self.now.value = self._clock.monotonic_ns()
            self._sock.send(bytes(out))
        else:
            raise ValueError(f"unknown request {op!r} on the emulated SPI link")

    def _flush(self) -> None:
        """Every edge that has fallen goes into the pipe, as the kernel queues it."""
        request = self._request
        if not request.wait_edge_events(0):
            return
        events = request.read_edge_events()
        records = [
            RECORD.pack(
                e.timestamp_ns,
                _FALLING_EDGE,
                e.line_offset,
                e.global_seqno & _U32,
                e.line_seqno & _U32,
            )
            for e in events
        ]
        for start in range(0, len(records), _PER_WRITE):
            chunk = records[start : start + _PER_WRITE]
            try:
                os.write(self._write_end, b"".join(chunk))
            except BlockingIOError:
                self.events_dropped += len(records) - start
                return
            self.events_written += len(chunk)
