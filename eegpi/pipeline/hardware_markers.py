"""Markers the source finds in hardware: trigger-input edges and the chip's GPIO bits.

Both are placed on the pipeline thread, in the tick whose frames the sample clock has just
been fitted to, and delivered through ``StageContext.markers`` like every other marker:

* **Trigger edges** arrive from the trigger reader's thread (in the acquisition process or the
  daemon) with kernel timestamps on the DRDY clock. They wait in a bounded queue until the
  next tick; there each is mapped to Unix time with the offset the DRDY stamps use and placed
  on the sample whose time is nearest (``place_marker(..., origin="trigger")``). Waiting for
  the tick means an edge never meets a clock that has no sample yet: an edge at the first
  conversion of a run is placed like any other. Edges the kernel's buffer dropped, and edges
  the full queue refused, are counted in :attr:`HardwareMarkers.trigger_lost`.
* **Chip GPIO bits**: each frame's status word carries GPIOD[4:1] of chip 1. A frame whose
  levels differ from the previous valid frame's is a marker ``gpio:XXXX`` (GPIO4..GPIO1) at
  that frame's own ``seq``: sample-exact by construction, no clock involved but for its time.
  The first frame of a run sets the levels compared against; it is not a change.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from eegpi.exc import PipelineStateError
from eegpi.hardware.trigger import TriggerBatch, TriggerSpec
from eegpi.pipeline.markers import place_marker
from eegpi.stream import Marker

__all__ = ["PENDING_EDGES", "HardwareMarkers", "gpio_label"]

log = logging.getLogger("eegpi.pipeline")

PENDING_EDGES = 1024
"""Trigger edges that wait for the next tick at most; more are refused and counted."""


class _Clocked(Protocol):
    def seq_at(self, unix_time: float) -> int: ...

    def seq_time(self, seq: int) -> float: ...


def gpio_label(levels: int) -> str:
    """``gpio:XXXX``: the levels of GPIO4, GPIO3, GPIO2, GPIO1, in that order."""
    return f"gpio:{levels & 0xF:04b}"


def _no_markers(markers: Sequence[Marker]) -> None:
    """Before ``attach``: nowhere to deliver."""


class HardwareMarkers:
    """The source's hardware markers: queue, placement, delivery and counters."""

    def __init__(self, clock: _Clocked, trigger: TriggerSpec | None, gpio: bool) -> None:
        self._clock = clock
        self._trigger = trigger
        self._gpio = gpio
        self._deliver: Callable[[Sequence[Marker]], None] = _no_markers
        self._pipeline = ""
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, bool]] = deque()
        self._offset_ns = 0
        self._levels: int | None = None
        self.trigger_markers = 0
        """Trigger edges placed as markers (this run)."""
        self.trigger_lost = 0
        """Trigger edges lost (this run): the kernel's buffer was full, the queue was full, or
        the run ended before their tick."""
        self.gpio_markers = 0
        """GPIO level changes placed as markers (this run)."""

    def attach(self, deliver: Callable[[Sequence[Marker]], None], pipeline: str) -> None:
        """Where markers go (``StageContext.markers``) and the pipeline's name."""
        self._deliver, self._pipeline = deliver, pipeline

    def begin(self) -> None:
        """A new run is about to start: counters, queue and levels afresh."""
        with self._lock:
            self._pending.clear()
            self.trigger_markers = self.trigger_lost = self.gpio_markers = 0
        self._levels = None

    def set_offset(self, wall_offset_ns: int) -> None:
        """Unix time minus the DRDY clock of this run (known once it started; edges that
        came before wait for the first tick, which comes after)."""
        with self._lock:
            self._offset_ns = wall_offset_ns

    def stop(self) -> None:
        """The run ended: edges still waiting for a tick are lost (counted)."""
        with self._lock:
            left = len(self._pending)
            self.trigger_lost += left
            self._pending.clear()
        if left:
            log.warning("%s: %d trigger edge(s) came after the last sample", self._pipeline, left)

    def on_trigger(self, batch: TriggerBatch) -> None:
        """Edges from the trigger reader (any thread; never blocks)."""
        refused = 0
        with self._lock:
            self.trigger_lost += batch.lost
            for edge in batch.edges:
                if len(self._pending) >= PENDING_EDGES:
                    refused += 1
                else:
                    self._pending.append((edge.timestamp_ns, edge.rising))
            self.trigger_lost += refused
        if refused:
            log.warning(
                "%s: %d trigger edge(s) lost: %d already wait for the pipeline thread",
                self._pipeline,
                refused,
                PENDING_EDGES,
            )

    def tick(
        self,
        seq: np.ndarray[Any, Any],
        status: np.ndarray[Any, Any],
        valid: np.ndarray[Any, Any],
    ) -> None:
        """After the clock took this tick's frames: place and deliver what they and the
        trigger queue hold (pipeline thread)."""
        found: list[Marker] = []
        if self._gpio and len(seq):
            found += self._gpio_changes(seq, status, valid)
        if self._trigger is not None and self._pending:
            found += self._trigger_markers()
        if found:
            found.sort(key=lambda m: m.seq)
            self._deliver(found)

    def _gpio_changes(
        self,
        seq: np.ndarray[Any, Any],
        status: np.ndarray[Any, Any],
        valid: np.ndarray[Any, Any],
    ) -> list[Marker]:
        rows = np.flatnonzero(valid)
        if not len(rows):
            return []
        levels = (status[rows, 0] & 0xF).astype(np.int64)
        before = int(levels[0]) if self._levels is None else self._levels
        self._levels = int(levels[-1])
        changed = np.flatnonzero(np.diff(levels, prepend=before) != 0)
        found = []
        for i in changed:
            at = int(seq[rows[i]])
            label = gpio_label(int(levels[i]))
            found.append(Marker(label, at, self._clock.seq_time(at), "chip_gpio"))
        self.gpio_markers += len(found)
        return found

    def _trigger_markers(self) -> list[Marker]:
        spec = self._trigger
        assert spec is not None
        with self._lock:
            edges = list(self._pending)
            self._pending.clear()
            offset = self._offset_ns
        found = []
        lost = 0
        for stamp, rising in edges:
            label = spec.label
            if spec.edge == "both":
                label += ":rising" if rising else ":falling"
            try:
                marker = place_marker(
                    self._clock,
                    label,
                    "trigger",
                    at=(stamp + offset) / 1e9,
                    pipeline=self._pipeline,
                )
            except (PipelineStateError, ValueError):
                lost += 1
                continue
            if marker.seq < 0:  # the edge came before the run's first conversion
                lost += 1
            else:
                found.append(marker)
        with self._lock:
            self.trigger_markers += len(found)
            self.trigger_lost += lost
        if lost:
            log.warning(
                "%s: %d trigger edge(s) lost: before the run's first sample", self._pipeline, lost
            )
        return found
