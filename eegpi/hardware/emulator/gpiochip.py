"""A stand-in for the ``gpiod`` package (libgpiod v2 Python bindings) on the emulated board.

The board has one GPIO chip, ``/dev/gpiochip0`` labelled ``pinctrl-rp1`` (a Pi 5's header chip
since 2024 kernels), whose lines 0-27 are named ``GPIO0``-``GPIO27``. Requests behave like the
kernel's: a line belongs to one request at a time (EBUSY), DRDY lines requested with
``Edge.FALLING`` deliver edge events with a monotonic ``timestamp_ns`` and per-line / global
sequence numbers, and the request's buffer keeps ``event_buffer_size`` events (16 per line when
not asked, at most the emulator's ``event_buffer_size``), dropping the oldest on overflow, so a
slow reader sees a jump in ``line_seqno``. ``get_value`` on a DRDY line reads its level, on an
output line the value driven; ``set_value`` on RESET/START/PWDN/chip-select lines reaches the
chips. DRDY's rising edges are not reported (a request for them is refused with a ValueError).
The line the emulated stimulus drives (:mod:`~eegpi.hardware.emulator.stimulus`, a trigger
input) reports rising and/or falling edges as asked, stamped like DRDY's.
"""

from __future__ import annotations

import enum
import errno
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from eegpi.hardware.base import EdgeType
from eegpi.hardware.emulator.clock import spin_for
from eegpi.hardware.emulator.stimulus import StimulusLine
from eegpi.hardware.emulator.wiring import HEADER_GPIOS, Port, Wiring

__all__ = [
    "CHIP_LABEL",
    "CHIP_PATH",
    "KERNEL_DEFAULT_EVENT_BUFFER",
    "Bias",
    "Chip",
    "ChipClosedError",
    "ChipInfo",
    "Clock",
    "Direction",
    "Drive",
    "Edge",
    "EdgeEvent",
    "LineInfo",
    "LineRequest",
    "LineSettings",
    "RequestReleasedError",
    "Value",
]

CHIP_PATH = "/dev/gpiochip0"
CHIP_LABEL = "pinctrl-rp1"
NUM_LINES = 54
KERNEL_DEFAULT_EVENT_BUFFER = 16
"""Events the kernel keeps per line for a request that does not ask for a size."""
_real_sleep = time.sleep
"""Waits of a trigger request take real time even while a virtual-time board is installed."""
_SLICE_NS = 10_000_000
"""Longest real-time sleep while nothing is scheduled, so a START from elsewhere is seen."""


class Value(enum.Enum):
    INACTIVE = 0
    ACTIVE = 1

    def __bool__(self) -> bool:
        return self is Value.ACTIVE


class Direction(enum.Enum):
    AS_IS = 1
    INPUT = 2
    OUTPUT = 3


class Bias(enum.Enum):
    AS_IS = 1
    UNKNOWN = 2
    DISABLED = 3
    PULL_UP = 4
    PULL_DOWN = 5


class Drive(enum.Enum):
    PUSH_PULL = 1
    OPEN_DRAIN = 2
    OPEN_SOURCE = 3


class Edge(enum.Enum):
    NONE = 1
    RISING = 2
    FALLING = 3
    BOTH = 4


class Clock(enum.Enum):
    MONOTONIC = 1
    REALTIME = 2
    HTE = 3


class ChipClosedError(Exception):
    def __init__(self) -> None:
        super().__init__("I/O operation on closed chip")


class RequestReleasedError(Exception):
    def __init__(self) -> None:
        super().__init__("GPIO lines have been released")


@dataclass
class LineSettings:
    """Same fields and defaults as ``gpiod.LineSettings``."""

    direction: Direction = Direction.AS_IS
    edge_detection: Edge = Edge.NONE
    bias: Bias = Bias.AS_IS
    drive: Drive = Drive.PUSH_PULL
    active_low: bool = False
    debounce_period: timedelta = field(default_factory=timedelta)
    event_clock: Clock = Clock.MONOTONIC
    output_value: Value = Value.INACTIVE


