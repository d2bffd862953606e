"""PipelineControl and Device servicers: thin adapters over the daemon's ControlPlane.

Each method converts the request, calls the control plane and converts the answer back. Domain
errors become gRPC status codes with the exception's message as details, so a client never sees
UNKNOWN: anything unexpected is logged with its traceback and reported as INTERNAL.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from eegpi.exc import (
    ConfigError,
    EegpiError,
    HardwareError,
    PipelineNotFound,
    PipelineStateError,
    StageError,
)
from eegpi.rpc import convert
from eegpi.rpc import impedance as impedance_rpc
from eegpi.status import ControlPlane
from eegpi.v1 import control_pb2 as pb
from eegpi.v1 import control_pb2_grpc, device_pb2_grpc
from eegpi.v1 import device_pb2 as dpb

__all__ = [
    "ERROR_KIND_KEY",
    "DeviceServicer",
    "PipelineControlServicer",
    "name_problem",
    "status_code_for",
]

log = logging.getLogger("eegpi.rpc")

ERROR_KIND_KEY = "eegpi-error"
"""Trailing metadata naming the eegpi exception behind an error status.

Lets a client tell a daemon-reported UNAVAILABLE (the chip does not answer) from a transport
UNAVAILABLE (the daemon is not there)."""

NAME_REQUIRED = "name is required; try ListPipelines"
MAX_NAME_CHARS = 128
"""Longer names are refused unread: no pipeline has one, and they must not be echoed back."""
MAX_DETAILS_CHARS = 1000
"""Error details are cut here: they travel in a header, and peers cap headers at 8-16 KiB."""

# Most specific first: DeviceBusy is a PipelineStateError.
_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (PipelineNotFound, grpc.StatusCode.NOT_FOUND),
    (PipelineStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (HardwareError, grpc.StatusCode.UNAVAILABLE),
    # A stage that cannot open (unwritable recording dir, say) needs fixing before a retry.
    (StageError, grpc.StatusCode.FAILED_PRECONDITION),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)


def status_code_for(exc: BaseException) -> grpc.StatusCode:
    """The status code an exception from the control plane is reported with."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _bounded(details: str) -> str:
    if len(details) <= MAX_DETAILS_CHARS:
        return details
    return details[: MAX_DETAILS_CHARS - 20] + f"... ({len(details)} chars)"


async def _abort(context: Any, code: grpc.StatusCode, details: str, kind: str) -> NoReturn:
    await context.abort(code, _bounded(details), trailing_metadata=((ERROR_KIND_KEY, kind),))
    raise AssertionError("context.abort returned")  # pragma: no cover


