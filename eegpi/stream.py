"""What flows between stages: blocks of samples with the metadata that describes them.

A :class:`Block` is a run of consecutive samples of one stream, as a (samples x channels) numpy
array. ``seq`` is the stream index of its first sample: indices count sample *slots* of the
device clock, so a sample lost upstream (missed DRDY, full buffer) shows as a jump in ``seq``
between blocks rather than being hidden. Blocks are immutable: fan-out hands the same read-only
array to several stages.

Events (:class:`Marker`) travel beside blocks, aligned by ``seq``, not inside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Block", "Marker", "StreamMeta"]


@dataclass(frozen=True)
class StreamMeta:
    """Describes a stream; sent to subscribers in acks and topic lists."""

    sample_rate: float
    """Samples per second of this stream (after any decimation)."""
    channels: tuple[str, ...]
    """Channel names, one per column of ``Block.data``."""
    units: str
    """Units of the values, e.g. ``"uV"``, ``"counts"``, ``"uV^2"``."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Stage-specific facts that travel downstream (e.g. ``gain``, ``vref_v``, ``bands``)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form used by the WebSocket API."""
        out: dict[str, Any] = {
            "sample_rate": self.sample_rate,
            "channels": list(self.channels),
            "units": self.units,
        }
        for key, value in self.extra.items():
            out.setdefault(key, list(value) if isinstance(value, tuple) else value)
        return out

    def with_changes(self, **changes: Any) -> StreamMeta:
        return replace(self, **changes)


@dataclass(frozen=True)
class Block:
    """Consecutive samples of one stream."""

    data: npt.NDArray[Any]
    """Shape (samples, channels); made read-only on construction."""
    seq: int
    """Stream index of the first sample (sample slots, so gaps are visible)."""
    timestamp: float
    """Unix time in seconds of the first sample."""
    meta: StreamMeta

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise ValueError(f"block data must be 2-D (samples, channels), got {self.data.shape}")
        if self.data.flags.writeable:
            self.data.flags.writeable = False

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def end_seq(self) -> int:
        """``seq`` of the sample after this block."""
        return self.seq + self.n_samples

    def derive(self, data: npt.NDArray[Any], meta: StreamMeta | None = None) -> Block:
        """A block with new data at the same position in the stream."""
        return Block(data=data, seq=self.seq, timestamp=self.timestamp, meta=meta or self.meta)


@dataclass(frozen=True)
class Marker:
    """An event aligned to the sample stream: a stimulus, a trigger edge, a button press."""

    label: str
    """What happened, as the sender named it."""
    seq: int
    """Stream index (sample slot of the source) of the sample the event belongs to."""
    timestamp: float
    """Unix time of the event, on the same clock as ``Block.timestamp``."""
    source: str
    """Where it came from: ``grpc``, ``websocket``, ``trigger`` or ``chip_gpio``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "source": self.source,
        }


def empty_like(meta: StreamMeta, seq: int, timestamp: float) -> Block:
    """A zero-sample block (e.g. a decimator that has not produced an output yet)."""
    return Block(np.zeros((0, len(meta.channels))), seq, timestamp, meta)
