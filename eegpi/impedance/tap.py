"""Windows of a running source's samples, for an impedance check that asks for one.

The source hands every block it emits to its :class:`ImpedanceTap` (one attribute read when
nobody asks). A caller (``Device.MeasureImpedance`` on a running pipeline) waits, in a worker
thread, for a window of contiguous samples with one metadata: a ``seq`` gap (a lost conversion)
or a metadata change (a new gain) starts the window again, so a window never mixes settings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eegpi.stream import Block, StreamMeta

__all__ = ["SOURCE_KEY", "ImpedanceTap", "Window", "WindowBuilder"]

SOURCE_KEY = "eegpi.impedance.source"
"""``StageContext.extras`` key under which the pipeline's ``ads1299_source`` puts itself, so an
``impedance`` stage can read its lead-off status."""
MAX_WAITING = 8
"""Most windows asked for at once; more callers are refused rather than queued without bound."""


@dataclass(frozen=True)
class Window:
    """Contiguous samples of one stream."""

    counts: npt.NDArray[np.int32]
    seq: int
    timestamp: float
    meta: StreamMeta
    restarts: int
    """Times a gap or a metadata change started the window again."""


class WindowBuilder:
    """Gathers blocks into one window of ``samples`` contiguous samples with one metadata."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.parts: list[npt.NDArray[np.int32]] = []
        self.total = 0
        self.first: Block | None = None
        self.next_seq = -1
        self.restarts = 0
        self.done = threading.Event()

    def add(self, block: Block) -> None:
        first = self.first
        if first is not None and (block.seq != self.next_seq or block.meta != first.meta):
            self.parts, self.total, first = [], 0, None
            self.restarts += 1
        if first is None:
            self.first = block
        self.parts.append(np.asarray(block.data))
        self.total += block.n_samples
        self.next_seq = block.end_seq
        if self.total >= self.samples:
            self.done.set()

    def window(self) -> Window:
        """The window (once ``done`` is set): its first ``samples`` samples."""
        assert self.first is not None
        counts = np.concatenate(self.parts)[: self.samples]
        first = self.first
        return Window(counts, first.seq, first.timestamp, first.meta, self.restarts)


class ImpedanceTap:
    """Hands windows of the blocks a source emits to whoever waits for one (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wants: tuple[WindowBuilder, ...] = ()

    def feed(self, block: Block) -> None:
        """A block the source emits (its pipeline thread); costs nothing when nobody waits."""
        if not self._wants:
            return
        with self._lock:
            for want in self._wants:
                if not want.done.is_set():
                    want.add(block)

    def collect(self, samples: int, timeout: float) -> Window:
        """The next ``samples`` contiguous samples (blocks until they came).

        Raises:
            TimeoutError: they did not come within ``timeout`` seconds (the pipeline stopped,
                or kept losing conversions).
            RuntimeError: too many windows are asked for at once.
        """
        want = WindowBuilder(samples)
        with self._lock:
            if len(self._wants) >= MAX_WAITING:
                raise RuntimeError(
                    f"{MAX_WAITING} impedance checks already wait on this pipeline; try again"
                )
            self._wants = (*self._wants, want)
        try:
            if not want.done.wait(timeout):
                raise TimeoutError(
                    f"no {samples} contiguous samples within {timeout:g} s "
                    f"({want.restarts} restart(s) after a lost sample or a settings change)"
                )
            with self._lock:
                return want.window()
        finally:
            with self._lock:
                self._wants = tuple(w for w in self._wants if w is not want)
