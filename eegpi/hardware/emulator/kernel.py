"""Stand-ins for the two library objects the Pi backend talks to: ``spidev.SpiDev`` and a
``gpiod`` v2 line request, wired to an emulated chip instead of the kernel.

The edge request behaves like the kernel's: events carry a monotonic ``timestamp_ns`` and
per-line / global sequence numbers, and the buffer keeps the ``event_buffer_size`` events the
request asked for (16 when it did not ask, at most the emulator's ``event_buffer_size``),
dropping the oldest on overflow, so a slow reader sees a jump in ``line_seqno``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from eegpi.hardware.base import EdgeType
from eegpi.hardware.emulator.chip import Ads1299Emulator

__all__ = ["EmulatedEdgeEvent", "EmulatedEdgeRequest", "EmulatedOutputRequest", "EmulatedSpiDev"]

_SLICE_NS = 10_000_000
"""Longest real-time sleep while nothing is scheduled, so a START from elsewhere is seen."""
KERNEL_DEFAULT_EVENT_BUFFER = 16
"""Events the kernel keeps for a line request that does not ask for a size (16 per line)."""


@dataclass(frozen=True, slots=True)
class EmulatedEdgeEvent:
    """Same fields as ``gpiod.EdgeEvent``."""

    event_type: EdgeType
    timestamp_ns: int
    line_offset: int
    global_seqno: int
    line_seqno: int


class EmulatedSpiDev:
    """Behaves like ``spidev.SpiDev`` in front of the emulated chain."""

    def __init__(self, chip: Ads1299Emulator) -> None:
        self._chip = chip
        self._open = False
        self.max_speed_hz = 500_000
        self.bits_per_word = 8

    @property
    def mode(self) -> int:
        return self._chip.spi_mode

    @mode.setter
    def mode(self, value: int) -> None:
        self._chip.spi_mode = value

    def open(self, bus: int, device: int) -> None:
        self._open = True

    def xfer2(
        self, data: list[int], speed_hz: int = 0, delay_usecs: int = 0, bits_per_word: int = 0
    ) -> list[int]:
        if not self._open:
            raise OSError(9, "Bad file descriptor")  # what spidev raises on a closed device
        return self._chip.transfer(list(data), speed_hz or self.max_speed_hz, delay_usecs)

    def close(self) -> None:
        self._open = False


class EmulatedEdgeRequest:
    """Behaves like a ``gpiod`` v2 ``LineRequest`` with falling-edge detection on DRDY."""

    def __init__(self, chip: Ads1299Emulator, offset: int, event_buffer_size: int) -> None:
        self._chip = chip
        self._offset = offset
        self._events: deque[EmulatedEdgeEvent] = deque(maxlen=event_buffer_size)
        self._run_id = 0
        self._next_index = 0
        self._seqno = 0
        self._released = False

    @property
    def event_buffer_size(self) -> int:
        """Events this request keeps."""
        return self._events.maxlen or 0

    def _collect(self) -> None:
        batch = self._chip.edges(self._run_id, self._next_index, self.event_buffer_size)
        self._run_id, self._next_index = batch.run_id, batch.next_index
        base = self._seqno
        for position, ts in batch.stamps:
            seqno = base + position  # edges the buffer could not hold leave a seqno gap
            self._events.append(
                EmulatedEdgeEvent(EdgeType.FALLING_EDGE, ts, self._offset, seqno, seqno)
            )
        self._seqno = base + batch.count

    def wait_edge_events(self, timeout: float | None = None) -> bool:
        if self._released:
            raise RuntimeError("line request released")
        clock = self._chip.clock
        deadline = clock.monotonic_ns() + int((3600.0 if timeout is None else timeout) * 1e9)
        while True:
            self._collect()
            if self._events:
                return True
            now = clock.monotonic_ns()
            if now >= deadline:
                return False
            nxt = self._chip.next_edge_ns(self._run_id, self._next_index)
            target = deadline if nxt is None else min(nxt, deadline)
            if clock.realtime:
                target = min(target, now + _SLICE_NS)
                if nxt is not None:
                    self._chip.idle(nxt)  # the chip's spare time: generate conversions ahead
            clock.sleep_until(target)

    def read_edge_events(self, max_events: int | None = None) -> list[EmulatedEdgeEvent]:
        self._collect()
        count = len(self._events) if max_events is None else min(max_events, len(self._events))
        events = [self._events.popleft() for _ in range(count)]
        self._chip.events_stall()  # the late-read fault's ``events`` point
        return events

    def release(self) -> None:
        self._released = True


class EmulatedOutputRequest:
    """Output lines (RESET, START, PWDN) wired to the emulated chip's pins."""

    def __init__(self, chip: Ads1299Emulator, names: Mapping[int, str]) -> None:
        self._chip = chip
        self._names = dict(names)

    def set_level(self, offset: int, high: bool) -> None:
        self._chip.set_pin(self._names[offset], high)

    def release(self) -> None:
        self._names.clear()
