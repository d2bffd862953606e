"""Acquisition in a process of its own, handing frames over through a shared-memory ring.

Why: a thread in the daemon shares the GIL with the pipeline thread and the event loop; at
8000-16000 SPS (a DRDY every 62.5-125 us, against a 5 ms GIL switch interval) it misses
conversions. A child process has its own interpreter, so nothing in the daemon can delay a
frame read; the frames reach the daemon through a :class:`~eegpi.hardware.ring.FrameRing` in
shared memory, which costs no system call per frame.

The child is spawned (the daemon runs gRPC threads, which ``fork`` would copy in an undefined
state) as a :class:`~eegpi.hardware.spawn.LightProcess`: it imports the driver, the loop and,
for the ``mock`` backend, the emulator, never the daemon's modules, and no resource tracker runs
beside it. It opens the SPI device itself (the daemon never does in this mode), then obeys
commands on a pipe::

    daemon                                   acquisition process
    open()      spawn  ------------------->  open_device(cfg, chips)
                <-------- ok(DeviceSnapshot) | error
    configure() configure(settings) ------>  device.configure(settings)
                <-------- ok(DeviceSnapshot) | error
    start()     start(StartOrder: ring...) >  Acquisition(device, ring=attached ring).start()
                <-------- ok(StartReply)     | error
                <-------- failed(error)         whenever the acquisition thread dies
    stop()      stop ---------------------->  acquisition stopped, chip stopped
    close()     close --------------------->  device closed, process exits

With a trigger input in the ``StartOrder`` the child also requests the trigger line on the
GPIO chip it already holds (:mod:`eegpi.hardware.trigger`) and sends each batch of its edges
on a second, one-way pipe, ``("edges", run, batch)``, ending the run with ``("end", run,
None)`` before it answers ``stop``; a thread of the daemon hands the batches to the source.
The command pipe stays request-reply only, so an edge can never be taken for a reply.

Errors raised in the child come back as (type name, args) and are raised again in the daemon as
the same eegpi exception with the same message. The child exits by itself when the daemon goes
away (end of file on the pipe, or a new parent PID), so an orphan never keeps the SPI device.
The names of the ring's semaphores and segment are removed as soon as both processes hold them
(:mod:`eegpi.hardware.shm`), so a crash of either leaves nothing in /dev/shm.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from eegpi import exc as _exc
from eegpi.ads1299.settings import ChipSettings
from eegpi.exc import HardwareError
from eegpi.hardware.acquisition import default_capacity
from eegpi.hardware.config import DeviceConfig
from eegpi.hardware.driver import Ads1299, DeviceSnapshot
from eegpi.hardware.memlock import lock_memory
from eegpi.hardware.native import Reader, make_acquisition
from eegpi.hardware.native.reader import NativeAcquisition
from eegpi.hardware.ring import FrameRing, RawFrames, RingCounts, RingHandle, RingSync
from eegpi.hardware.shm import remove_stale
from eegpi.hardware.spawn import LightProcess
from eegpi.hardware.trigger import (
    HeldTrigger,
    TriggerBatch,
    TriggerReader,
    TriggerSpec,
    open_device_and_board,
    request_trigger,
)

if TYPE_CHECKING:
    from eegpi.hardware.emulator import EmulatedBoard

__all__ = [
    "OPEN_TIMEOUT_S",
    "REPLY_TIMEOUT_S",
    "AcquisitionProcess",
    "StartOrder",
    "StartReply",
    "child_main",
]

log = logging.getLogger("eegpi.hardware")

OPEN_TIMEOUT_S = 30.0
"""Spawning an interpreter and importing numpy takes seconds on a Pi Zero; a board adds tPOR."""
REPLY_TIMEOUT_S = 10.0
"""Configure (register writes, 150 ms reference start-up), start and stop."""
_JOIN_TIMEOUT_S = 5.0
_KILL_WAIT_S = 1.0
_FAILURE_GRACE_S = 1.0
"""How long the daemon waits for the child's report after the ring says the producer ended."""
_IDLE_POLL_S = 0.5
"""How often the child checks its parent PID while not acquiring."""
_EDGE_POLL_S = 0.25
"""How often the daemon's edge thread looks at its stop flag between messages."""

