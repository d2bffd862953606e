"""The sample clock: per-sample times from a running linear fit of edge times against slots.

A DRDY edge stamp is the conversion's time plus the interrupt's latency, which varies from edge
to edge (tens of microseconds on a Pi, milliseconds now and then). The conversions themselves
come from the chip's crystal: evenly spaced, at a rate a few ppm off the programmed one. So the
time of sample ``seq`` is ``t0 + seq / fs_measured``, a straight line, and fitting that line to
the stamps of many edges averages their latency's jitter away while tracking the crystal's true
rate, whatever gaps ``seq`` has.

The fit is least squares over the last ``window_s`` seconds of samples (in buckets of samples,
so an update costs the same whatever the rate), with a weak prior on the slope (the programmed
rate) for the first few samples. Once it holds ``GATE_MIN_POINTS`` stamps, a new stamp further
from the line than four times the spread expected there (the residual RMS, widened by the line's
own uncertainty while the fit is short; at least ``GATE_FLOOR_US``) is left out: a stamp taken
late by a stalled interrupt moves nothing. When ``RESTART_AFTER`` stamps in a row are left out,
the line no longer holds (the edge clock stepped) and the fit starts again from the newest
stamps. The mean latency stays in the times as a constant offset; only its variation goes.

Readers on other threads get an immutable :class:`ClockLine` (one reference swap per update),
so :meth:`SampleClock.seq_time` and :meth:`SampleClock.seq_at` need no lock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from itertools import compress
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from eegpi.exc import PipelineStateError

__all__ = ["ClockLine", "ClockNotReady", "SampleClock"]

WINDOW_S = 30.0
"""Seconds of samples the fit spans: long enough that 50 us of jitter averages to well under a
microsecond, short enough to follow a crystal warming up (ppm per minute)."""
BUCKETS = 32
"""The window's granularity: an update combines at most this many buckets plus the open one."""
GATE_SIGMAS = 4.0
GATE_FLOOR_US = 10.0
"""Smallest distance from the line at which a stamp is taken for an outlier."""
GATE_MIN_POINTS = 16
"""Stamps the fit holds before it judges new ones (fewer say too little about the spread)."""
RESTART_AFTER = 64
"""Consecutive stamps left out after which the fit starts again from the newest ones."""
PRIOR_SAMPLES2 = 4.0
"""Weight of the programmed rate in the slope (as a spread of samples squared): decides the
slope of the first two or three samples, nothing after a few more."""


BATCH = 32
"""Once the fit is settled (``SETTLED_POINTS``), :meth:`SampleClock.feed` adds stamps this many
at a time: one numpy update every 128 ms at 250 SPS instead of a Python one per tick. A block's
time is then extrapolated at most this many samples beyond the newest fitted stamp, which a
settled line does to well under a microsecond."""
SETTLED_POINTS = 256
"""Stamps the fit holds before :meth:`SampleClock.feed` batches: until then every tick's stamps
go in at once, while the slope is still moving."""

_SMALL = 16
"""Updates of up to this many stamps are done in Python floats, larger ones with numpy."""

_Points = list[float] | npt.NDArray[np.float64]


class ClockNotReady(PipelineStateError):
    """No edge time yet: the source has not started or not delivered a sample."""


class _Stats(NamedTuple):
    """Least-squares sums of a set of (slot, time) points, centred on their means."""

    n: float
    mx: float
    my: float
    sxx: float
    sxy: float
    syy: float


_EMPTY = _Stats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _merge(a: _Stats, b: _Stats) -> _Stats:
    """The sums of both sets (Chan et al.'s pairwise update: no cancellation)."""
    if a.n == 0:
        return b
    if b.n == 0:
        return a
    n = a.n + b.n
    dx, dy = b.mx - a.mx, b.my - a.my
    w = a.n * b.n / n
    return _Stats(
        n,
        a.mx + dx * b.n / n,
        a.my + dy * b.n / n,
        a.sxx + b.sxx + dx * dx * w,
        a.sxy + b.sxy + dx * dy * w,
        a.syy + b.syy + dy * dy * w,
    )


def _stats(x: Sequence[float], y: Sequence[float]) -> _Stats:
    """Sums of a few points, in Python (a tick's worth: cheaper than numpy's call overhead)."""
    n = len(x)
    if n == 0:
        return _EMPTY
    mx, my = sum(x) / n, sum(y) / n
    sxx = sxy = syy = 0.0
    for xi, yi in zip(x, y, strict=True):
        dx, dy = xi - mx, yi - my
        sxx += dx * dx
        sxy += dx * dy
        syy += dy * dy
    return _Stats(float(n), mx, my, sxx, sxy, syy)