@dataclass(frozen=True)
class EdgeEvent:
    """Same fields as ``gpiod.EdgeEvent``; ``EdgeEvent.Type`` is the edge type enum."""

    Type: ClassVar[type[EdgeType]] = EdgeType
    event_type: EdgeType
    timestamp_ns: int
    line_offset: int
    global_seqno: int
    line_seqno: int


@dataclass(frozen=True)
class ChipInfo:
    name: str
    label: str
    num_lines: int


@dataclass(frozen=True)
class LineInfo:
    offset: int
    name: str
    used: bool
    consumer: str
    direction: Direction
    active_low: bool
    bias: Bias
    drive: Drive
    edge_detection: Edge
    event_clock: Clock
    debounced: bool
    debounce_period: timedelta


_new = object.__new__


def _edge_event(timestamp_ns: int, offset: int, global_seqno: int, line_seqno: int) -> EdgeEvent:
    """``EdgeEvent(FALLING_EDGE, ...)`` for the per-frame path: a frozen dataclass's
    ``__init__`` costs microseconds, filling its ``__dict__`` a fraction of that."""
    event: EdgeEvent = _new(EdgeEvent)
    event.__dict__.update(
        event_type=EdgeType.FALLING_EDGE,
        timestamp_ns=timestamp_ns,
        line_offset=offset,
        global_seqno=global_seqno,
        line_seqno=line_seqno,
    )
    return event


def _line_name(offset: int) -> str:
    return f"GPIO{offset}" if offset in HEADER_GPIOS else ""


def _offset_of(line: int | str) -> int:
    if isinstance(line, int) and not isinstance(line, bool):
        if not 0 <= line < NUM_LINES:
            raise OSError(errno.EINVAL, f"Invalid argument: no line {line} on {CHIP_PATH}")
        return line
    if isinstance(line, str) and line.startswith("GPIO") and line[4:].isdigit():
        offset = int(line[4:])
        if offset in HEADER_GPIOS:
            return offset
    raise ValueError(f"unknown line name: {line}")


def _config_items(
    config: Mapping[Any, LineSettings | None],
) -> Iterable[tuple[int | str, LineSettings]]:
    for key, settings in config.items():
        keys = key if isinstance(key, tuple | list) else (key,)
        for line in keys:
            yield line, settings or LineSettings()


def _seconds(timeout: timedelta | float | None) -> float | None:
    if isinstance(timeout, timedelta):
        return timeout.total_seconds()
    return timeout


class _EdgeLine:
    """Falling edges of one DRDY line since the request was made."""

    def __init__(self, port: Port, offset: int) -> None:
        self.port = port
        self.offset = offset
        chip = port.chip
        self.chip = chip
        self.now = chip.clock.monotonic_ns
        self.run_id = chip.run_id
        self._next_index = chip.edges(chip.run_id, 0, 0).next_index  # earlier edges are past
        self.due = 0
        """When the next edge after the cursor falls, in the run ``run_id`` (0: ask). Until
        then nothing can fall in that run, so a look needs no call into the chip."""
        self.period_ns = -1.0
        self.spin_ns = 0
        """How long a real-time wait for DRDYs of ``period_ns`` spins at its end."""
        self.seqno = 0

    def collect(self, limit: int) -> tuple[list[tuple[int, int]], int]:
        """New (line_seqno, time) pairs (the newest ``limit``) and how many edges fell."""
        if self.chip.run_id == self.run_id and self.now() < self.due:
            return [], 0  # nothing falls before the next edge is due (a new run asks again)
        return self.fetch(limit)

    def fetch(self, limit: int, now: int | None = None) -> tuple[list[tuple[int, int]], int]:
        """:meth:`collect` without the look at ``due`` (the caller made it, at ``now``)."""
        chip = self.chip
        run_id, self._next_index, count, stamps, self.due = chip.edges_due(
            self.run_id, self._next_index, limit, now
        )
        self.run_id = run_id
        base = self.seqno
        if not count:
            return [], 0
        self.seqno = base + count
        if count == 1 and stamps:  # one new edge, the usual case
            position, ts = stamps[0]
            return [(base + position, ts)], count
        return [(base + position, ts) for position, ts in stamps], count

    def next_edge_ns(self) -> int | None:
        chip = self.chip
        if self.due and chip.run_id == self.run_id:
            return self.due
        return chip.next_edge_ns(self.run_id, self._next_index)


