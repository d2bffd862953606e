"""Cutting a topic's block stream into data messages: latency-bounded, size-capped, gap-aware.

The batcher is pure logic (no event loop, no sockets): it is fed blocks with the wall-clock time
they reached the hub and returns the chunks that must leave now; the hub arms a timer for
:attr:`Batcher.due_at` (Unix seconds) when samples wait.

Rules (SPEC §6):
- a chunk leaves when its oldest sample is ``max_latency_ms`` old, measured from that sample's
  own DRDY time (``Block.timestamp`` plus its offset over the rate), so time the sample already
  spent upstream (an upstream tick of several samples) counts; it never waits longer than
  ``max_latency_ms`` after reaching the hub either, whatever clock the timestamps come from;
- it leaves at once when the next sample could not reach the hub before that deadline: the
  next block is expected as many sample periods after this one as this one holds (upstream
  ticks are regular), plus :data:`NEXT_SAMPLE_ALLOWANCE_S`. At 250 SPS and 10 ms that makes
  messages of 2-3 samples and no timer at all in steady state;
- it leaves when it holds ``cap`` samples (a big block is split into full chunks);
- samples in one chunk are always contiguous: a block whose ``seq`` does not continue the
  pending samples first flushes them, so a gap shows as a ``seq`` jump between messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from eegpi.stream import Block

__all__ = [
    "MAX_MESSAGE_SECONDS",
    "MAX_MESSAGE_VALUES",
    "NEXT_SAMPLE_ALLOWANCE_S",
    "Batcher",
    "Chunk",
    "chunk_cap",
]

MAX_MESSAGE_SECONDS = 0.1
"""A message never holds more than 100 ms of signal."""
MAX_MESSAGE_VALUES = 16384
"""Byte budget: at most this many values (64 KiB of float32) in one message."""
NEXT_SAMPLE_ALLOWANCE_S = 0.001
"""Jitter allowed for the next block's arrival before waiting for it is judged too late."""


def chunk_cap(sample_rate: float, n_channels: int) -> int:
    """Most samples one message may hold for a stream of this rate and width."""
    by_time = int(sample_rate * MAX_MESSAGE_SECONDS)
    by_size = MAX_MESSAGE_VALUES // max(1, n_channels)
    return max(1, min(by_time, by_size))


@dataclass(frozen=True, slots=True)
class Chunk:
    """Contiguous samples ready to be encoded into one message."""

    seq: int
    timestamp: float
    data: npt.NDArray[Any]

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])


@dataclass(slots=True)
class _Piece:
    data: npt.NDArray[Any]
    seq: int
    timestamp: float
    arrival: float  # Unix time the block reached the hub


class Batcher:
    """Pending samples of one (topic, format, max_latency_ms) group."""

    def __init__(self, sample_rate: float, n_channels: int, max_latency_s: float) -> None:
        self.sample_rate = sample_rate
        self.cap = chunk_cap(sample_rate, n_channels)
        self.max_latency_s = max_latency_s
        self._pieces: list[_Piece] = []
        self._pending = 0  # samples held in _pieces

    @property
    def pending_samples(self) -> int:
        return self._pending

    @property
    def due_at(self) -> float | None:
        """Unix time at which the pending samples must leave, None when nothing waits."""
        if not self._pieces:
            return None
        first = self._pieces[0]
        return min(first.timestamp, first.arrival) + self.max_latency_s

    def add(self, block: Block, now: float) -> list[Chunk]:
        """Take a block that reached the hub at ``now`` (Unix seconds); returns what leaves now."""
        out: list[Chunk] = []
        n = block.n_samples
        if n == 0:
            return out
        if self._pieces and block.seq != self._end_seq():
            out.extend(self.flush())
        next_arrival = now + n / self.sample_rate + NEXT_SAMPLE_ALLOWANCE_S
        if not self._pieces and n < self.cap:
            alone_due = min(block.timestamp, now) + self.max_latency_s
            if next_arrival > alone_due:  # the usual case at low rates: the block is the message
                out.append(Chunk(block.seq, block.timestamp, block.data))
                return out
        self._pieces.append(_Piece(block.data, block.seq, block.timestamp, now))
        self._pending += n
        while self._pending >= self.cap:
            out.append(self._take(self.cap))
        if self._pieces:
            due = self.due_at
            if due is not None and next_arrival > due:
                out.extend(self.flush())
        return out

    def poll(self, now: float) -> list[Chunk]:
        """Chunks whose oldest sample is due at ``now`` (call from the timer)."""
        due = self.due_at
        if due is None or now < due:
            return []
        return self.flush()

    def flush(self) -> list[Chunk]:
        """Everything pending, as one chunk (pending is always below the cap)."""
        if not self._pieces:
            return []
        return [self._take(self._pending)]

    def _end_seq(self) -> int:
        last = self._pieces[-1]
        return last.seq + int(last.data.shape[0])

    def _take(self, n: int) -> Chunk:
        """Remove the first ``n`` pending samples and return them as a chunk."""
        first = self._pieces[0]
        parts: list[npt.NDArray[Any]] = []
        need = n
        while need > 0:
            piece = self._pieces[0]
            size = int(piece.data.shape[0])
            if size <= need:
                parts.append(piece.data)
                self._pieces.pop(0)
                need -= size
            else:
                parts.append(piece.data[:need])
                self._pieces[0] = _Piece(
                    piece.data[need:],
                    piece.seq + need,
                    piece.timestamp + need / self.sample_rate,
                    piece.arrival,
                )
                need = 0
        self._pending -= n
        data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        return Chunk(first.seq, first.timestamp, data)