def _stats_np(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> _Stats:
    """Sums of many points, with numpy."""
    if len(x) == 0:
        return _EMPTY
    mx, my = float(x.mean()), float(y.mean())
    dx, dy = x - mx, y - my
    return _Stats(float(len(x)), mx, my, float(dx @ dx), float(dx @ dy), float(dy @ dy))


class ClockLine(NamedTuple):
    """The fitted line at one moment: time of a slot = ``origin + (slot - xbar) * slope``."""

    anchor_seq: int
    origin_unix: float
    """Unix time (s) of slot ``anchor_seq + xbar``."""
    xbar: float
    slope_ns: float
    """Nanoseconds per slot: the measured sample period."""
    nominal_hz: float
    residual_ns: float
    """RMS distance of the kept stamps from the line (0 below three points)."""
    points: int
    newest_seq: int

    def seq_time(self, seq: int) -> float:
        """Unix time (s) of sample ``seq`` on the sample clock."""
        return self.origin_unix + (seq - self.anchor_seq - self.xbar) * self.slope_ns * 1e-9

    def seq_at(self, unix_time: float) -> int:
        """The sample nearest to ``unix_time`` (may lie before the first or after the newest)."""
        offset = (unix_time - self.origin_unix) * 1e9 / self.slope_ns
        return self.anchor_seq + round(self.xbar + offset)

    @property
    def rate_hz(self) -> float:
        """The measured sample rate (0 below two points)."""
        return 1e9 / self.slope_ns if self.points >= 2 else 0.0

    @property
    def ppm(self) -> float:
        """How far the measured rate is off the programmed one, in parts per million."""
        return (self.rate_hz / self.nominal_hz - 1.0) * 1e6 if self.points >= 2 else 0.0


class SampleClock:
    """Fits slots to edge times as samples arrive; see the module doc.

    ``update`` is called by one thread (the source's reader); ``line``, ``seq_time`` and
    ``seq_at`` by any.
    """

    def __init__(self, nominal_hz: float, window_s: float = WINDOW_S) -> None:
        self.nominal_hz = float(nominal_hz)
        self._period_ns = 1e9 / self.nominal_hz
        self._window = max(8, int(window_s * self.nominal_hz))
        self._bucket_span = max(1, self._window // BUCKETS)
        self._offset_ns = 0
        self._anchor_seq = 0
        self._anchor_ns = 0
        self._buckets: deque[tuple[int, _Stats]] = deque()
        """Closed buckets: (first slot, sums), oldest first."""
        self._open_first = 0
        self._open = _EMPTY
        self._closed = _EMPTY
        """Sums of the closed buckets."""
        self._total = _EMPTY
        """Sums of every bucket: the fit."""
        self._rejected_run = 0
        self.outliers = 0
        """Stamps left out of the fit since the last reset."""
        self.restarts = 0
        """Times the fit started again since the last reset (the line no longer held)."""
        self._line: ClockLine | None = None
        self._queued: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]] = []
        self._queued_n = 0

    def reset(self, offset_ns: int) -> None:
        """Forget every point (a new run: slots count from 0 again). ``offset_ns`` maps the
        stamps' clock onto Unix time (ns)."""
        self._offset_ns = offset_ns
        self.outliers = self.restarts = 0
        self._clear()

    def _clear(self) -> None:
        self._queued.clear()
        self._queued_n = 0
        self._buckets.clear()
        self._open = self._closed = self._total = _EMPTY
        self._rejected_run = 0
        self._line = None

    @property
    def line(self) -> ClockLine | None:
        """The current fit (None before the first stamp)."""
        return self._line

    def seq_time(self, seq: int) -> float:
        """Unix time of sample ``seq``; ClockNotReady before the first stamp."""
        return self._ready().seq_time(seq)

    def seq_at(self, unix_time: float) -> int:
        """The sample nearest to ``unix_time``; ClockNotReady before the first stamp."""
        return self._ready().seq_at(unix_time)

    def _ready(self) -> ClockLine:
        line = self._line
        if line is None:
            raise ClockNotReady("no sample has arrived yet: the source has no sample clock")
        return line

    def feed(self, seq: npt.NDArray[Any], edge_ns: npt.NDArray[Any]) -> None:
        """:meth:`update`, in batches of :data:`BATCH` stamps once the fit is settled (the
        source's per-tick call: same line, a fraction of the cost at low rates)."""
        if self._line is None or self._total.n < SETTLED_POINTS:
            self.update(seq, edge_ns)
            return
        self._queued.append((seq, edge_ns))
        self._queued_n += len(seq)
        if self._queued_n >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Fit the stamps :meth:`feed` holds back."""
        queued = self._queued
        if not queued:
            return
        seqs = np.concatenate([q[0] for q in queued])
        edges = np.concatenate([q[1] for q in queued])
        queued.clear()
        self._queued_n = 0
        self.update(seqs, edges)

    def update(self, seq: npt.NDArray[Any], edge_ns: npt.NDArray[Any]) -> None:
        """Add the stamps of new frames (ascending ``seq``, stamps in ns on the edge clock)."""
        n = len(seq)
        if n == 0:
            return
        if self._line is None:
            self._anchor_seq, self._anchor_ns = int(seq[0]), int(edge_ns[0])
            self._open_first = 0
        a_seq, a_ns = self._anchor_seq, self._anchor_ns
        x: _Points
        y: _Points
        if n <= _SMALL:  # a tick at a low rate: Python floats beat numpy's per-call cost
            x = [float(v - a_seq) for v in seq.tolist()]
            y = [float(v - a_ns) for v in edge_ns.tolist()]
        else:
            x = (seq - a_seq).astype(np.float64)
            y = (edge_ns - a_ns).astype(np.float64)
        line = self._line
        if line is not None and line.points >= GATE_MIN_POINTS:
            keep = self._judge(line, x, y)
            if not all(keep):
                self._count_rejects(keep)
                if self._rejected_run >= RESTART_AFTER:
                    self.restarts += 1
                    self._clear()
                    self.update(seq[-RESTART_AFTER:], edge_ns[-RESTART_AFTER:])
                    return
                if isinstance(x, list) and isinstance(y, list):
                    x, y = list(compress(x, keep)), list(compress(y, keep))
                else:
                    mask = np.array(keep, dtype=bool)
                    x, y = np.asarray(x)[mask], np.asarray(y)[mask]
                if len(x) == 0:
                    return
            else:
                self._rejected_run = 0
        self._add(x, y)
        self._line = self._fit(int(seq[-1]))

    def _judge(self, line: ClockLine, x: _Points, y: _Points) -> list[bool]:
        """Which stamps lie close enough to the line: within GATE_SIGMAS times the spread of
        a new stamp about it (the stamps' own plus the line's uncertainty, which matters while
        the fit is short; taken at the newest stamp, where it is widest), or GATE_FLOOR_US."""
        t, slope = self._total, line.slope_ns
        far = (x[-1] - t.mx) ** 2 / max(t.sxx, 1.0)
        spread = line.residual_ns * math.sqrt(1 + 1 / t.n + far)
        gate = max(GATE_SIGMAS * spread, GATE_FLOOR_US * 1e3)
        intercept = t.my - slope * t.mx
        if isinstance(x, list) and isinstance(y, list):
            return [abs(yi - intercept - slope * xi) <= gate for xi, yi in zip(x, y, strict=True)]
        keep: list[bool] = (
            np.abs(np.asarray(y) - intercept - slope * np.asarray(x)) <= gate
        ).tolist()
        return keep

    def _count_rejects(self, keep: list[bool]) -> None:
        self.outliers += keep.count(False)
        if True in keep:
            self._rejected_run = len(keep) - 1 - max(i for i, k in enumerate(keep) if k)
        else:
            self._rejected_run += len(keep)

    def _add(self, x: _Points, y: _Points) -> None:
        """Into the open bucket; close it once it spans a bucket; drop what left the window."""
        if isinstance(x, list) and isinstance(y, list):
            new = _stats(x, y)
        else:
            new = _stats_np(np.asarray(x), np.asarray(y))
        self._open = _merge(self._open, new)
        newest = int(x[-1])
        if newest + 1 - self._open_first >= self._bucket_span:
            self._buckets.append((self._open_first, self._open))
            self._open, self._open_first = _EMPTY, newest + 1
            dropped = False
            while self._buckets and newest + 1 - self._buckets[0][0] > self._window:
                self._buckets.popleft()
                dropped = True
            if dropped or len(self._buckets) == 1:
                self._closed = _EMPTY
                for _, stats in self._buckets:
                    self._closed = _merge(self._closed, stats)
            else:
                self._closed = _merge(self._closed, self._buckets[-1][1])
        self._total = _merge(self._closed, self._open)

    def _fit(self, newest_seq: int) -> ClockLine:
        s = self._total
        slope = (s.sxy + PRIOR_SAMPLES2 * self._period_ns) / (s.sxx + PRIOR_SAMPLES2)
        rss = max(s.syy - 2 * slope * s.sxy + slope * slope * s.sxx, 0.0)
        residual = math.sqrt(rss / (s.n - 2)) if s.n > 2 else 0.0
        return ClockLine(
            anchor_seq=self._anchor_seq,
            origin_unix=(self._anchor_ns + self._offset_ns) / 1e9 + s.my * 1e-9,
            xbar=s.mx,
            slope_ns=slope,
            nominal_hz=self.nominal_hz,
            residual_ns=residual,
            points=int(s.n),
            newest_seq=newest_seq,
        )