class LineRequest:
    """Behaves like ``gpiod.LineRequest`` for lines of the emulated header chip."""

    def __init__(
        self,
        chip: _ChipModel,
        lines: list[int | str],
        settings: dict[int, LineSettings],
        consumer: str,
        event_buffer_size: int | None,
    ) -> None:
        self._chip = chip
        self._lines = lines
        self._offsets = list(settings)
        self._settings = settings
        self._names = {_line_name(o): o for o in self._offsets}
        self._values: dict[int, bool] = {}
        self._single = len(self._offsets) == 1
        """Global sequence numbers are the line's (gpiod numbers events per request)."""
        self._edge_lines: list[_EdgeLine] = []
        self._stimulus_lines: list[StimulusLine] = []
        """Trigger lines the emulated stimulus drives (rising and falling edges)."""
        self._released = False
        self._global = 0
        wiring = chip.wiring
        for offset, s in settings.items():
            port = wiring.port_of_drdy(offset)
            stimulus = wiring.stimulus
            if stimulus is not None and offset == stimulus.pin and port is None:
                edge = s.edge_detection
                if edge is not Edge.NONE:
                    rising, falling = edge in (Edge.RISING, Edge.BOTH), edge is not Edge.RISING
                    self._stimulus_lines.append(StimulusLine(stimulus, offset, rising, falling))
            if s.edge_detection in (Edge.RISING, Edge.BOTH) and port is not None:
                raise ValueError(
                    f"the emulated DRDY line GPIO{offset} reports falling edges only; "
                    "request it with Edge.FALLING"
                )
            if s.edge_detection is Edge.FALLING and port is not None:
                self._edge_lines.append(_EdgeLine(port, offset))
        asked = event_buffer_size or KERNEL_DEFAULT_EVENT_BUFFER * max(1, len(self._offsets))
        self._events: deque[EdgeEvent] = deque(maxlen=min(asked, chip.max_event_buffer))
        self._limit = self._events.maxlen or 0
        self._clock = wiring.clock
        self._drdy = (
            self._edge_lines[0] if len(self._edge_lines) == 1 and not self._stimulus_lines else None
        )
        """The one DRDY line of a request that has nothing else to report: the per-frame
        path of an acquisition loop (see :meth:`wait_edge_events`, :meth:`_collect_drdy`)."""
        self._stalling = [
            line.chip
            for line in self._edge_lines
            if line.chip.cfg.late_read_every and line.chip.cfg.late_read_at == "events"
        ]
        """Chips whose late-read fault stalls the reader when it takes its events."""
        wiring.claim(self._offsets, consumer)
        for offset, s in settings.items():
            if s.direction is Direction.OUTPUT:
                self._drive(offset, s.output_value)

    # --- the gpiod surface -------------------------------------------------------------------

    def __bool__(self) -> bool:
        return not self._released

    def __enter__(self) -> LineRequest:
        self._check_released()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _check_released(self) -> None:
        if self._released:
            raise RequestReleasedError()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._chip.wiring.unclaim(self._offsets)

    @property
    def chip_name(self) -> str:
        self._check_released()
        return self._chip.path.rsplit("/", 1)[-1]

    @property
    def num_lines(self) -> int:
        return len(self._offsets)

    @property
    def offsets(self) -> list[int]:
        return list(self._offsets)

    @property
    def lines(self) -> list[int | str]:
        return list(self._lines)

    @property
    def event_buffer_size(self) -> int:
        """Events this request keeps."""
        return self._events.maxlen or 0

    def _line_to_offset(self, line: int | str) -> int:
        offset = _offset_of(line) if not isinstance(line, str) else self._names.get(line)
        if offset is None or offset not in self._settings:
            raise ValueError(f"unknown line name: {line}")
        return offset

    def get_value(self, line: int | str) -> Value:
        return self.get_values([line])[0]

    def get_values(self, lines: Iterable[int | str] | None = None) -> list[Value]:
        self._check_released()
        out = []
        for line in list(lines or self._lines):
            offset = self._line_to_offset(line)
            s = self._settings[offset]
            if s.direction is Direction.OUTPUT:
                high = self._values.get(offset, False)
            else:
                pull = {Bias.PULL_UP: True, Bias.PULL_DOWN: False}.get(s.bias)
                high = self._chip.wiring.read(offset, pull, id(self))
            out.append(Value.ACTIVE if high != s.active_low else Value.INACTIVE)
        return out

    def _drive(self, offset: int, value: Value) -> None:
        high = bool(value) != self._settings[offset].active_low
        self._values[offset] = high
        self._chip.wiring.drive(offset, high)

    def set_value(self, line: int | str, value: Value) -> None:
        self.set_values({line: value})

    def set_values(self, values: Mapping[int | str, Value]) -> None:
        self._check_released()
        for line, value in values.items():
            offset = self._line_to_offset(line)
            if self._settings[offset].direction is not Direction.OUTPUT:
                raise OSError(errno.EPERM, f"Operation not permitted: line {offset} is an input")
            self._drive(offset, value)

    def reconfigure_lines(self, config: Mapping[Any, LineSettings | None]) -> None:
        self._check_released()
        for line, s in _config_items(config):
            offset = self._line_to_offset(line)
            self._settings[offset] = s
            if s.direction is Direction.OUTPUT:
                self._drive(offset, s.output_value)
            else:
                self._chip.wiring.release(offset)

    def _collect_stimulus(self) -> None:
        """Edges of the stimulus lines, both kinds, into the bounded buffer."""
        for line in self._stimulus_lines:
            stamps, count = line.collect(self.event_buffer_size)
            base = self._global
            for k, (seqno, ts, rising) in enumerate(stamps, 1):
                kind = EdgeType.RISING_EDGE if rising else EdgeType.FALLING_EDGE
                glob = base + count - len(stamps) + k
                self._events.append(EdgeEvent(kind, ts, line.offset, glob, seqno))
            self._global = base + count

    def _wait_stimulus(self, seconds: float | None) -> bool:
        """``wait_edge_events`` of a request without DRDY lines: it sleeps until the next
        stimulus edge (in slices, to see a new run), never moving virtual time itself."""
        clock = self._chip.wiring.clock
        deadline = time.monotonic() + (3600.0 if seconds is None else seconds)
        while True:
            self._collect_stimulus()
            if self._events:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or self._released:
                return False
            pause = min(left, _SLICE_NS / 1e9)
            if clock.realtime:
                due = [t for line in self._stimulus_lines if (t := line.next_edge_ns()) is not None]
                if due:
                    pause = min(pause, max(0.0, (min(due) - clock.monotonic_ns()) / 1e9))
            _real_sleep(pause)

    def _collect(self) -> None:
        line = self._drdy
        if line is not None:
            self._collect_drdy(line)
            return
        if self._stimulus_lines:
            self._collect_stimulus()
        limit = self._limit
        fresh: list[tuple[int, int, int]] = []
        fell = 0
        for line in self._edge_lines:
            stamps, count = line.collect(limit)
            if count:
                fresh += [(ts, line.offset, seqno) for seqno, ts in stamps]
                fell += count
        if fell:
            self._append(fresh, fell)

    def _append(self, fresh: list[tuple[int, int, int]], fell: int) -> None:
        """Queue ``fresh`` (time, offset, line seqno) of the ``fell`` edges, oldest first."""
        fresh.sort()
        single = self._single
        base = self._global
        for k, (ts, offset, seqno) in enumerate(fresh, 1):
            glob = seqno if single else base + fell - len(fresh) + k
            self._events.append(_edge_event(ts, offset, glob, seqno))
        self._global = base + fell

    def _collect_drdy(self, line: _EdgeLine, now: int | None = None) -> None:
        """:meth:`_collect` of the one DRDY line: nothing before its next edge is due (in the
        same run); one new edge, the usual case, becomes its event directly. ``now``: the
        caller has just read the clock (and seen the edge due)."""
        if now is None and line.chip.run_id == line.run_id and line.now() < line.due:
            return
        stamps, count = line.fetch(self._limit, now)
        if not count:
            return
        if count != 1 or not stamps:
            self._append([(ts, line.offset, seqno) for seqno, ts in stamps], count)
            return
        seqno, ts = stamps[0]
        base = self._global
        self._global = base + count
        glob = seqno if self._single else base + count
        self._events.append(_edge_event(ts, line.offset, glob, seqno))

    def wait_edge_events(self, timeout: timedelta | float | None = None) -> bool:
        """True once an edge event is waiting; False after ``timeout`` seconds.

        A request for one DRDY line and nothing else (an acquisition loop's, twice a frame)
        looks at the chip only once the next edge is due, and sleeps until then.
        """
        if self._released:
            raise RequestReleasedError()
        seconds: float | None
        if timeout is None or type(timeout) is float or type(timeout) is int:
            seconds = timeout  # the acquisition loop's kinds, without a call
        else:
            seconds = _seconds(timeout)
        line = self._drdy
        if line is None:
            return self._wait_lines(seconds)
        clock = self._clock
        now = clock.monotonic_ns()
        deadline = now + int((3600.0 if seconds is None else seconds) * 1e9)
        while True:
            chip = line.chip
            if chip.run_id != line.run_id or now >= line.due:
                self._collect_drdy(line, now)
            if self._events:
                return True
            if now >= deadline:
                return False
            t = line.due if line.due and chip.run_id == line.run_id else line.next_edge_ns()
            target = deadline if t is None or t > deadline else t
            spin = 0
            if clock.realtime:
                if target > now + _SLICE_NS:
                    target = now + _SLICE_NS
                if t is not None:
                    chip.idle(t)  # the chip's spare time: generate ahead
                    if line.period_ns != chip.period_ns:
                        line.period_ns = chip.period_ns
                        line.spin_ns = spin_for(chip.period_ns)
                    spin = line.spin_ns
            clock.sleep_until(target, spin)
            now = clock.monotonic_ns()

    def _wait_lines(self, seconds: float | None) -> bool:
        """:meth:`wait_edge_events` of any other request (several lines, a stimulus line)."""
        clock = self._clock
        if self._stimulus_lines and not self._edge_lines:
            return self._wait_stimulus(seconds)
        deadline = clock.monotonic_ns() + int((3600.0 if seconds is None else seconds) * 1e9)
        while True:
            self._collect()
            if self._events:
                return True
            now = clock.monotonic_ns()
            if now >= deadline:
                return False
            lines = self._edge_lines
            if len(lines) == 1:
                t = lines[0].next_edge_ns()
                nxt = None if t is None else (t, lines[0])
            else:
                upcoming = [(t, line) for line in lines if (t := line.next_edge_ns()) is not None]
                nxt = min(upcoming, key=lambda u: u[0]) if upcoming else None
            target = deadline if nxt is None else min(nxt[0], deadline)
            spin = 0
            if clock.realtime:
                target = min(target, now + _SLICE_NS)
                if nxt is not None:
                    chip = nxt[1].port.chip
                    chip.idle(nxt[0])  # the chip's spare time: generate ahead
                    spin = spin_for(chip.period_ns)
            clock.sleep_until(target, spin)

    def next_edge_ns(self) -> int | None:
        """When the next edge of this request's DRDY lines falls (None: none will); not in
        gpiod: the emulator's DRDY pacing for the native reader (``emulator.fdlink``)."""
        upcoming = [t for line in self._edge_lines if (t := line.next_edge_ns()) is not None]
        return min(upcoming) if upcoming else None

    def spin_ns(self) -> int:
        """How long a real-time wait for this request's next edge spins at its end (the
        shortest DRDY period of its chips decides, as for :meth:`wait_edge_events`); not in
        gpiod: the native reader's emulated DRDY (``emulator.fdlink``)."""
        return max((spin_for(line.chip.period_ns) for line in self._edge_lines), default=0)

    def read_edge_events(self, max_events: int | None = None) -> list[EdgeEvent]:
        if self._released:
            raise RequestReleasedError()
        line = self._drdy
        if line is None:
            self._collect()
        else:
            now = line.now()
            if line.chip.run_id != line.run_id or now >= line.due:
                self._collect_drdy(line, now)
        if max_events is None or max_events >= len(self._events):
            events = list(self._events)
            self._events.clear()
        else:
            events = [self._events.popleft() for _ in range(max_events)]
        for chip in self._stalling:
            chip.events_stall()  # the late-read fault's ``events`` point
        return events

    def __str__(self) -> str:
        if self._released:
            return "<LineRequest RELEASED>"
        return (
            f'<LineRequest chip="{self.chip_name}" num_lines={self.num_lines} '
            f"offsets={self.offsets}>"
        )


