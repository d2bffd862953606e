"""``recorder``: a sink that writes its input to crash-safe BDF+ (or EDF+) files.

Each channel keeps its electrode name (the input's channel names) and is stored in microvolts
with the physical range the ADC really has: +/-VREF/gain from the source's metadata, spread over
the 24-bit (BDF) or 16-bit (EDF) digital range. ADC ``counts`` are converted on the way (the
same scale as ``to_voltage``); a ``uV`` stream (filtered, re-referenced) uses the range of the
gain it came from. ``physical_max`` overrides the range (values beyond it are clipped).

When the source's gain changes while recording (``UpdateStage``), ``counts`` blocks are
converted with the gain each was converted with, so the microvolts stay right; a file keeps the
range it was started with (a lower gain's larger range is clipped to it: stop and start the
recording for a file with the new range). A ``uV`` input is already right.

The stage only queues blocks for the recorder's writer thread (:mod:`eegpi.recording.recorder`);
disk errors end the recording, not the pipeline. With ``autostart: false`` it records only
when asked (StartRecording). Files go under the daemon's ``data_dir`` (see docs/recording.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eegpi.exc import ConfigError, PipelineStateError
from eegpi.pipeline.registry import register
from eegpi.pipeline.stage import Stage, StageContext
from eegpi.pipeline.stages.convert import _gains, _vref, uv_per_count
from eegpi.pipeline.stages.filters import single_input
from eegpi.recording.bdf import Layout, SignalSpec, record_duration
from eegpi.recording.control import Recorders
from eegpi.recording.naming import DEFAULT_PATTERN, check_pattern
from eegpi.recording.recorder import Recorder, RecorderConfig
from eegpi.status import RecordingStatus
from eegpi.stream import Block, Marker, StreamMeta

__all__ = ["RecorderParams", "RecorderStage"]

_FORMATS = ("bdf", "edf")


@dataclass(frozen=True)
class RecorderParams:
    format: str = "bdf"
    """``bdf`` (24-bit, the ADC's resolution) or ``edf`` (16-bit)."""
    path: str = DEFAULT_PATTERN
    """File name pattern below data_dir: {pipeline}, {stage}, {ext}, {start:%Y%m%d-%H%M%S}."""
    subject: str = ""
    """Header patient code (EDF+ patient field)."""
    recording: str = ""
    """Free text added to the header's recording field."""
    rotate_minutes: float | None = None
    """Start a new file after this many minutes of data."""
    rotate_mb: float | None = None
    """Start a new file before one grows beyond this many megabytes (10^6 bytes)."""
    autostart: bool = True
    """Record from the moment the pipeline starts; false: wait for StartRecording."""
    physical_max: float | None = None
    """The physical range, +/- this, in the recorded unit; default: +/-VREF/gain."""
    fsync_s: float = 1.0
    """fdatasync at most this often (the loss window of a power cut)."""

    def __post_init__(self) -> None:
        if self.format not in _FORMATS:
            raise ValueError(f"format: {self.format!r} is not one of {', '.join(_FORMATS)}")
        check_pattern(self.path, self.format)
        for name in ("rotate_minutes", "rotate_mb", "physical_max"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and np.isfinite(value)):
                raise ValueError(f"{name}: must be a positive number, got {value!r}")
        if self.rotate_mb is not None and self.rotate_mb < 0.01:
            raise ValueError(f"rotate_mb: {self.rotate_mb} is below 0.01 (10 kB)")
        if not 0 < self.fsync_s <= 60:
            raise ValueError(f"fsync_s: must be in (0, 60] seconds, got {self.fsync_s!r}")
        for name in ("subject", "recording"):
            if len(getattr(self, name)) > 60:
                raise ValueError(f"{name}: at most 60 characters")


def _signals(
    meta: StreamMeta, physical_max: float | None
) -> tuple[tuple[SignalSpec, ...], np.ndarray[Any, np.dtype[np.float64]]]:
    """Each channel's header entry, and the factor from input units to recorded units."""
    n = len(meta.channels)
    if meta.units == "counts":
        vref = _vref(meta)
        gains = _gains(meta)
        factor = np.array([uv_per_count(g, vref) for g in gains])
        ranges = [vref * 1e6 / g for g in gains]
        unit = "uV"
    else:
        factor = np.ones(n)
        unit = meta.units
        if meta.units == "uV" and "gain" in meta.extra and "vref_v" in meta.extra:
            vref = _vref(meta)
            ranges = [vref * 1e6 / g for g in _gains(meta)]
        elif physical_max is None:
            raise ConfigError(
                f"the input is in {meta.units!r} without the source's gain: set physical_max "
                "(the largest value to record, in the input's units)"
            )
        else:
            ranges = [physical_max] * n
    if physical_max is not None:
        ranges = [physical_max] * n
    if len(unit) > 8:
        raise ConfigError(f"unit {unit!r} does not fit the header's 8 characters")
    specs = tuple(
        SignalSpec(label=name, unit=unit, physical_max=r)
        for name, r in zip(meta.channels, ranges, strict=True)
    )
    return specs, factor.astype(np.float64)


@register
class RecorderStage(Stage):
    """Writes its input to BDF+/EDF+ files under the daemon's data directory."""

    type_name = "recorder"
    Params = RecorderParams
    output_ports: ClassVar[tuple[str, ...]] = ()

    params: RecorderParams

    def __init__(self, name: str, params: RecorderParams) -> None:
        super().__init__(name, params)
        self._recorder: Recorder | None = None
        self._final = RecordingStatus(stage=name)
        self._in_meta: StreamMeta | None = None
        self._counts_per_count: np.ndarray[Any, np.dtype[np.float64]] | None = None
        """Counts at the opening gain per count at the current one (None: the same gain)."""
        self._open_factor: np.ndarray[Any, np.dtype[np.float64]] | None = None

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        p = self.params
        meta = single_input(inputs)
        for label in meta.channels:
            if len(label) > 16:
                raise ConfigError(f"channel name {label!r} is longer than the header's 16 chars")
        signals, factor = _signals(meta, p.physical_max)
        self._in_meta, self._open_factor = meta, factor
        try:
            spr, record_s = record_duration(meta.sample_rate)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        layout = Layout(p.format, signals, spr, record_s)  # type: ignore[arg-type]
        config = RecorderConfig(
            data_dir=Path(ctx.data_dir),
            pattern=p.path,
            pipeline=ctx.pipeline,
            stage=self.name,
            fmt=p.format,  # type: ignore[arg-type]
            subject=p.subject,
            recording=p.recording,
            rotate_s=p.rotate_minutes * 60 if p.rotate_minutes is not None else None,
            rotate_bytes=int(p.rotate_mb * 1e6) if p.rotate_mb is not None else None,
            fsync_s=p.fsync_s,
        )
        self._recorder = Recorder(config, layout, meta.sample_rate, factor)
        recorders = ctx.extras.get(Recorders.KEY)
        if isinstance(recorders, Recorders):
            recorders.add(self)
        if p.autostart:
            self._recorder.start(wait_s=0)
        return {}

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        recorder = self._recorder
        block = inputs.get("in")
        if recorder is not None and block is not None:
            if block.meta is not self._in_meta:
                self._follow(block.meta)
            if self._counts_per_count is not None and block.n_samples:
                block = block.derive(block.data * self._counts_per_count)
            recorder.feed(block)
        return {}

    def _follow(self, meta: StreamMeta) -> None:
        """A new gain on a ``counts`` input: rescale its blocks to the file's opening gain."""
        self._in_meta = meta
        self._counts_per_count = None
        if meta.units == "counts" and self._open_factor is not None:
            factor = _signals(meta, self.params.physical_max)[1]
            if not np.array_equal(factor, self._open_factor):
                self._counts_per_count = factor / self._open_factor

    def close(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()
            self._final = recorder.status()

    # -- RecorderControl -----------------------------------------------------------------------

    def status(self) -> RecordingStatus:
        recorder = self._recorder
        return recorder.status() if recorder is not None else self._final

    def start_recording(self) -> RecordingStatus:
        recorder = self._recorder
        if recorder is None:
            raise PipelineStateError(
                f"recorder '{self.name}' is not running; start its pipeline first"
            )
        return recorder.start()

    def stop_recording(self) -> RecordingStatus:
        recorder = self._recorder
        return recorder.stop() if recorder is not None else self._final

    def add_markers(self, markers: Sequence[Marker]) -> None:
        recorder = self._recorder
        if recorder is not None:
            recorder.add_markers(markers)
