"""Conversions of the emulated chip, generated in order a chunk at a time, ahead of need.

Generating a chunk of synthetic EEG costs a hundred microseconds or more of numpy work. Inside a
frame read that would make the emulated host miss conversions at 16000 SPS (62.5 us apart) that
the host of a real board, whose chip does this work in silicon, would not. In real time the
next chunk is therefore generated in small steps while the reader waits for DRDY (see
:meth:`ChunkSource.idle`), so a frame read only picks up a finished chunk. A thread would not
do: it would take the GIL from the reader for longer than a conversion period.

Chunks are always generated in order, so conversion k carries the same noise however the host
reads (late reads skip conversions, never the generator's state).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

__all__ = ["Chunk", "ChunkSource", "ChunkSteps"]

Chunk = bytes
"""The encoded frames of a chunk's conversions, back to back: a frame read is one slice."""
ChunkSteps = Generator[None, None, Chunk]
"""Yields between steps, returns the encoded chunk."""


def _finish(steps: ChunkSteps) -> Chunk:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            chunk: Chunk = done.value
            return chunk


class ChunkSource:
    """Hands out encoded chunks for ``start`` = 0, rows, 2 rows, ... (not thread-safe: the
    emulated chip calls it under its lock)."""

    def __init__(self, make: Callable[[int], ChunkSteps], rows: int) -> None:
        """
        Args:
            make: the steps generating conversions ``start .. start + rows - 1``.
            rows: conversions per chunk.
        """
        self.rows = rows
        self._make = make
        self._ready: tuple[int, Chunk] | None = None
        self._pending: tuple[int, ChunkSteps] | None = None
        self._next = 0
        self.ahead = False
        """The next chunk is ready: :meth:`idle` has nothing to do (a reader checks this
        attribute before every DRDY wait instead of calling it)."""

    def restart(self, start: int) -> Chunk:
        """The chunk at ``start``, generation continuing from there (after a register change,
        START or RESET: work done with the old registers is dropped)."""
        self._ready = self._pending = None
        self.ahead = False
        self._next = start + self.rows
        return _finish(self._make(start))

    def get(self, start: int) -> Chunk:
        """The chunk after the one handed out last (finished now if idle time did not)."""
        ready, pending = self._ready, self._pending
        self._ready = None
        self.ahead = False
        if ready is not None and ready[0] == start:
            return ready[1]
        if pending is not None and pending[0] == start:
            self._pending = None
            return _finish(pending[1])
        return self.restart(start)

    def idle(self) -> bool:
        """Do one step of the next chunk; False when there is nothing to do."""
        if self._ready is not None:
            return False
        if self._pending is None:
            self._pending = (self._next, self._make(self._next))
            self._next += self.rows
        start, steps = self._pending
        try:
            next(steps)
        except StopIteration as done:
            self._ready, self._pending = (start, done.value), None
            self.ahead = True
        return True
