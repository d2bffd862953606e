"""Which conversion a frame holds: sample slots from DRDY edges and the reader's clock.

The chip has no sample counter: a frame holds whatever conversion the output register had when
the SPI transfer began. The reader knows only its own clock just before (``began``) and just
after (``ended``) the read, and the edge events. The transfer lies within
``[began, ended]``, so:

* an edge at or before ``began`` fell before the transfer: the frame holds that conversion
  or a newer one;
* an edge after ``ended`` fell after the transfer: not in the frame;
* an edge in between may have fallen before the transfer (wherever the reader was preempted,
  the frame then holds the newer conversion) or during it (the chip reloads its output
  register mid-read: a torn frame). Such a frame cannot be named, so it is discarded and its
  conversion counted as lost.

Labels therefore never depend on when the reader was preempted. Two ways to know the edges:

* :class:`KernelSlots` (gpiod): the kernel stamps each edge in the interrupt and numbers it
  (``line_seqno``). The slot step between two frames is the seqno step; a time gap adds
  conversions whose edge never reached the kernel (a missed interrupt), but only when the gap
  exceeds the seqno's count by a whole period: ``floor(gap / period + 1/4)`` conversions, so an
  edge stamped up to 3/4 period late (interrupt latency) never counts as a miss, and a time gap
  shorter than the seqno step is ignored.
* :class:`CadenceSlots` (RPi.GPIO): stamps are taken in a callback, late by its latency (up to
  milliseconds on a busy host), and edges the library missed have no number. So the edges only
  wake the reader and pin down the DRDY cadence, whose phase is a lower envelope of the stamps:
  a stamp minus (its seqno count) periods is never earlier than the first edge (a stamp is never
  early, and the count can only fall short), so each one that is earlier moves the phase there;
  stamps a little later than the cadence move it later by at most 1/64 period each (a slow chip
  clock). RPi.GPIO's edge-triggered poll thread merges the edges that fall while it is away into
  one callback, so the count falls short for good: when the recent stamps all count whole
  periods late, most of them by the same number (the earliest, as an index from the cadence),
  the count is corrected by that number; a burst of late callbacks spreads over several numbers
  and corrects nothing. Between stamps the cadence expects a slow chip's edges later by the
  drift seen. A frame's slot is the newest conversion the cadence puts before ``began``; it is
  kept only when the cadence puts the next conversion, with a quarter-period margin for the
  envelope's error, after ``ended``, and, when no stamp has confirmed the cadence for a while,
  no edge within the drift since then of ``began`` or ``ended``. Frames before the first few
  edges only teach the cadence.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from eegpi.hardware.base import EdgeEventLike

__all__ = ["CadenceSlots", "KernelSlots", "Placement", "SlotCounter", "slot_counter"]

_LATE = 0.75
"""Fraction of a period an edge stamp may lag its edge without being taken for the next one."""
_DRIFT = 1 / 64
"""Per period, how far the cadence may follow stamps that come later and later (a chip clock up
to 1.5 % slow); earlier stamps are followed at once."""
_WARMUP = 8
"""Edges :class:`CadenceSlots` sees before it names frames (the first callbacks may be late)."""
_RESYNC = 8
"""Recent stamps :class:`CadenceSlots` checks its count against: when they all count whole
periods late, half of them by the same number, the count is short by that number."""


class Placement:
    """Where a frame goes: its slot (None: discarded), conversions lost before it (including
    a discarded frame's own), and the edge events left for the next read."""

    __slots__ = ("carry", "edge_ns", "lost", "slot")

    def __init__(
        self, slot: int | None, lost: int, edge_ns: int, carry: Sequence[EdgeEventLike]
    ) -> None:
        self.slot = slot
        self.lost = lost
        self.edge_ns = edge_ns
        """Time of the slot's DRDY edge (the kernel's stamp, or the cadence's estimate)."""
        self.carry = carry


class SlotCounter(Protocol):
    """Assigns sample slots to frames, counting the conversions no frame carries."""

    observes: bool
    """Whether :meth:`observe` does anything (a reader may skip the call when not)."""

    def observe(self, events: Sequence[EdgeEventLike]) -> None:
        """Every edge event, once, as it is read."""
        ...

    def place(
        self,
        seen: Sequence[EdgeEventLike],
        late: Sequence[EdgeEventLike],
        began: int,
        ended: int,
    ) -> Placement:
        """The frame read between the clock readings ``began`` and ``ended``.

        Args:
            seen: the events read before the clock said ``began`` (at least one).
            late: the events read after the frame.
        """
        ...


def slot_counter(kernel_stamps: bool, period_ns: float) -> SlotCounter:
    """The counter for a DRDY source (see :attr:`~eegpi.hardware.base.DrdyLine.kernel_stamps`)."""
    if kernel_stamps:
        return KernelSlots(period_ns)
    return CadenceSlots(period_ns)


class KernelSlots:
    """Slots from kernel edge stamps and line sequence numbers (see the module doc)."""

    observes = False

    def __init__(self, period_ns: float) -> None:
        self.period = period_ns
        self.slot = -1
        self._seqno = 0
        self._anchor = 0.0
        """Where the cadence puts the last labelled edge (the stamps' lower envelope)."""

    def observe(self, events: Sequence[EdgeEventLike]) -> None:
        pass

    def step(self, event: EdgeEventLike) -> int:
        """Conversions from the last labelled edge to ``event`` (its slot minus the last)."""
        t, seqno, period = event.timestamp_ns, event.line_seqno, self.period
        step = seqno - self._seqno
        # floor(x) as int((x) // 1) and max/min as comparisons: no calls, once per frame
        by_time = int(((t - self._anchor) / period + (1 - _LATE)) // 1)
        if by_time > step:
            step = by_time
        if step < 1:
            step = 1
        grid = self._anchor + step * period
        if t < grid:
            self._anchor = float(t)
        else:
            drift = t - grid
            self._anchor = grid + (drift if drift < _DRIFT * period else _DRIFT * period)
        self._seqno = seqno
        return step

    def place(
        self,
        seen: Sequence[EdgeEventLike],
        late: Sequence[EdgeEventLike],
        began: int,
        ended: int,
    ) -> Placement:
        if self.slot < 0:  # slot 0 is the first edge seen, whether or not its frame is read
            first = seen[0]
            self.slot, self._seqno = -1, first.line_seqno - 1
            self._anchor = first.timestamp_ns - self.period
        if late:
            older = [e for e in late if e.timestamp_ns <= began]
            label = older[-1] if older else seen[-1]
            carry = late[len(older) :]
        else:  # the usual frame: nothing fell during the read
            label, carry = seen[-1], late
        step = self.step(label)
        self.slot += step
        lost = step - 1
        if carry and any(e.timestamp_ns <= ended for e in carry):
            return Placement(None, lost + 1, label.timestamp_ns, carry)
        return Placement(self.slot, lost, label.timestamp_ns, carry)


class CadenceSlots:
    """Slots from the DRDY cadence and the reader's clock, for late stamps (module doc)."""

    observes = True

    def __init__(self, period_ns: float) -> None:
        self.period = period_ns
        self.margin = period_ns / 4
        self.slot = -1
        self._origin: float | None = None
        """Where the cadence puts conversion 0 (the first edge seen)."""
        self._seqno0 = 0
        """The seqno the count starts from; lowered by the edges merged callbacks stood for."""
        self._seen = 0
        self._first: int | None = None
        self._recent: deque[float] = deque(maxlen=_RESYNC)
        """The last stamps less the periods their count says, to see the count fall short."""
        self._pinned = 0.0
        """The last stamp that agreed with the cadence (by its count, or a period after the
        one before): since then a slow chip clock may have moved the edges later."""
        self._last = 0.0
        self._rate = 0.0
        """How far the cadence moved per period lately (ns; > 0: the chip clock runs slow)."""

    def observe(self, events: Sequence[EdgeEventLike]) -> None:
        for event in events:
            self._seen += 1
            t = event.timestamp_ns
            if self._origin is None:
                self._origin = self._pinned = self._last = float(t)
                self._seqno0 = event.line_seqno
                continue
            before, gap = self._origin, t - self._last
            self._follow(t, event.line_seqno, gap)
            self._last = float(t)
            # How fast the cadence moved, per period: a chip clock that runs slow makes the
            # cadence early between stamps, by this much a period (see ``place``).
            self._rate += ((self._origin - before) / max(gap / self.period, 1.0) - self._rate) / 8

    def _follow(self, t: int, seqno: int, gap: float) -> None:
        """Move the cadence for one stamp ``gap`` ns after the one before."""
        period, recent, origin = self.period, self._recent, self._origin
        assert origin is not None
        counted = t - (seqno - self._seqno0) * period
        recent.append(counted)
        if counted < origin:
            self._origin = self._pinned = counted
            return
        lowest = min(recent)
        if sum(c - lowest < self.margin for c in recent) * 2 >= len(recent) == recent.maxlen:
            # Merged callbacks: the count fell short, so the stamps count whole periods late,
            # most of them by the same number (a burst of late callbacks spreads over several:
            # no correction). The earliest says how many, as an index from the cadence.
            short = math.floor((lowest - origin) / period + (1 - _LATE))
            if short > 0:
                self._seqno0 -= short
                counted -= short * period
                shifted = [c - short * period for c in recent]
                recent.clear()
                recent.extend(shifted)
        index = math.floor((t - origin) / period + (1 - _LATE))
        offset = t - (origin + index * period)
        if 0 <= offset < self.margin:  # a slow chip: follow later stamps, slowly
            origin += min(offset, _DRIFT * period)
            if gap < 1.5 * period:  # a callback a period after the last: the cadence holds
                self._pinned = t
        if counted - origin < self.margin:  # the count agrees: the cadence holds
            self._pinned = t
        self._origin = origin
        # A stamp later than that is callback latency and says nothing about the edge; an
        # earlier one may be a stamp late by most of a period: only ``counted`` moves the
        # cadence earlier.

    def index_at(self, t: float) -> int:
        """The newest conversion the cadence puts at or before ``t``: after the last stamp, the
        edges of a slow chip clock are expected to come later by the rate seen."""
        assert self._origin is not None
        ahead = max(self._rate, 0.0) * max(t - self._last, 0.0) / self.period
        return math.floor((t - self._origin - ahead) / self.period)

    def place(
        self,
        seen: Sequence[EdgeEventLike],
        late: Sequence[EdgeEventLike],
        began: int,
        ended: int,
    ) -> Placement:
        if self._origin is None:
            self.observe(seen)
        assert self._origin is not None
        index = self.index_at(began)
        if self._seen < _WARMUP:
            return Placement(None, 0, 0, late)
        if self._first is None:
            self._first = index
        slot = index - self._first
        edge_ns = round(self._origin + index * self.period)
        # Since the last stamp that pinned the cadence, a slow chip clock may have moved the
        # edges later than the cadence says (twice the rate seen, for its noise).
        drift = 2 * max(self._rate, 0.0) * max((ended - self._pinned) / self.period - 1, 0.0)
        sure = self.index_at(began - drift) == index == self.index_at(ended + self.margin + drift)
        if slot <= self.slot:  # the conversion already had its frame (or was counted lost)
            return Placement(None, 0, edge_ns, late)
        lost = slot - self.slot - 1
        self.slot = slot
        if not sure:
            return Placement(None, lost + 1, edge_ns, late)
        return Placement(slot, lost, edge_ns, late)
