"""The ``lsl_outlet`` sink: the stream as a Lab Streaming Layer outlet, plus a marker outlet.

LSL is how a lab records many devices on one time axis (LabRecorder, BCI2000, OpenViBE,
PsychoPy). Each sample is pushed with its own LSL timestamp, computed from the sample's time in
the stream (``Block.timestamp`` plus its offset at the stream's rate, which come from the DRDY
edge times) mapped onto LSL's clock, never from the moment the block happens to be pushed: a
pipeline tick, a busy host or the network cannot shift the times an inlet sees.

The mapping: LSL's ``local_clock()`` is the host's monotonic clock, ``Block.timestamp`` is
Unix time derived from the same monotonic edge stamps by one offset taken when the source
starts. The outlet measures the offset between the two clocks once, when it opens (the
smallest bracket of several readings), so the LSL times of consecutive samples are exactly as
far apart as their stream times.

pylsl is an optional dependency (``pip install 'eegpi[lsl]'``; its wheels carry liblsl).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from eegpi.exc import ConfigError
from eegpi.pipeline.registry import register
from eegpi.pipeline.stage import Stage, StageContext
from eegpi.stream import Block, Marker, StreamMeta

__all__ = ["LslOutlet", "LslOutletParams", "lsl_clock_offset"]

log = logging.getLogger("eegpi.pipeline")

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


def _pylsl() -> Any:
    try:
        import pylsl
    except ImportError as exc:
        raise ConfigError(
            "lsl_outlet needs pylsl: pip install 'eegpi[lsl]' (its wheels include liblsl)"
        ) from exc
    return pylsl


def lsl_clock_offset(local_clock: Any, readings: int = 9) -> float:
    """Unix time minus LSL time, from the tightest of several bracketed readings."""
    best: tuple[float, float] | None = None
    for _ in range(readings):
        before = local_clock()
        wall = time.time()
        after = local_clock()
        width = after - before
        if best is None or width < best[0]:
            best = (width, wall - (before + after) / 2)
    assert best is not None
    return best[1]


@dataclass(frozen=True)
class LslOutletParams:
    """Params of ``lsl_outlet``."""

    name: str = ""
    """LSL stream name; default: the pipeline's name."""
    type: str = "EEG"
    """LSL content type."""
    source_id: str = ""
    """Stable id inlets use to reconnect after a restart; default
    ``eegpi@HOSTNAME/PIPELINE/STAGE``."""
    markers: bool = True
    """Also open a marker outlet (``NAME-markers``, type ``Markers``) for this pipeline's events."""

    def __post_init__(self) -> None:
        if self.name and not _NAME_RE.match(self.name):
            raise ValueError(
                f"name: {self.name!r} is not a valid stream name (1-64 letters, digits, '_-.')"
            )
        if not self.type or len(self.type) > 32:
            raise ValueError(f"type: {self.type!r} must be 1-32 characters")
        if len(self.source_id) > 128:
            raise ValueError("source_id: at most 128 characters")
        if not isinstance(self.markers, bool):
            raise ValueError(f"markers: {self.markers!r} is not true or false")


@register
class LslOutlet(Stage):
    """Pushes its input to an LSL outlet with per-sample timestamps on LSL's clock."""

    type_name = "lsl_outlet"
    Params = LslOutletParams
    output_ports: ClassVar[tuple[str, ...]] = ()

    params: LslOutletParams

    def __init__(self, name: str, params: LslOutletParams) -> None:
        super().__init__(name, params)
        self._outlet: Any = None
        self._marker_outlet: Any = None
        self._offset = 0.0
        self._rate = 0.0
        self._lock = threading.Lock()
        self.pushed = 0
        """Samples handed to liblsl (it buffers for inlets; see ``max_buffered``)."""

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        pylsl = _pylsl()
        meta = inputs["in"]
        self._rate = float(meta.sample_rate)
        name = self.params.name or ctx.pipeline
        source_id = self.params.source_id or f"eegpi@{socket.gethostname()}/{name}/{self.name}"
        info = pylsl.StreamInfo(
            name,
            self.params.type,
            len(meta.channels),
            self._rate,
            "float32",
            source_id,
        )
        desc = info.desc()
        desc.append_child_value("manufacturer", "eegpi (TI ADS1299)")
        channels = desc.append_child("channels")
        for label in meta.channels:
            ch = channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", _lsl_unit(meta.units))
            ch.append_child_value("type", self.params.type)
        self._offset = lsl_clock_offset(pylsl.local_clock)
        # Two seconds of buffer per inlet: an inlet that stops reading loses the oldest data in
        # liblsl, never blocks the pipeline thread.
        self._outlet = pylsl.StreamOutlet(info, 0, 2)
        if self.params.markers:
            minfo = pylsl.StreamInfo(
                f"{name}-markers",
                "Markers",
                1,
                pylsl.IRREGULAR_RATE,
                "string",
                f"{source_id}/markers",
            )
            self._marker_outlet = pylsl.StreamOutlet(minfo)
        return {}

    def lsl_time(self, unix_time: float) -> float:
        """The LSL clock reading of a Unix time on the stream's clock."""
        return unix_time - self._offset

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        block = inputs["in"]
        n = block.n_samples
        if n == 0 or self._outlet is None:
            return {}
        stamps = self.lsl_time(block.timestamp) + np.arange(n) / self._rate
        data = np.asarray(block.data, dtype=np.float32)
        self._outlet.push_chunk(data, stamps.tolist())
        self.pushed += n
        return {}

    def patience_ms(self) -> float | None:
        """An inlet is connected: it gets each tick as it happens, not a slower cadence."""
        outlet = self._outlet
        return 0.0 if outlet is not None and outlet.have_consumers() else None

    def add_markers(self, markers: Sequence[Marker]) -> None:
        """Push events to the marker outlet, each at its own time (from any thread)."""
        with self._lock:
            outlet = self._marker_outlet
            if outlet is None:
                return
            for marker in markers:
                outlet.push_sample([marker.label], self.lsl_time(marker.timestamp))

    def close(self) -> None:
        with self._lock:
            self._outlet = None
            self._marker_outlet = None  # liblsl closes an outlet when its last reference goes


def _lsl_unit(units: str) -> str:
    return {"uV": "microvolts", "counts": "counts"}.get(units, units)
