"""Markers: events placed on the sample stream of a running pipeline.

A marker comes from gRPC (``PostMarker``), a WebSocket client (``{"marker": "label"}``), the
source's trigger input or the chip's GPIO bits. Wherever it comes from, it is placed the same
way: at the sample the sample clock puts at the event's time (the time the sender gave, or the
moment it arrived), so a recording, an LSL marker stream and the ``markers`` topic all agree on
which sample it belongs to. Placing needs a source with a sample clock (``seq_at``); before
the first sample of a run the pipeline refuses markers (there is no sample to place them on).

Delivery is direct, not through the pipeline thread: stages that keep markers
(:class:`MarkerReceiver`: the recorder, the LSL outlet) get them at once, and the ``markers``
topic gets them through the publisher. Markers are rare, so this costs nothing per sample.
"""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from eegpi.exc import PipelineStateError
from eegpi.stream import Marker, StreamMeta

__all__ = [
    "MARKERS_META",
    "MARKERS_TOPIC",
    "MAX_LABEL",
    "ClockedSource",
    "MarkerReceiver",
    "check_label",
    "place_marker",
]

MARKERS_TOPIC = "markers"
"""The broker topic every pipeline's markers are published on."""
MARKERS_META = StreamMeta(0.0, (), "events", {"kind": "markers"})
"""What a subscriber of ``markers`` is told about it: events, not samples."""
MAX_LABEL = 128
"""Longest label (a BDF+ annotation and an LSL string both hold it whole)."""
SOURCES = ("grpc", "websocket", "trigger", "chip_gpio")


@runtime_checkable
class MarkerReceiver(Protocol):
    """A stage that keeps markers (the recorder writes them, the LSL outlet pushes them)."""

    def add_markers(self, markers: Sequence[Marker]) -> None:
        """Take markers from any thread; must not block."""


@runtime_checkable
class ClockedSource(Protocol):
    """A source stage with a sample clock (``ads1299_source``)."""

    def seq_at(self, unix_time: float) -> int: ...


def check_label(label: object) -> str:
    """``label`` as a marker label, or ValueError saying what is wrong with it."""
    if not isinstance(label, str):
        raise ValueError(f"a marker label is a string, got {type(label).__name__}")
    if not label or label.strip() != label:
        raise ValueError("a marker label must be non-empty, without leading or trailing spaces")
    if len(label) > MAX_LABEL:
        raise ValueError(f"a marker label holds at most {MAX_LABEL} characters, got {len(label)}")
    if any(unicodedata.category(ch).startswith("C") for ch in label):
        raise ValueError("a marker label must not contain control characters")
    return label


def place_marker(
    source: object, label: str, origin: str, at: float | None = None, *, pipeline: str = ""
) -> Marker:
    """A marker for the sample the source's clock puts at ``at`` (default: now).

    Raises:
        ValueError: a bad label or time.
        PipelineStateError: the source has no sample clock, or no sample yet (ClockNotReady).
    """
    check_label(label)
    if origin not in SOURCES:
        raise ValueError(f"marker source {origin!r} is not one of {', '.join(SOURCES)}")
    when = time.time() if at is None else at
    if not math.isfinite(when) or when <= 0:
        raise ValueError(f"a marker time is a Unix time in seconds, got {when!r}")
    if not isinstance(source, ClockedSource):
        raise PipelineStateError(
            f"pipeline '{pipeline}': its source has no sample clock to place markers on"
        )
    return Marker(label, source.seq_at(when), when, origin)