_CTX = multiprocessing.get_context("spawn")

_KNOWN_ERRORS: dict[str, type[BaseException]] = {
    cls.__name__: cls
    for cls in (
        _exc.ConfigError,
        _exc.HardwareError,
        _exc.StageError,
        _exc.PipelineStateError,
        _exc.DeviceBusy,
        _exc.EegpiError,
        ValueError,
        RuntimeError,
    )
}


@dataclass(frozen=True)
class _Failure:
    """An exception on its way across the process boundary."""

    type_name: str
    args: tuple[Any, ...]
    text: str

    @classmethod
    def of(cls, exc: BaseException) -> _Failure:
        plain = all(isinstance(a, (str, int, float, type(None))) for a in exc.args)
        return cls(type(exc).__name__, exc.args if plain else (str(exc),), str(exc))

    def exception(self) -> Exception:
        """The same eegpi exception type with the same message (HardwareError if unknown)."""
        cls = _KNOWN_ERRORS.get(self.type_name)
        if cls is None:
            return HardwareError(f"acquisition process failed: {self.type_name}: {self.text}")
        try:
            rebuilt = cls(*self.args)
        except Exception:
            rebuilt = cls(self.text)
        if str(rebuilt) != self.text:
            rebuilt = cls(self.text)
        assert isinstance(rebuilt, Exception)
        return rebuilt


@dataclass(frozen=True)
class StartOrder:
    """What the child needs to start acquiring into the daemon's ring."""

    ring: RingHandle
    sample_rate: int
    priority: int | None = None
    lossless: bool = False
    stuck_timeout_s: float | None = None
    cpus: frozenset[int] | None = None
    nice: int | None = None
    reader: str = "python"
    """``device.reader``: python, native or auto (:mod:`eegpi.hardware.native`)."""
    trigger: TriggerSpec | None = None
    """The trigger input to watch beside DRDY (its edges come back on the edge pipe)."""
    run: int = 0
    """Tags this run's messages on the edge pipe (a late one of an earlier run is ignored)."""


@dataclass(frozen=True)
class StartReply:
    priority_set: bool
    """SCHED_FIFO was granted to the acquisition thread."""
    nice_set: bool
    """The requested nice value was granted."""
    cpus: frozenset[int] | None
    """CPUs the acquisition thread is pinned to (None: not pinned)."""
    memory_locked: bool
    """The acquisition process's pages cannot be paged out (:mod:`eegpi.hardware.memlock`)."""
    reader: str
    """The reader that runs: ``python`` or ``native`` (``auto`` resolved)."""
    wall_offset_ns: int
    """Unix time minus the DRDY clock (CLOCK_MONOTONIC, or the emulator's virtual time)."""


