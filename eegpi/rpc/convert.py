"""Status records (eegpi.status) <-> protobuf messages (eegpi.v1).

Only the rpc layer and the CLI's client see protobuf types; the rest of eegpi speaks in the plain
records, so this module is the one place where the two meet.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from eegpi.rpc.throttle import LogThrottle
from eegpi.status import (
    DeviceInfo,
    DeviceReport,
    LeadOffChannel,
    LoadError,
    PipelineInfo,
    PipelineState,
    PipelineStatus,
    RecordingFile,
    RecordingStatus,
    RegisterValue,
    ReloadResult,
    StageParams,
    TopicStatus,
)
from eegpi.stream import Marker
from eegpi.v1 import control_pb2 as pb
from eegpi.v1 import device_pb2 as dpb

__all__ = [
    "device_info_from_pb",
    "device_info_to_pb",
    "identity_to_pb",
    "lead_off_from_pb",
    "lead_off_to_pb",
    "load_error_from_pb",
    "pipeline_info_from_pb",
    "pipeline_info_to_pb",
    "pipeline_list_to_pb",
    "pipeline_status_from_pb",
    "pipeline_status_to_pb",
    "recording_file_from_pb",
    "recording_file_to_pb",
    "recording_status_from_pb",
    "recording_status_to_pb",
    "registers_from_pb",
    "registers_to_pb",
    "reload_result_to_pb",
    "stage_params_from_pb",
    "stage_params_to_pb",
    "state_from_pb",
    "state_to_pb",
    "struct_to_params",
]

_STATE_TO_PB: dict[PipelineState, pb.PipelineState] = {
    PipelineState.STOPPED: pb.PIPELINE_STATE_STOPPED,
    PipelineState.STARTING: pb.PIPELINE_STATE_STARTING,
    PipelineState.RUNNING: pb.PIPELINE_STATE_RUNNING,
    PipelineState.STOPPING: pb.PIPELINE_STATE_STOPPING,
    PipelineState.FAILED: pb.PIPELINE_STATE_FAILED,
}
_STATE_FROM_PB: dict[int, PipelineState] = {int(v): k for k, v in _STATE_TO_PB.items()}

log = logging.getLogger("eegpi.rpc")

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
_out_of_range_log: dict[str, LogThrottle] = {}
"""Per field: a line a minute at most, not one per status update."""


def _clamped(value: int, top: int, field: str) -> int:
    """``value`` within 0..top, for an unsigned protobuf field.

    protobuf raises ValueError ("Value out of range") on anything else, which would turn a bad
    counter into an UNKNOWN answer to every status call; a clamped value is logged instead.
    """
    if 0 <= value <= top:
        return value
    if _out_of_range_log.setdefault(field, LogThrottle()).allow() is not None:
        log.warning("%s is %d, outside 0..%d: reported clamped (a counting bug)", field, value, top)
    return min(max(value, 0), top)


def _u32(value: int, field: str) -> int:
    return _clamped(value, U32_MAX, field)


def _u64(value: int, field: str) -> int:
    return _clamped(value, U64_MAX, field)


def state_to_pb(state: PipelineState) -> pb.PipelineState:
    return _STATE_TO_PB[state]


def state_from_pb(state: int) -> PipelineState:
    """UNSPECIFIED (a server older or newer than us) reads as STOPPED rather than failing."""
    return _STATE_FROM_PB.get(int(state), PipelineState.STOPPED)


def _timestamp(unix_seconds: float | None) -> Timestamp | None:
    # Beyond year 9999 (or NaN) protobuf cannot represent it: report no time rather than fail.
    if unix_seconds is None or not 0 <= unix_seconds < 253_402_300_800:
        return None
    # Split before scaling: a float holds a Unix time to ~0.2 us, not nanoseconds.
    seconds = math.floor(unix_seconds)
    nanos = min(round((unix_seconds - seconds) * 1e9), 999_999_999)
    return Timestamp(seconds=seconds, nanos=nanos)


def _unix_seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def device_info_to_pb(info: DeviceInfo) -> pb.DeviceInfo:
    return pb.DeviceInfo(
        backend=info.backend,
        path=info.path,
        chip=info.chip,
        id_register=_u32(info.id_register, "device.id_register"),
        chips=_u32(info.chips, "device.chips"),
        channels=_u32(info.channels, "device.channels"),
        sample_rate=_u32(info.sample_rate, "device.sample_rate"),
        reader=info.reader,
        scheduling=info.scheduling,
        memory_locked=info.memory_locked,
        acquisition=info.acquisition,
    )


def device_info_from_pb(msg: pb.DeviceInfo) -> DeviceInfo:
    return DeviceInfo(
        backend=msg.backend,
        path=msg.path,
        chip=msg.chip,
        id_register=msg.id_register,
        chips=msg.chips,
        channels=msg.channels,
        sample_rate=msg.sample_rate,
        reader=msg.reader,
        scheduling=msg.scheduling,
        memory_locked=msg.memory_locked,
        acquisition=msg.acquisition,
    )


def pipeline_status_to_pb(status: PipelineStatus) -> pb.PipelineStatus:
    return pb.PipelineStatus(
        name=status.name,
        state=state_to_pb(status.state),
        last_error=status.last_error,
        start_time=_timestamp(status.start_time),
        samples_acquired=_u64(status.samples_acquired, "samples_acquired"),
        samples_dropped=_u64(status.samples_dropped, "samples_dropped"),
        topics=[
            pb.TopicStatus(name=t.name, subscribers=_u32(t.subscribers, "topic subscribers"))
            for t in status.topics
        ],
        device=device_info_to_pb(status.device) if status.device is not None else None,
        sample_rate_measured_hz=status.sample_rate_measured_hz,
        clock_ppm=status.clock_ppm,
        timestamp_residual_us=status.timestamp_residual_us,
        trigger_markers=_u64(status.trigger_markers, "trigger_markers"),
        trigger_lost=_u64(status.trigger_lost, "trigger_lost"),
        gpio_markers=_u64(status.gpio_markers, "gpio_markers"),
        recordings=[recording_status_to_pb(r) for r in status.recordings],
        stages=[stage_params_to_pb(st) for st in status.stages],
    )


def pipeline_status_from_pb(msg: pb.PipelineStatus) -> PipelineStatus:
    return PipelineStatus(
        name=msg.name,
        state=state_from_pb(msg.state),
        last_error=msg.last_error,
        start_time=_unix_seconds(msg.start_time) if msg.HasField("start_time") else None,
        samples_acquired=msg.samples_acquired,
        samples_dropped=msg.samples_dropped,
        topics=tuple(TopicStatus(name=t.name, subscribers=t.subscribers) for t in msg.topics),
        device=device_info_from_pb(msg.device) if msg.HasField("device") else None,
        sample_rate_measured_hz=msg.sample_rate_measured_hz,
        clock_ppm=msg.clock_ppm,
        timestamp_residual_us=msg.timestamp_residual_us,
        trigger_markers=msg.trigger_markers,
        trigger_lost=msg.trigger_lost,
        gpio_markers=msg.gpio_markers,
        recordings=tuple(recording_status_from_pb(r) for r in msg.recordings),
        stages=tuple(stage_params_from_pb(st) for st in msg.stages),
    )


def _integral(value: Any) -> Any:
    """Struct numbers are doubles: whole ones back to int (``order: 4``, ``gain: 12``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def struct_to_params(msg: Struct) -> dict[str, Any]:
    """A Struct of params as plain values, whole numbers as int (the YAML loader's types)."""
    plain: dict[str, Any] = _integral(json_format.MessageToDict(msg))
    return plain


def stage_params_to_pb(stage: StageParams) -> pb.StageParams:
    params = Struct()
    params.update(stage.params)
    return pb.StageParams(
        pipeline=stage.pipeline,
        name=stage.name,
        type=stage.type_name,
        params=params,
        live=list(stage.live),
    )


def stage_params_from_pb(msg: pb.StageParams) -> StageParams:
    return StageParams(
        pipeline=msg.pipeline,
        name=msg.name,
        type_name=msg.type,
        params=struct_to_params(msg.params),
        live=tuple(msg.live),
    )


def recording_status_to_pb(status: RecordingStatus) -> pb.RecordingStatus:
    return pb.RecordingStatus(
        stage=status.stage,
        active=status.active,
        file=status.file,
        duration_s=status.duration_s,
        bytes=_u64(status.bytes, "recording bytes"),
        samples_dropped=_u64(status.samples_dropped, "recording samples_dropped"),
        last_error=status.last_error,
    )


def recording_status_from_pb(msg: pb.RecordingStatus) -> RecordingStatus:
    return RecordingStatus(
        stage=msg.stage,
        active=msg.active,
        file=msg.file,
        duration_s=msg.duration_s,
        bytes=msg.bytes,
        samples_dropped=msg.samples_dropped,
        last_error=msg.last_error,
    )


def recording_file_to_pb(file: RecordingFile) -> pb.RecordingFile:
    return pb.RecordingFile(
        name=file.name,
        bytes=_u64(file.bytes, "recording file bytes"),
        start_time=_timestamp(file.start_time),
        duration_s=file.duration_s,
        complete=file.complete,
    )


def recording_file_from_pb(msg: pb.RecordingFile) -> RecordingFile:
    return RecordingFile(
        name=msg.name,
        bytes=msg.bytes,
        start_time=_unix_seconds(msg.start_time) if msg.HasField("start_time") else None,
        duration_s=msg.duration_s,
        complete=msg.complete,
    )


def pipeline_info_to_pb(info: PipelineInfo) -> pb.PipelineInfo:
    return pb.PipelineInfo(
        name=info.name,
        path=info.path,
        stages=list(info.stages),
        topics=list(info.topics),
        state=state_to_pb(info.state),
    )


def pipeline_info_from_pb(msg: pb.PipelineInfo) -> PipelineInfo:
    return PipelineInfo(
        name=msg.name,
        path=msg.path,
        stages=tuple(msg.stages),
        topics=tuple(msg.topics),
        state=state_from_pb(msg.state),
    )


def load_error_from_pb(msg: pb.PipelineLoadError) -> LoadError:
    return LoadError(path=msg.path, message=msg.message)


def _load_errors_to_pb(errors: Iterable[LoadError]) -> list[pb.PipelineLoadError]:
    return [pb.PipelineLoadError(path=e.path, message=e.message) for e in errors]


def pipeline_list_to_pb(
    pipelines: Iterable[PipelineInfo], errors: Iterable[LoadError]
) -> pb.ListPipelinesResponse:
    return pb.ListPipelinesResponse(
        pipelines=[pipeline_info_to_pb(p) for p in pipelines],
        errors=_load_errors_to_pb(errors),
    )


def reload_result_to_pb(result: ReloadResult) -> pb.ReloadPipelinesResponse:
    return pb.ReloadPipelinesResponse(
        loaded=list(result.loaded), errors=_load_errors_to_pb(result.errors)
    )


def identity_to_pb(report: DeviceReport) -> dpb.Identity:
    return dpb.Identity(
        backend=report.backend,
        path=report.path,
        chip=report.chip,
        id_register=_u32(report.id_register, "identity.id_register"),
        revision=_u32(report.revision, "identity.revision"),
        chips=_u32(report.chips, "identity.chips"),
        channels=_u32(report.channels, "identity.channels"),
        sample_rate=_u32(report.sample_rate, "identity.sample_rate"),
        held_by=report.held_by,
    )


def registers_to_pb(report: DeviceReport) -> dpb.RegisterDump:
    return dpb.RegisterDump(
        registers=[
            dpb.Register(
                address=_u32(r.address, "register address"),
                name=r.name,
                value=_u32(r.value, "register value"),
            )
            for r in report.registers
        ]
    )


def registers_from_pb(msg: dpb.RegisterDump) -> tuple[RegisterValue, ...]:
    return tuple(
        RegisterValue(address=r.address, name=r.name, value=r.value) for r in msg.registers
    )


def lead_off_to_pb(report: DeviceReport) -> dpb.LeadOffStatus:
    return dpb.LeadOffStatus(
        channels=[
            dpb.LeadOffChannel(channel=c.channel, p_off=c.p_off, n_off=c.n_off, sensed=c.sensed)
            for c in report.lead_off
        ],
        bias_off=report.bias_off,
    )


def lead_off_from_pb(msg: dpb.LeadOffStatus) -> tuple[tuple[LeadOffChannel, ...], bool]:
    """The channels and the bias-off flag."""
    channels = tuple(
        LeadOffChannel(channel=c.channel, p_off=c.p_off, n_off=c.n_off, sensed=c.sensed)
        for c in msg.channels
    )
    return channels, msg.bias_off


def marker_to_pb(pipeline: str, marker: Marker) -> pb.MarkerReply:
    return pb.MarkerReply(
        pipeline=pipeline,
        label=marker.label,
        seq=max(0, marker.seq),
        time=_timestamp(marker.timestamp),
        source=marker.source,
    )


def marker_time(request: pb.PostMarkerRequest) -> float | None:
    """The event time a PostMarker request gives, None when it leaves it to the daemon."""
    return _unix_seconds(request.time) if request.HasField("time") else None