@dataclass
class _ChipModel:
    """The board's one GPIO chip."""

    wiring: Wiring
    max_event_buffer: int
    path: str = CHIP_PATH

    def request(
        self,
        config: Mapping[Any, LineSettings | None],
        consumer: str | None,
        event_buffer_size: int | None,
        output_values: Mapping[int | str, Value] | None,
    ) -> LineRequest:
        lines: list[int | str] = []
        settings: dict[int, LineSettings] = {}
        for line, s in _config_items(config):
            offset = _offset_of(line)
            if offset in settings:
                raise ValueError(f"line {line} appears twice in the request")
            lines.append(line)
            settings[offset] = LineSettings(**vars(s))
        for line, value in (output_values or {}).items():
            offset = _offset_of(line)
            if offset in settings:
                settings[offset].output_value = value
        if not settings:
            raise ValueError("no lines to request")
        return LineRequest(self, lines, settings, consumer or "?", event_buffer_size)

    def line_info(self, line: int | str) -> LineInfo:
        offset = _offset_of(line)
        consumer = self.wiring.consumer(offset)
        driven = self.wiring.driven(offset)
        return LineInfo(
            offset=offset,
            name=_line_name(offset),
            used=consumer is not None,
            consumer=consumer or "",
            direction=Direction.INPUT if driven is None else Direction.OUTPUT,
            active_low=False,
            bias=Bias.UNKNOWN,
            drive=Drive.PUSH_PULL,
            edge_detection=Edge.NONE,
            event_clock=Clock.MONOTONIC,
            debounced=False,
            debounce_period=timedelta(),
        )


