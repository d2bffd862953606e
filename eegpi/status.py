"""The status vocabulary shared by every layer: pipeline states, device reports, the control plane.

Plain records the control plane reports (the rpc layer converts them to protobuf). It sits at the
package top, beside :mod:`eegpi.stream` and :mod:`eegpi.exc`, so the hardware and pipeline layers
can describe themselves without reaching up into the daemon.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from eegpi.impedance.check import ImpedanceRequest
    from eegpi.impedance.report import ImpedanceReport
    from eegpi.stream import Marker

__all__ = [
    "AcquisitionReport",
    "ControlPlane",
    "DeviceInfo",
    "DeviceReport",
    "LeadOffChannel",
    "LoadError",
    "PipelineInfo",
    "PipelineState",
    "PipelineStatus",
    "RecordingFile",
    "RecordingStatus",
    "RegisterValue",
    "ReloadResult",
    "StageParams",
    "TopicStatus",
]


class PipelineState(enum.Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    FAILED = "FAILED"


@dataclass(frozen=True)
class TopicStatus:
    name: str
    subscribers: int


@dataclass(frozen=True)
class DeviceInfo:
    backend: str
    path: str
    chip: str
    id_register: int
    chips: int
    channels: int
    sample_rate: int
    reader: str = ""
    """The acquisition reader running: ``python`` or ``native`` (empty while not acquiring)."""
    scheduling: str = ""
    """What the reader's thread was granted: ``SCHED_FIFO``, ``nice`` or ``normal``."""
    memory_locked: bool = False
    """The acquisition process's pages are locked in RAM (:mod:`eegpi.hardware.memlock`)."""
    acquisition: str = ""
    """Where the reader runs: ``process`` or ``thread`` (``device.acquisition``)."""


@dataclass(frozen=True)
class AcquisitionReport:
    """How the running acquisition is served: what a user checks first when conversions are
    lost under load (the pipeline status's ``device``)."""

    reader: str
    """``python`` or ``native``."""
    scheduling: str
    """Granted to the reader's thread: ``SCHED_FIFO``, ``nice``, or ``normal``."""
    memory_locked: bool
    """The acquisition process's pages are locked in RAM (never in ``acquisition: thread``)."""
    acquisition: str
    """``process`` or ``thread``."""


@dataclass(frozen=True)
class RecordingStatus:
    """One ``recorder`` stage of a pipeline: the file it writes (or last wrote) and its health."""

    stage: str
    active: bool = False
    """A recording is in progress."""
    file: str = ""
    """The current (or last) file, relative to the daemon's ``data_dir``."""
    duration_s: float = 0.0
    """Seconds of samples in ``file`` (gaps included: the file's time axis)."""
    bytes: int = 0
    """Size of ``file``."""
    samples_dropped: int = 0
    """Samples the recorder itself could not keep (its queue was full), this run."""
    last_error: str = ""
    """Why the last recording ended by itself (disk full, say); empty when none did."""


@dataclass(frozen=True)
class RecordingFile:
    """A recording in the daemon's ``data_dir``."""

    name: str
    """Path relative to ``data_dir`` (what ``/recordings/NAME`` serves)."""
    bytes: int
    start_time: float | None
    """Unix time of the header's start (whole seconds), None when unreadable."""
    duration_s: float
    complete: bool
    """The header was finalised (False while being written, or after a crash until repaired)."""


@dataclass(frozen=True)
class StageParams:
    """A stage and the params it runs with now (``UpdateStage`` changes the live ones)."""

    pipeline: str
    name: str
    type_name: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    """Every param as JSON-ready data."""
    live: tuple[str, ...] = ()
    """The params that may change while the pipeline runs."""


@dataclass(frozen=True)
class PipelineStatus:
    name: str
    state: PipelineState
    last_error: str = ""
    start_time: float | None = None
    """Unix time the pipeline started, None when it never ran."""
    samples_acquired: int = 0
    samples_dropped: int = 0
    topics: tuple[TopicStatus, ...] = ()
    device: DeviceInfo | None = None
    sample_rate_measured_hz: float = 0.0
    """The sample clock (see ``SourceStats``): measured rate, ppm off nominal, fit residual."""
    clock_ppm: float = 0.0
    timestamp_residual_us: float = 0.0
    recordings: tuple[RecordingStatus, ...] = ()
    """One per ``recorder`` stage of the pipeline (of the last run while it is stopped)."""
    trigger_markers: int = 0
    """Hardware markers of the run (see ``SourceStats``): trigger edges placed, trigger edges
    lost, GPIO level changes placed."""
    trigger_lost: int = 0
    gpio_markers: int = 0
    stages: tuple[StageParams, ...] = ()
    """While it runs: every stage's params as they are now (after any ``UpdateStage``)."""


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    path: str
    stages: tuple[str, ...]
    """``name:type`` in execution order."""
    topics: tuple[str, ...]
    state: PipelineState


@dataclass(frozen=True)
class LoadError:
    path: str
    message: str


@dataclass(frozen=True)
class ReloadResult:
    loaded: tuple[str, ...]
    errors: tuple[LoadError, ...]


@dataclass(frozen=True)
class RegisterValue:
    address: int
    name: str
    value: int


@dataclass(frozen=True)
class LeadOffChannel:
    channel: str
    p_off: bool
    n_off: bool
    sensed: bool


@dataclass(frozen=True)
class DeviceReport:
    """What the Device service reports."""

    backend: str
    path: str
    chip: str
    id_register: int
    revision: int
    chips: int
    channels: int
    sample_rate: int = 0
    held_by: str = ""
    registers: tuple[RegisterValue, ...] = ()
    lead_off: tuple[LeadOffChannel, ...] = ()
    bias_off: bool = False
    extra: dict[str, str] = field(default_factory=dict)


class ControlPlane(Protocol):
    """What the gRPC servicers call; implemented by :class:`eegpi.daemon.manager.PipelineManager`.

    Raises PipelineNotFound (NOT_FOUND), PipelineStateError/DeviceBusy (FAILED_PRECONDITION),
    ConfigError (INVALID_ARGUMENT), HardwareError (UNAVAILABLE).
    """

    def list_pipelines(self) -> tuple[list[PipelineInfo], list[LoadError]]: ...

    async def start(self, name: str) -> PipelineStatus: ...

    async def stop(self, name: str) -> PipelineStatus: ...

    def status(self, name: str = "") -> list[PipelineStatus]: ...

    def watch(self, name: str = "") -> AsyncIterator[PipelineStatus]: ...

    async def reload(self) -> ReloadResult: ...

    async def device_report(self) -> DeviceReport: ...

    async def measure_impedance(self, request: ImpedanceRequest) -> ImpedanceReport: ...

    async def start_recording(self, pipeline: str, stage: str = "") -> list[RecordingStatus]: ...

    async def stop_recording(self, pipeline: str, stage: str = "") -> list[RecordingStatus]: ...

    async def list_recordings(self) -> list[RecordingFile]: ...

    def post_marker(
        self, name: str, label: str, origin: str, at: float | None = None
    ) -> tuple[str, Marker]: ...

    async def update_stage(
        self, pipeline: str, stage: str, changes: dict[str, Any]
    ) -> StageParams: ...
