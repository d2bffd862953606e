"""The emulated stimulus: a pulse generator wired to one header GPIO, for trigger inputs.

A lab's stimulus computer raises a TTL line when it shows a stimulus; the trigger input turns
the edge into a marker. Here the pulses come at chosen conversions' true times (the fall of
their DRDY, ``EmulatorConfig.trigger_at``, plus ``trigger_latency_us``), so a test knows in
advance which sample each marker must land on, from the chip's own timing and not from the
daemon's sample clock. The kernel-like stamp of each edge is late by up to ``drdy_jitter_us``,
as DRDY's are (an interrupt handler runs a little after its edge).

The gpiod stand-in reads edges through a :class:`StimulusLine` per request, a cursor that
numbers them as the kernel does (``line_seqno`` from 1) and keeps only the edge kinds the
request asked for. The kernel queues an edge in its interrupt, whether or not anyone reads the
line: so when a run gives way to the next (new chip settings), each line first queues the old
run's edges that fell and it had not collected yet.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from eegpi.hardware.config import EmulatorConfig
from eegpi.hardware.emulator.chip import Ads1299Emulator
from eegpi.hardware.emulator.latency import stamp_latency_ns

__all__ = ["Stimulus", "StimulusEdge", "StimulusLine"]

_SEED_SALT = 0x7419
"""Keeps the stimulus's stamp latencies apart from DRDY's (same seed, other draws)."""


@dataclass(frozen=True)
class StimulusEdge:
    time_ns: int
    """When the line changes (the truth)."""
    stamp_ns: int
    """When the emulated kernel stamps it (the truth plus interrupt latency)."""
    rising: bool
    conversion: int
    """The conversion whose pulse this edge belongs to."""


class Stimulus:
    """Pulses on ``pin`` at the true times of the conversions ``cfg.trigger_at`` of each run."""

    def __init__(self, chip: Ads1299Emulator, cfg: EmulatorConfig) -> None:
        self.chip = chip
        self.pin = cfg.trigger_pin
        """The GPIO it drives (None until :meth:`connect` names one)."""
        self._at = sorted(set(cfg.trigger_at))
        self._latency_ns = round(cfg.trigger_latency_us * 1000)
        self._pulse_ns = max(1, round(cfg.trigger_pulse_us * 1000))
        self._jitter_ns = round(cfg.drdy_jitter_us * 1000)
        self._seed = cfg.seed + _SEED_SALT
        self._cache: tuple[tuple[int, int | None], list[StimulusEdge]] | None = None
        self._lines: weakref.WeakSet[StimulusLine] = weakref.WeakSet()
        chip.run_listeners.append(self._run_ending)

    def watch(self, line: StimulusLine) -> None:
        """``line`` queues the edges of a run that ends (see :meth:`_run_ending`)."""
        self._lines.add(line)

    def _run_ending(self, now_ns: int) -> None:
        """The chip starts a new run: every line queues what fell of this one."""
        if not self._lines:
            return
        last = self.chip.latest_conversion(now_ns)
        for line in list(self._lines):
            line.queue_fallen(now_ns, last)

    def connect(self, pin: int) -> None:
        """Wire the stimulus to ``pin`` unless the config already chose one."""
        if self.pin is None:
            self.pin = pin

    def edges(self) -> tuple[int, list[StimulusEdge]]:
        """The current run's id and every edge of its pulses, in time order (none while the
        chip does not convert)."""
        chip = self.chip
        run = chip.run_id
        first = chip.next_edge_ns(run, 0) if chip.running else None
        key = (run, first)
        if self._cache is not None and self._cache[0] == key:
            return run, self._cache[1]
        found: list[StimulusEdge] = []
        if first is not None:
            pulses: list[list[int]] = []  # [rise, fall, conversion]
            for k in self._at:
                t = chip.next_edge_ns(run, k)
                if t is None:  # the run ends before conversion k
                    break
                start = t + self._latency_ns
                if pulses and start <= pulses[-1][1]:
                    pulses[-1][1] = max(pulses[-1][1], start + self._pulse_ns)
                else:
                    pulses.append([start, start + self._pulse_ns, k])
            for n, (rise, fall, k) in enumerate(pulses):
                for j, (t, rising) in enumerate(((rise, True), (fall, False))):
                    late = stamp_latency_ns(self._jitter_ns, self._seed, run, 2 * n + j)
                    found.append(StimulusEdge(t, t + late, rising, k))
        self._cache = (key, found)
        return run, found

    def level(self, now_ns: int) -> bool:
        """The line's level now (True = high, inside a pulse)."""
        _, edges = self.edges()
        high = False
        for edge in edges:
            if edge.time_ns > now_ns:
                break
            high = edge.rising
        return high


class StimulusLine:
    """One request's view of the stimulus line: the edges it asked for, numbered."""

    def __init__(self, stimulus: Stimulus, offset: int, rising: bool, falling: bool) -> None:
        self.stimulus = stimulus
        self.offset = offset
        self._kinds = (rising, falling)
        self._run, _ = stimulus.edges()
        self._done_index = self._count_before(stimulus.chip.clock.monotonic_ns())
        self.seqno = 0
        self._queued: list[tuple[int, int, bool]] = []
        """Edges of an ended run, queued when it ended and not collected yet."""
        stimulus.watch(self)

    def queue_fallen(self, now_ns: int, last_conversion: int) -> None:
        """The run ends (called under the chip's lock): queue its edges that fell by
        ``now_ns`` (of pulses of conversions up to ``last_conversion``: a stopped chip makes
        none after its last)."""
        run, edges = self.stimulus.edges()
        if run != self._run:  # the line was made before this run began: all of it is new
            self._run, self._done_index = run, 0
        self._queued += self._take(edges, now_ns, last_conversion)

    def _count_before(self, now_ns: int) -> int:
        """Edges of the current run that fell before the request existed (never reported)."""
        _, edges = self.stimulus.edges()
        return sum(1 for e in edges if e.time_ns <= now_ns)

    def collect(self, limit: int) -> tuple[list[tuple[int, int, bool]], int]:
        """(line_seqno, stamp, rising) of the newest ``limit`` new edges, and how many fell."""
        chip = self.stimulus.chip
        with chip.lock:  # a run cannot end (``queue_fallen``) half-way through
            run, edges = self.stimulus.edges()
            if run != self._run:
                self._run, self._done_index = run, 0
            now = chip.clock.monotonic_ns()
            fresh, self._queued = self._queued, []
            fresh += self._take(edges, now, chip.latest_conversion(now))
        return fresh[-limit:] if limit > 0 else [], len(fresh)

    def _take(
        self, edges: list[StimulusEdge], now_ns: int, last_conversion: int
    ) -> list[tuple[int, int, bool]]:
        """The uncollected edges that fell by ``now_ns``, numbered; the cursor moves past."""
        rising_wanted, falling_wanted = self._kinds
        fresh: list[tuple[int, int, bool]] = []
        while self._done_index < len(edges):
            edge = edges[self._done_index]
            if edge.time_ns > now_ns or edge.conversion > last_conversion:
                break
            self._done_index += 1
            if rising_wanted if edge.rising else falling_wanted:
                self.seqno += 1
                fresh.append((self.seqno, edge.stamp_ns, edge.rising))
        return fresh

    def next_edge_ns(self) -> int | None:
        """When the next edge of the current run falls (None: none is scheduled)."""
        run, edges = self.stimulus.edges()
        index = self._done_index if run == self._run else 0
        return edges[index].time_ns if index < len(edges) else None