@contextlib.asynccontextmanager
async def _reported(context: Any, what: str) -> AsyncIterator[None]:
    """Turn an exception raised inside the block into the matching gRPC status."""
    try:
        yield
    except grpc.aio.AbortError:
        raise  # an abort already in flight
    except EegpiError as exc:
        await _abort(context, status_code_for(exc), str(exc), type(exc).__name__)
    except Exception as exc:
        code = status_code_for(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("%s failed unexpectedly", what)
            details = f"internal error in {what}: {type(exc).__name__}: {exc}; see the daemon log"
        else:
            details = str(exc) or type(exc).__name__
        await _abort(context, code, details, type(exc).__name__)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a pipeline, without echoing it; None when it could."""
    if len(name) > MAX_NAME_CHARS:
        return f"name is {len(name)} characters long; pipeline names have at most {MAX_NAME_CHARS}"
    if not name.isprintable():
        return "name contains control characters; pipeline names are letters, digits, _ and -"
    return None


async def _checked_name(name: str, context: Any, *, required: bool) -> str:
    """``name`` stripped; INVALID_ARGUMENT when it is missing but required, or unusable."""
    name = name.strip()
    problem = NAME_REQUIRED if required and not name else name_problem(name)
    if problem is not None:
        await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem, "ConfigError")
    return name


class PipelineControlServicer(control_pb2_grpc.PipelineControlServicer):
    """eegpi.v1.PipelineControl over a ControlPlane."""

    def __init__(self, control: ControlPlane) -> None:
        self._control = control

    async def ListPipelines(
        self, request: pb.ListPipelinesRequest, context: Any
    ) -> pb.ListPipelinesResponse:
        async with _reported(context, "ListPipelines"):
            pipelines, errors = self._control.list_pipelines()
        return convert.pipeline_list_to_pb(pipelines, errors)

    async def StartPipeline(
        self, request: pb.StartPipelineRequest, context: Any
    ) -> pb.PipelineStatus:
        name = await _checked_name(request.name, context, required=True)
        async with _reported(context, "StartPipeline"):
            status = await self._control.start(name)
        return convert.pipeline_status_to_pb(status)

    async def StopPipeline(
        self, request: pb.StopPipelineRequest, context: Any
    ) -> pb.PipelineStatus:
        name = await _checked_name(request.name, context, required=True)
        async with _reported(context, "StopPipeline"):
            status = await self._control.stop(name)
        return convert.pipeline_status_to_pb(status)

    async def GetStatus(self, request: pb.GetStatusRequest, context: Any) -> pb.GetStatusResponse:
        name = await _checked_name(request.name, context, required=False)
        async with _reported(context, "GetStatus"):
            statuses = self._control.status(name)
        return pb.GetStatusResponse(pipelines=[convert.pipeline_status_to_pb(s) for s in statuses])

    async def WatchStatus(
        self, request: pb.WatchStatusRequest, context: Any
    ) -> AsyncIterator[pb.PipelineStatus]:
        # Runs until the client cancels (CancelledError passes through `_reported`) or the
        # control plane ends the stream (daemon shutting down).
        name = await _checked_name(request.name, context, required=False)
        async with _reported(context, "WatchStatus"):
            updates = self._control.watch(name)
            try:
                async for status in updates:
                    yield convert.pipeline_status_to_pb(status)
            finally:
                aclose = getattr(updates, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def ReloadPipelines(
        self, request: pb.ReloadPipelinesRequest, context: Any
    ) -> pb.ReloadPipelinesResponse:
        async with _reported(context, "ReloadPipelines"):
            result = await self._control.reload()
        return convert.reload_result_to_pb(result)

    async def StartRecording(self, request: pb.RecordingRequest, context: Any) -> pb.RecordingReply:
        name = await _checked_name(request.pipeline, context, required=True)
        stage = await _checked_name(request.stage, context, required=False)
        async with _reported(context, "StartRecording"):
            statuses = await self._control.start_recording(name, stage)
        return pb.RecordingReply(recordings=[convert.recording_status_to_pb(s) for s in statuses])

    async def StopRecording(self, request: pb.RecordingRequest, context: Any) -> pb.RecordingReply:
        name = await _checked_name(request.pipeline, context, required=True)
        stage = await _checked_name(request.stage, context, required=False)
        async with _reported(context, "StopRecording"):
            statuses = await self._control.stop_recording(name, stage)
        return pb.RecordingReply(recordings=[convert.recording_status_to_pb(s) for s in statuses])

    async def PostMarker(self, request: pb.PostMarkerRequest, context: Any) -> pb.MarkerReply:
        name = await _checked_name(request.pipeline, context, required=False)
        async with _reported(context, "PostMarker"):
            pipeline, marker = self._control.post_marker(
                name, request.label, "grpc", convert.marker_time(request)
            )
        return convert.marker_to_pb(pipeline, marker)

    async def UpdateStage(self, request: pb.UpdateStageRequest, context: Any) -> pb.StageParams:
        name = await _checked_name(request.pipeline, context, required=True)
        stage = await _checked_name(request.stage, context, required=True)
        async with _reported(context, "UpdateStage"):
            changes = convert.struct_to_params(request.params)
            result = await self._control.update_stage(name, stage, changes)
        return convert.stage_params_to_pb(result)

    async def ListRecordings(
        self, request: pb.ListRecordingsRequest, context: Any
    ) -> pb.ListRecordingsResponse:
        async with _reported(context, "ListRecordings"):
            files = await self._control.list_recordings()
        return pb.ListRecordingsResponse(
            recordings=[convert.recording_file_to_pb(f) for f in files]
        )


class DeviceServicer(device_pb2_grpc.DeviceServicer):
    """eegpi.v1.Device over a ControlPlane."""

    def __init__(self, control: ControlPlane) -> None:
        self._control = control

    async def GetIdentity(self, request: dpb.GetIdentityRequest, context: Any) -> dpb.Identity:
        async with _reported(context, "GetIdentity"):
            report = await self._control.device_report()
        return convert.identity_to_pb(report)

    async def GetRegisters(
        self, request: dpb.GetRegistersRequest, context: Any
    ) -> dpb.RegisterDump:
        async with _reported(context, "GetRegisters"):
            report = await self._control.device_report()
        return convert.registers_to_pb(report)

    async def GetLeadOff(self, request: dpb.GetLeadOffRequest, context: Any) -> dpb.LeadOffStatus:
        async with _reported(context, "GetLeadOff"):
            report = await self._control.device_report()
        return convert.lead_off_to_pb(report)

    async def MeasureImpedance(
        self, request: dpb.MeasureImpedanceRequest, context: Any
    ) -> dpb.ImpedanceResult:
        async with _reported(context, "MeasureImpedance"):
            wanted = impedance_rpc.request_from_pb(request)
            impedance_rpc.check_deadline(wanted, context.time_remaining())
            report = await self._control.measure_impedance(wanted)
        return impedance_rpc.result_to_pb(report)
