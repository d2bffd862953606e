"""The trigger input: edges on a header GPIO, stamped by the kernel, for markers.

A stimulus computer or a button drives a GPIO; gpiod v2 reports each edge with a timestamp
taken in the interrupt on CLOCK_MONOTONIC, the clock the DRDY edges are stamped with. The
same offset that maps DRDY stamps to Unix time (``StartReply.wall_offset_ns``) maps these, so
an edge and a sample are compared on one clock: the marker lands on the sample whose DRDY fell
nearest the edge, whatever happened between the edge and the moment it was read.

The line is requested by the process that holds the device, beside DRDY: the acquisition
process (``device.acquisition: process``) or the daemon (``thread``). That process owns the
gpiochip's lines and, with the ``mock`` backend, the emulated board the edges come from. The
:class:`TriggerReader` is a thread of its own there; it waits in ``poll`` on the request's file
descriptor and a wake-up pipe (the stand-in: in slices), so it costs the acquisition loop
nothing between edges, and it never touches the DRDY request, so either reader (python or
native) runs beside it unchanged.

Losses are counted, never hidden: the kernel keeps a bounded buffer of events per request and
drops the oldest when it is full; ``line_seqno`` still counts them, so a gap becomes
:attr:`TriggerBatch.lost`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from eegpi.exc import HardwareError
from eegpi.hardware.base import EdgeEventLike, EdgeRequestLike
from eegpi.hardware.config import DeviceConfig

if TYPE_CHECKING:
    from eegpi.hardware.driver import Ads1299
    from eegpi.hardware.emulator import EmulatedBoard

__all__ = [
    "EDGES",
    "TRIGGER_EVENT_BUFFER",
    "HeldTrigger",
    "TriggerBatch",
    "TriggerEdge",
    "TriggerReader",
    "TriggerSpec",
    "open_device_and_board",
    "request_trigger",
    "trigger_spec",
]

log = logging.getLogger("eegpi.hardware")

EdgeKind = Literal["rising", "falling", "both"]
BiasKind = Literal["down", "up", "none"]
EDGES: tuple[EdgeKind, ...] = ("rising", "falling", "both")
BIASES: tuple[BiasKind, ...] = ("down", "up", "none")
TRIGGER_EVENT_BUFFER = 256
"""Edge events the kernel keeps for the trigger request: a quarter of a second of a 1 kHz
pulse train, far more than stimuli come; beyond it the oldest are lost and counted."""
_STAND_IN_WAIT_S = 0.05
"""How long one wait of a request without a file descriptor (the stand-in) lasts."""
_JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TriggerSpec:
    """What the trigger input watches (the source's ``trigger`` param)."""

    pin: int
    """BCM GPIO of the trigger (a header GPIO the board does not use)."""
    edge: EdgeKind = "rising"
    """Which edges become markers."""
    label: str = "trigger"
    """The markers' label."""
    bias: BiasKind = "down"
    """The line's pull: ``down`` for a trigger that idles low (TTL), ``up`` for a button to
    ground, ``none`` for a line driven both ways."""
    event_buffer_size: int = TRIGGER_EVENT_BUFFER

    def __post_init__(self) -> None:
        pin = self.pin
        if isinstance(pin, bool) or not isinstance(pin, int):
            raise ValueError(f"trigger: pin: {pin!r} is not a BCM GPIO number")
        if not 0 <= pin <= 27:
            raise ValueError(f"trigger: pin: {pin} is not a header GPIO (BCM 0-27)")
        if self.edge not in EDGES:
            raise ValueError(f"trigger: edge: {self.edge!r} is not one of {', '.join(EDGES)}")
        if self.bias not in BIASES:
            raise ValueError(f"trigger: bias: {self.bias!r} is not one of {', '.join(BIASES)}")
        if not isinstance(self.label, str):
            raise ValueError(f"trigger: label: {self.label!r} is not a string")
        if not 1 <= self.event_buffer_size <= 1024:
            raise ValueError("trigger: event_buffer_size: 1 to 1024 (the kernel's limit)")


def trigger_spec(value: Any) -> TriggerSpec:
    """The ``trigger`` param (a mapping) as a spec, or ValueError saying what is wrong."""
    if isinstance(value, TriggerSpec):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(
            f"trigger: {value!r} is not a mapping like {{pin: 5, edge: rising, label: trigger}}"
        )
    allowed = ("pin", "edge", "label", "bias")
    unknown = sorted(set(map(str, value)) - set(allowed))
    if unknown:
        raise ValueError(
            f"trigger: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    if "pin" not in value:
        raise ValueError("trigger: pin is required (the BCM GPIO the trigger is wired to)")
    return TriggerSpec(**{str(k): v for k, v in value.items()})


@dataclass(frozen=True)
class TriggerEdge:
    """One edge of the trigger line."""

    timestamp_ns: int
    """Kernel stamp on the DRDY edges' clock (CLOCK_MONOTONIC, or the emulator's)."""
    rising: bool


@dataclass(frozen=True)
class TriggerBatch:
    """Edges read at once, and how many the kernel's full buffer lost before them."""

    edges: tuple[TriggerEdge, ...]
    lost: int = 0


def open_device_and_board(cfg: DeviceConfig, chips: int) -> tuple[Ads1299, EmulatedBoard | None]:
    """The driver, and with the ``mock`` backend the emulated board under it (whose GPIO chip
    the trigger line is requested on).

    Raises:
        HardwareError: what :func:`eegpi.hardware.open_device` raises.
    """
    from eegpi.hardware import open_device, resolve_backend

    board: EmulatedBoard | None = None
    if resolve_backend(cfg) == "mock":
        from eegpi.emulator import Board

        try:
            board = Board.from_device(cfg, chips)
        except ValueError as exc:
            raise HardwareError(errno.EINVAL, str(exc)) from exc
    return open_device(cfg, chips, board), board


def request_trigger(
    cfg: DeviceConfig, spec: TriggerSpec, board: EmulatedBoard | None
) -> EdgeRequestLike:
    """Request the trigger line as an input with edge events stamped on CLOCK_MONOTONIC, on
    the emulated board's GPIO chip or the Pi's header chip.

    Raises:
        HardwareError: the line is busy, or gpiod is missing.
    """
    if board is not None:
        from eegpi.hardware.emulator import gpiochip as gpiod_line

        board.connect_trigger(spec.pin)
        chip_path = board.find_gpiochip(cfg.gpiochip)
        request_lines: Callable[..., Any] = board.request_lines
        line: Any = gpiod_line
        settings_cls: Any = gpiod_line.LineSettings
    else:
        from eegpi.hardware.pi import find_gpiochip

        try:
            import gpiod
            import gpiod.line as line
        except ImportError as exc:
            raise HardwareError(
                f"the trigger input needs the Python package 'gpiod' ({exc}); install eegpi[pi]"
            ) from exc
        chip_path = find_gpiochip(cfg.gpiochip)
        request_lines, settings_cls = gpiod.request_lines, gpiod.LineSettings
    edge = {"rising": line.Edge.RISING, "falling": line.Edge.FALLING, "both": line.Edge.BOTH}
    bias = {"down": line.Bias.PULL_DOWN, "up": line.Bias.PULL_UP, "none": line.Bias.DISABLED}
    settings = settings_cls(
        direction=line.Direction.INPUT,
        edge_detection=edge[spec.edge],
        bias=bias[spec.bias],
        event_clock=line.Clock.MONOTONIC,
    )
    try:
        request: EdgeRequestLike = request_lines(
            chip_path,
            config={spec.pin: settings},
            consumer="eegpi-trigger",
            event_buffer_size=spec.event_buffer_size,
        )
    except OSError as exc:
        raise HardwareError(
            exc.errno,
            f"cannot request the trigger line GPIO{spec.pin} on {chip_path}: {exc.strerror or exc}"
            "; is another program using it (gpioinfo shows the consumer)?",
        ) from exc
    return request


@dataclass(frozen=True)
class HeldTrigger:
    """A trigger line still requested after its reader paused (:meth:`TriggerReader.pause`)."""

    spec: TriggerSpec
    request: EdgeRequestLike
    last_seqno: int
    """The newest ``line_seqno`` the paused reader saw."""

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self.request.release()


class TriggerReader:
    """A thread turning the trigger request's edge events into :class:`TriggerBatch` es."""

    def __init__(
        self,
        request: EdgeRequestLike,
        emit: Callable[[TriggerBatch], None],
        name: str,
        *,
        after: HeldTrigger | None = None,
    ) -> None:
        """
        Args:
            request: the trigger line's request (released by :meth:`stop`).
            emit: takes each batch, from the reader's thread; it may block, and the kernel's
                buffer then fills (what it drops is counted in the next batch).
            name: for log messages, e.g. ``GPIO5``.
            after: the line a paused reader held (:meth:`pause`): ``request`` is its request,
                and the edges the kernel queued meanwhile are read first, with their
                ``line_seqno`` continuing (so the kernel's drops stay counted).
        """
        self._request = request
        self._emit = emit
        self.name = name
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._last_seqno = after.last_seqno if after is not None else 0
        self._thread: threading.Thread | None = None
        self.edges = 0
        """Edges handed to ``emit`` so far."""
        self.lost = 0
        """Edges the kernel's buffer dropped so far."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="eegpi-trigger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread (after the batch it is handing over) and release the line."""
        self._end_thread()
        with contextlib.suppress(Exception):
            self._request.release()

    def pause(self, spec: TriggerSpec) -> HeldTrigger:
        """End the thread but keep the line requested: the kernel queues its edges (up to its
        buffer; beyond it drops them, counted by the next reader from ``line_seqno``) until a
        reader made ``after`` the returned hold reads them. For a restart of conversions (a
        gain change), whose gap a trigger edge may fall in."""
        self._end_thread()
        return HeldTrigger(spec, self._request, self._last_seqno)

    def _end_thread(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.error("the trigger reader of %s did not stop", self.name)
        self._thread = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _wait(self) -> bool:
        """True when edge events wait; returns early on :meth:`stop`."""
        fileno = getattr(self._request, "fileno", None)
        if fileno is None:  # the emulator's stand-in: no descriptor
            return self._request.wait_edge_events(_STAND_IN_WAIT_S)
        poller = select.poll()
        line_fd = int(fileno())
        poller.register(line_fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        return any(fd == line_fd for fd, _ in poller.poll())

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._wait() or self._stop.is_set():
                    continue
                batch = self._batch(self._request.read_edge_events())
                if batch.edges or batch.lost:
                    self.edges += len(batch.edges)
                    self.lost += batch.lost
                    if batch.lost:
                        log.warning(
                            "trigger %s: %d edge(s) lost (the kernel's event buffer was full)",
                            self.name,
                            batch.lost,
                        )
                    self._emit(batch)
        except Exception:
            log.exception("the trigger reader of %s failed; no more trigger markers", self.name)

    def _batch(self, events: Sequence[EdgeEventLike]) -> TriggerBatch:
        edges = []
        lost = 0
        for event in events:
            seqno = int(event.line_seqno)
            if seqno > self._last_seqno + 1:
                lost += seqno - self._last_seqno - 1
            self._last_seqno = max(self._last_seqno, seqno)
            kind = getattr(event.event_type, "name", "")
            edges.append(TriggerEdge(int(event.timestamp_ns), kind == "RISING_EDGE"))
        return TriggerBatch(tuple(edges), lost)