class AcquisitionProcess:
    """The daemon's side of acquisition in a child process.

    Drives the child like a device (:meth:`open`, :meth:`configure`, :meth:`start`,
    :meth:`stop`, :meth:`close`) and reads its frames with the consumer API of
    :class:`~eegpi.hardware.acquisition.Acquisition` (:meth:`wait`, :meth:`take`,
    :attr:`available`, the counters, :attr:`error`, :attr:`running`).
    """

    def __init__(
        self,
        cfg: DeviceConfig,
        chips: int = 1,
        *,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
    ) -> None:
        self.cfg = cfg
        self.chips = chips
        self.open_timeout_s = open_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._sync: RingSync | None = None
        self._conn: Connection | None = None
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._ring: FrameRing | None = None
        self._acquiring = False
        self.snapshot: DeviceSnapshot | None = None
        """The device as the child last described it (after :meth:`open`/:meth:`configure`)."""
        self.error: HardwareError | None = None
        """Why acquisition ended early (stuck DRDY, SPI failure, the child died)."""
        self.started: StartReply | None = None
        self._exit_code: int | None = None
        self._final = RingCounts()
        """The counters of the last run, copied out when its ring was closed."""
        self._edges: Connection | None = None
        """Our end of the one-way pipe the child sends trigger edges on."""
        self._edge_receiver: _EdgeReceiver | None = None
        self._run = 0

    # --- control -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def open(self) -> DeviceSnapshot:
        """Spawn the child and have it open and identify the device.

        Raises:
            HardwareError: no chip, the backend cannot be opened, or the child did not answer
                within ``open_timeout_s``; the child is gone afterwards.
        """
        if self._proc is not None:
            raise RuntimeError("acquisition process already open")
        remove_stale()  # names an earlier daemon, killed at the wrong moment, left behind
        self._sync = sync = RingSync.shared()
        parent_conn, child_conn = _CTX.Pipe()
        self._edges, child_edges = _CTX.Pipe(duplex=False)
        level = logging.getLogger("eegpi").getEffectiveLevel()
        proc = LightProcess(
            target=child_main,
            args=(self.cfg, self.chips, child_conn, sync, os.getpid(), level, child_edges),
            name="eegpi-acquisition",
            daemon=True,  # multiprocessing ends it if the daemon exits without close()
        )
        self._conn, self._proc = parent_conn, proc
        try:
            proc.start()
            child_conn.close()  # only the child holds its end: its death reads as EOF here
            child_edges.close()
            reply = self._reply("open the device", self.open_timeout_s)
        except BaseException:
            child_conn.close()
            child_edges.close()
            self._abandon()
            raise
        finally:
            sync.unlink()  # the child opened the semaphores before it answered
        assert isinstance(reply, DeviceSnapshot)
        self.snapshot = reply
        return reply

    def configure(self, settings: ChipSettings | Sequence[ChipSettings]) -> DeviceSnapshot:
        """Write and verify the registers in the child; raises what the driver raises."""
        reply = self._request(("configure", settings), "configure the device")
        assert isinstance(reply, DeviceSnapshot)
        self.snapshot = reply
        return reply

    def start(
        self,
        sample_rate: int,
        *,
        capacity: int | None = None,
        priority: int | None = None,
        lossless: bool = False,
        stuck_timeout_s: float | None = None,
        cpus: frozenset[int] | None = None,
        nice: int | None = None,
        trigger: TriggerSpec | None = None,
        on_trigger: Callable[[TriggerBatch], None] | None = None,
    ) -> StartReply:
        """Create the shared ring and start conversions and the child's acquisition thread.

        Args are those of :class:`~eegpi.hardware.acquisition.Acquisition`, and ``trigger``:
        a trigger input the child watches beside DRDY; a thread of ours hands each batch of
        its edges to ``on_trigger`` until :meth:`stop`.
        """
        if self.snapshot is None:
            raise RuntimeError("open() the acquisition process first")
        if self._acquiring:
            raise RuntimeError("acquisition already started")
        self._close_ring()
        self._final = RingCounts()
        ring = FrameRing(
            capacity or default_capacity(sample_rate),
            self.snapshot.frame_len,
            sync=self._sync,
            shared=True,
        )
        self._ring, self.error = ring, None
        self._run += 1
        order = StartOrder(
            ring.handle(),
            sample_rate,
            priority,
            lossless,
            stuck_timeout_s,
            cpus,
            nice,
            self.cfg.reader,
            trigger=trigger,
            run=self._run,
        )
        if trigger is not None and self._edges is not None:
            self._edge_receiver = _EdgeReceiver(self._edges, self._run, on_trigger or _ignore)
        try:
            reply = self._request(("start", order), "start acquisition")
        except BaseException:
            self._stop_edge_receiver(wait=False)
            raise
        finally:
            ring.unlink()  # the child has mapped it (or never will)
        assert isinstance(reply, StartReply)
        self.started = reply
        self._acquiring = True
        return reply

    def stop(self) -> None:
        """Stop acquisition and conversions (the device stays open); idempotent."""
        if not self._acquiring:
            return
        self._acquiring = False
        if self._ring is not None:
            self._ring.wake_all()
        if self._child_alive():
            try:
                self._request(("stop",), "stop acquisition")
            except HardwareError as exc:
                log.error("%s", exc)
                self._end_child()
        self._stop_edge_receiver(wait=True)

    def _stop_edge_receiver(self, wait: bool) -> None:
        """End the edge thread: after the child's end-of-run message (``wait``: the child
        stopped its trigger reader and sent it before answering ``stop``), else at once."""
        receiver, self._edge_receiver = self._edge_receiver, None
        if receiver is not None:
            receiver.stop(_JOIN_TIMEOUT_S if wait else 0.0)

    def close(self) -> None:
        """Stop, have the child release the device and exit, unlink the ring; idempotent.

        The child gets ``reply_timeout_s`` to close and exit, then SIGTERM, then SIGKILL.
        """
        with contextlib.suppress(HardwareError):
            self.stop()
        if self._conn is not None and self._child_alive():
            try:
                self._request(("close",), "close the device")
            except HardwareError as exc:
                log.error("%s", exc)
        self._abandon()

    def _abandon(self) -> None:
        """Close our end of the pipe (the child exits on EOF), reap the child, drop the ring.

        Never raises: it runs at shutdown, and the ring is unlinked whatever the child does.
        """
        if self._sync is not None:
            self._sync.unlink()
        try:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with contextlib.suppress(OSError):
                    conn.close()
            self._end_child()
        finally:
            self._stop_edge_receiver(wait=False)
            if self._edges is not None:
                edges, self._edges = self._edges, None
                with contextlib.suppress(OSError):
                    edges.close()
            self._close_ring()

    def _end_child(self, grace_s: float = _JOIN_TIMEOUT_S) -> None:
        """Reap the child: ``grace_s`` to exit by itself, then SIGTERM, then SIGKILL. A child
        that outlives even SIGKILL (stuck in the kernel, e.g. a hung SPI driver) is logged and
        left to ``multiprocessing``, which reaps it later; this never raises."""
        proc, self._proc = self._proc, None
        if proc is None or proc.pid is None:  # never started
            return
        proc.join(grace_s)
        if proc.is_alive():
            if grace_s > 0:
                log.error("acquisition process %s did not exit; terminating it", proc.pid)
            proc.terminate()
            proc.join(_KILL_WAIT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(_KILL_WAIT_S)
        if proc.is_alive():
            log.error("acquisition process %s survived SIGKILL; leaving it behind", proc.pid)
            return
        self._exit_code = proc.exitcode
        proc.close()

    def _close_ring(self) -> None:
        """Keep the run's counters, then unmap and unlink the ring."""
        ring, self._ring = self._ring, None
        if ring is not None:
            try:
                self._final = RingCounts.of(ring)
            finally:
                ring.close()

    def _child_alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def child_modules(self) -> list[str]:
        """The modules the child has imported (sorted), to check it stays light: the spawned
        interpreter should hold the driver and the emulator, never scipy, grpc or the daemon."""
        reply = self._request(("modules",), "list its modules")
        assert isinstance(reply, list)
        return reply

    # --- the pipe ----------------------------------------------------------------------------

    def _request(self, message: tuple[Any, ...], what: str) -> Any:
        conn = self._conn
        if conn is None or not self._child_alive():
            raise self.error or HardwareError(
                f"cannot {what}: the acquisition process is not running"
            )
        try:
            conn.send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
            raise HardwareError(
                f"cannot {what}: the acquisition process is gone ({self._exit_note()})"
            ) from exc
        return self._reply(what, self.reply_timeout_s)

    def _reply(self, what: str, timeout: float) -> Any:
        """The child's answer; asynchronous failure reports on the way are recorded."""
        conn = self._conn
        assert conn is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                ready = remaining > 0 and conn.poll(remaining)
                message = conn.recv() if ready else None
            except (EOFError, OSError):
                raise HardwareError(
                    f"the acquisition process ended before it could {what} ({self._exit_note()})"
                ) from None
            if message is None:
                self._end_child(grace_s=0.0)  # it did not answer: it will not exit either
                raise HardwareError(
                    f"the acquisition process did not {what} within {timeout:g} s; "
                    "it was stopped (is the host overloaded, or the SPI driver hung?)"
                )
            kind, payload = message
            if kind == "ok":
                return payload
            if kind == "error":
                raise payload.exception()
            self._note_failure(payload)

    def _note_failure(self, failure: _Failure) -> None:
        err = failure.exception()
        self.error = (
            err if isinstance(err, HardwareError) else HardwareError(f"acquisition failed: {err}")
        )

    def _drain(self, timeout: float = 0.0) -> None:
        """Record failure reports waiting on the pipe (for up to ``timeout`` s)."""
        conn = self._conn
        if conn is None:
            return
        deadline = time.monotonic() + timeout
        try:
            while conn.poll(max(0.0, deadline - time.monotonic())):
                kind, payload = conn.recv()
                if kind == "failed":
                    self._note_failure(payload)
                    return
        except (EOFError, OSError):
            pass

    def _exit_note(self) -> str:
        proc, code = self._proc, self._exit_code
        if proc is not None and proc.pid is not None:
            proc.join(0.5)  # it is ending: let its exit status arrive
            code = proc.exitcode
        if code is None:
            return "still running" if proc is not None else "not started"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    # --- consumer ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Acquiring: started, the child alive and its acquisition thread not ended."""
        ring = self._ring
        return self._acquiring and ring is not None and not ring.done and self._child_alive()

    @property
    def available(self) -> int:
        return self._ring.available if self._ring is not None else 0

    @property
    def counts(self) -> RingCounts:
        """The counters of the current run, or of the last one once its ring is closed."""
        ring = self._ring
        return RingCounts.of(ring) if ring is not None else self._final

    @property
    def frames_read(self) -> int:
        """Frames stored in (or overflowing) the ring in this run; kept after stop and close."""
        return self.counts.frames_read

    @property
    def missed(self) -> int:
        return self.counts.missed

    @property
    def overflowed(self) -> int:
        return self.counts.overflowed

    @property
    def priority_set(self) -> bool:
        return self.started.priority_set if self.started is not None else False

    @property
    def nice_set(self) -> bool:
        return self.started.nice_set if self.started is not None else False

    @property
    def reader(self) -> str:
        """The reader of this run: ``python`` or ``native`` (empty before a start)."""
        return self.started.reader if self.started is not None else ""

    @property
    def memory_locked(self) -> bool:
        """The child's pages stay in RAM in this run (:mod:`eegpi.hardware.memlock`)."""
        return self.started.memory_locked if self.started is not None else False

    def wait(self, count: int, timeout: float) -> int:
        """Wait until ``count`` frames are waiting or ``timeout`` s pass; returns how many wait.

        Raises:
            HardwareError: acquisition failed (the child's message) or the child died, and
                nothing is left to take.
        """
        ring = self._ring
        if ring is None:
            return 0
        if timeout > 0 and self.error is None and self._acquiring:
            available = ring.wait(count, timeout, alive=self._child_alive)  # returns at once
        else:  # when enough wait
            available = ring.available
        if available == 0 and self._acquiring and not self.running:
            self._check_ended()
        if available == 0 and self.error is not None:
            raise self.error
        return available

    def _check_ended(self) -> None:
        """The producer is gone: find out why (its report, or how the process ended)."""
        if self.error is not None:
            return
        self._drain(_FAILURE_GRACE_S)
        if self.error is None:
            path = self.snapshot.path if self.snapshot is not None else self.cfg.spi_path
            self.error = HardwareError(
                f"the acquisition process for {path} stopped unexpectedly ({self._exit_note()})"
            )

    def hurry(self) -> None:
        """End the consumer's current or next :meth:`wait` now (any thread; never blocks)."""
        ring = self._ring
        if ring is not None:
            ring.hurry()

    def take(self, limit: int | None = None) -> RawFrames:
        """Copy out (and release) up to ``limit`` of the waiting frames, oldest first."""
        if self._ring is None:
            raise RuntimeError("start() the acquisition process first")
        return self._ring.take(limit)


def _ignore(batch: TriggerBatch) -> None:
    """Trigger edges nobody asked to hear about."""


class _EdgeReceiver:
    """The daemon's thread on the edge pipe: hands one run's trigger batches to a callback.

    The child sends a batch per read of the kernel's buffer (itself bounded, losses counted in
    the batch), so nothing queues here; the thread ends on the run's ``end`` message, at the
    end of the pipe, or when told to stop.
    """

    def __init__(self, conn: Connection, run: int, on_batch: Callable[[TriggerBatch], None]):
        self._conn = conn
        self._run = run
        self._on_batch = on_batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="eegpi-trigger-rx", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn = self._conn
        while not self._stop.is_set():
            try:
                if not conn.poll(_EDGE_POLL_S):
                    continue
                kind, run, payload = conn.recv()
            except (EOFError, OSError):
                return  # the child is gone
            if run != self._run:
                continue  # a late message of an earlier run
            if kind == "end":
                return
            try:
                self._on_batch(payload)
            except Exception:
                log.exception("handling trigger edges failed")

    def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the end of the run, then end the thread regardless."""
        self._thread.join(timeout)
        self._stop.set()
        self._thread.join(_JOIN_TIMEOUT_S)


# --- the child ------------------------------------------------------------------------------


class _Terminated(Exception):
    """SIGTERM reached the acquisition process: end in order (SPI released)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def child_main(
    cfg: DeviceConfig,
    chips: int,
    conn: Connection,
    sync: RingSync,
    parent_pid: int,
    log_level: int = logging.INFO,
    edges: Connection | None = None,
) -> None:
    """Entry point of the acquisition process (spawned; never call it in the daemon).

    ``edges``: the one-way pipe trigger edges go to the daemon on.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the daemon decides
    signal.signal(signal.SIGTERM, _on_sigterm)
    sync.unlink()  # opened when this process unpickled them; the daemon may be gone already
    _child_logging(log_level)
    send = _Sender(conn)
    child: _Child | None = None
    device: Ads1299 | None = None
    try:
        try:
            device, board = open_device_and_board(cfg, chips)
        except _Terminated:
            raise
        except Exception as exc:
            send(("error", _Failure.of(exc)))
            return
        child = _Child(device, conn, send, sync, parent_pid, cfg, board, edges)
        send(("ok", device.snapshot()))
        child.serve()
    except _Terminated:
        send(("failed", _Failure.of(HardwareError("the acquisition process was terminated"))))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish releasing the device first
        if child is not None:
            child.stop_acquisition()
        if device is not None:
            device.close()
        conn.close()
        if edges is not None:
            edges.close()


def _child_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s[acquisition]: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


class _Sender:
    """Sends to the daemon from the command loop and the acquisition thread, one at a time."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def __call__(self, message: tuple[Any, ...]) -> bool:
        with self._lock:
            try:
                self._conn.send(message)
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                return False
        return True


class _Child:
    """The command loop of the acquisition process."""

    def __init__(
        self,
        device: Ads1299,
        conn: Connection,
        send: _Sender,
        sync: RingSync,
        parent_pid: int,
        cfg: DeviceConfig,
        board: EmulatedBoard | None = None,
        edges: Connection | None = None,
    ) -> None:
        self.device = device
        self.conn = conn
        self.send = send
        self.sync = sync
        self.parent_pid = parent_pid
        self.cfg = cfg
        self.board = board
        """The emulated board under ``device`` (``mock`` backend), whose GPIO chip the trigger
        line is on."""
        self.edges = edges
        self.acq: Reader | None = None
        self.ring: FrameRing | None = None
        self.trigger: TriggerReader | None = None
        self._trigger_spec: TriggerSpec | None = None
        self._memory_locked: bool | None = None
        """Whether the last start locked memory (None before the first): logged on a change."""
        self._held: HeldTrigger | None = None
        """The trigger line kept requested between two runs: the next run with the same
        trigger reads the edges that fell meanwhile (a restart for new chip settings leaves
        a gap of a few conversions that a trigger edge may fall in)."""
        self._run = 0

    def serve(self) -> None:
        handlers: dict[str, Callable[..., Any]] = {
            "configure": self._configure,
            "start": self._start,
            "stop": self.stop_acquisition,
            "modules": lambda: sorted(sys.modules),
        }
        while True:
            message = self._next_command()
            if message is None:
                return
            kind, *args = message
            if kind == "close":
                self.stop_acquisition()
                self._release_held()
                self.send(("ok", None))
                return
            try:
                result = handlers[kind](*args)
            except Exception as exc:
                self.send(("error", _Failure.of(exc)))
            else:
                self.send(("ok", result))

    def _next_command(self) -> tuple[Any, ...] | None:
        """The next command; None when the daemon is gone.

        While acquiring, this thread sleeps until a command or the end of file that the
        daemon's death produces: any periodic wake-up would take the GIL from the reader for a
        context switch, which costs about two conversions at 16000 SPS. While idle it also
        checks the parent PID twice a second.
        """
        while True:
            timeout = None if self.acq is not None else _IDLE_POLL_S
            try:
                if self.conn.poll(timeout):
                    message: tuple[Any, ...] = self.conn.recv()
                    return message
            except (EOFError, OSError):
                return None  # the daemon closed its end or died
            if os.getppid() != self.parent_pid:
                return None

    def _failed(self, error: HardwareError) -> None:
        """Called by the acquisition thread when it ends by itself (stuck DRDY, SPI error)."""
        self.send(("failed", _Failure.of(error)))

    def _configure(self, settings: ChipSettings | Sequence[ChipSettings]) -> DeviceSnapshot:
        self.device.configure(settings)
        return self.device.snapshot()

    def _start(self, order: StartOrder) -> StartReply:
        self.stop_acquisition()
        ring = FrameRing.attach(order.ring, self.sync)
        ring.unlink()  # both processes map it now
        self._run = order.run
        trigger: TriggerReader | None = None
        try:
            if order.trigger is not None:
                trigger = self._trigger_reader(order.trigger, order.run)
            else:
                self._release_held()
            acq = make_acquisition(
                order.reader,
                self.device,
                order.sample_rate,
                priority=order.priority,
                stuck_timeout_s=order.stuck_timeout_s,
                lossless=order.lossless,
                ring=ring,
                cpus=order.cpus,
                nice=order.nice,
                on_failure=self._failed,
            )
            # Everything allocated so far lives as long as the process: move it out of the
            # collector's reach so a full collection cannot pause the reader for milliseconds.
            gc.collect()
            gc.freeze()
            memory = lock_memory()  # at every start: this run's ring is a new mapping
            if memory.locked != self._memory_locked:
                self._memory_locked = memory.locked
                if memory.locked:
                    log.info("acquisition process memory locked in RAM")
                else:
                    log.warning(
                        "acquisition process memory can be paged out, so a page fault can "
                        "cost conversions under memory pressure: %s",
                        memory.reason,
                    )
            acq.start()
        except BaseException:
            if trigger is not None:
                trigger.stop()
            ring.close()
            raise
        self.acq, self.ring, self.trigger = acq, ring, trigger
        self._trigger_spec = order.trigger
        if trigger is not None:
            trigger.start()
        clock = self.device.link.clock
        return StartReply(
            priority_set=acq.priority_set,
            nice_set=acq.nice_set,
            cpus=acq.cpus_set,
            memory_locked=memory.locked,
            reader="native" if isinstance(acq, NativeAcquisition) else "python",
            wall_offset_ns=time.time_ns() - clock.monotonic_ns(),
        )

    def _trigger_reader(self, spec: TriggerSpec, run: int) -> TriggerReader:
        """The trigger line requested (errors now, before conversions start), not yet read."""
        edges = self.edges

        def emit(batch: TriggerBatch) -> None:
            if edges is not None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
                    edges.send(("edges", run, batch))

        held, self._held = self._held, None
        if held is not None and held.spec == spec:
            return TriggerReader(held.request, emit, f"GPIO{spec.pin}", after=held)
        if held is not None:
            held.release()
        request = request_trigger(self.cfg, spec, self.board)
        return TriggerReader(request, emit, f"GPIO{spec.pin}")

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release()

    def stop_acquisition(self) -> None:
        acq, ring, trigger = self.acq, self.ring, self.trigger
        self.acq, self.ring, self.trigger = None, None, None
        if acq is not None:
            acq.stop()
        if ring is not None:
            ring.close()
        if trigger is not None:
            # Its last batch is on the pipe before the end of the run; the line stays
            # requested for the next run (``_held``) until that run or ``close``.
            self._release_held()
            assert self._trigger_spec is not None
            self._held = trigger.pause(self._trigger_spec)
            if self.edges is not None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
                    self.edges.send(("end", self._run, None))