def _open_chip(model: _ChipModel | None, path: str) -> _ChipModel:
    if model is None or path != model.path:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    return model


class Chip:
    """Behaves like ``gpiod.Chip`` for the emulated header chip."""

    model: ClassVar[_ChipModel | None] = None
    """The board's chip (set on each board's subclass)."""

    def __init__(self, path: str) -> None:
        self._model: _ChipModel | None = _open_chip(type(self).model, path)

    def __bool__(self) -> bool:
        return self._model is not None

    def __enter__(self) -> Chip:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> _ChipModel:
        if self._model is None:
            raise ChipClosedError()
        return self._model

    def close(self) -> None:
        self._open()
        self._model = None

    @property
    def path(self) -> str:
        return self._open().path

    def get_info(self) -> ChipInfo:
        return ChipInfo(name=self.path.rsplit("/", 1)[-1], label=CHIP_LABEL, num_lines=NUM_LINES)

    def line_offset_from_id(self, id: str | int) -> int:
        self._open()
        return _offset_of(id)

    def get_line_info(self, line: int | str) -> LineInfo:
        return self._open().line_info(line)

    def request_lines(
        self,
        config: Mapping[Any, LineSettings | None],
        consumer: str | None = None,
        event_buffer_size: int | None = None,
        output_values: Mapping[int | str, Value] | None = None,
    ) -> LineRequest:
        return self._open().request(config, consumer, event_buffer_size, output_values)

    def __repr__(self) -> str:
        return f'gpiod.Chip("{self._model.path}")' if self._model else "<Chip CLOSED>"


def chip_class(model: _ChipModel) -> type[Chip]:
    """``gpiod.Chip`` of one board."""
    return type("Chip", (Chip,), {"model": model, "__module__": "gpiod"})


def make_chip_model(wiring: Wiring, max_event_buffer: int) -> _ChipModel:
    return _ChipModel(wiring, max_event_buffer)


def request_lines_of(chip_cls: type[Chip]) -> Callable[..., LineRequest]:
    """``gpiod.request_lines`` of one board."""

    def request_lines(
        path: str,
        config: Mapping[Any, LineSettings | None],
        consumer: str | None = None,
        event_buffer_size: int | None = None,
        output_values: Mapping[int | str, Value] | None = None,
    ) -> LineRequest:
        with chip_cls(path) as chip:
            return chip.request_lines(config, consumer, event_buffer_size, output_values)

    return request_lines
