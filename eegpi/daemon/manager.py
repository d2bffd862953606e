"""The pipeline manager: what the gRPC API starts, stops, lists and watches.

It lives on the daemon's event loop. Opening a pipeline touches hardware (resets, waits of
hundreds of milliseconds), so ``start`` and ``stop`` run that part in a worker thread and the
loop keeps serving other clients meanwhile. A pipeline thread that dies reports back through a
thread-safe callback; the manager then marks the pipeline FAILED with the reason.

Reloading never disturbs what runs: a running pipeline keeps its spec until it is stopped;
the new file applies at its next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from eegpi.exc import (
    ConfigError,
    DeviceBusy,
    EegpiError,
    PipelineNotFound,
    PipelineStateError,
)
from eegpi.hardware.config import DeviceConfig
from eegpi.pipeline.runner import PipelineRunner
from eegpi.pipeline.spec import PipelineSpec, load_pipeline_file
from eegpi.pipeline.stage import SourceStats, StageContext, TopicPublisher
from eegpi.status import (
    DeviceInfo,
    DeviceReport,
    LoadError,
    PipelineInfo,
    PipelineState,
    PipelineStatus,
    ReloadResult,
    TopicStatus,
)

__all__ = ["PipelineManager"]

log = logging.getLogger("eegpi.daemon")

_ACTIVE = (PipelineState.STARTING, PipelineState.RUNNING, PipelineState.STOPPING)
_WATCH_PERIOD_S = 1.0


@dataclass
class _Entry:
    spec: PipelineSpec
    state: PipelineState = PipelineState.STOPPED
    runner: PipelineRunner | None = None
    last_error: str = ""
    start_time: float | None = None
    stats: SourceStats | None = None
    device: DeviceInfo | None = None
    next_spec: PipelineSpec | None = None
    """A reloaded file for a pipeline that was running at reload time."""
    removed: bool = False
    """The file disappeared at a reload while the pipeline ran; drop it when it stops."""


class PipelineManager:
    """Knows every pipeline in the directory and runs them on request."""

    def __init__(
        self,
        *,
        pipelines_dir: Path,
        device: DeviceConfig,
        publisher: TopicPublisher,
        subscriber_counts: Callable[[], Mapping[str, int]],
        data_dir: str = ".",
        on_topics: Callable[[set[str]], None] = lambda topics: None,
    ) -> None:
        self.pipelines_dir = pipelines_dir
        self._device = device
        self._publisher = publisher
        self._subscriber_counts = subscriber_counts
        self._data_dir = data_dir
        self._on_topics = on_topics
        """Told every topic the loaded pipelines can publish (the broker's unknown_topic check)."""
        self._entries: dict[str, _Entry] = {}
        self._load_errors: list[LoadError] = []
        self._changed = asyncio.Event()
        """Set (and replaced) on every change; watchers wait on the one they saw."""
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- loading -----------------------------------------------------------------------------

    def _scan(self) -> tuple[dict[str, PipelineSpec], list[LoadError]]:
        specs: dict[str, PipelineSpec] = {}
        errors: list[LoadError] = []
        if not self.pipelines_dir.is_dir():
            errors.append(LoadError(str(self.pipelines_dir), "pipelines directory does not exist"))
            return specs, errors
        files = sorted(
            p for p in self.pipelines_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
        )
        for path in files:
            try:
                spec = load_pipeline_file(path)
            except ConfigError as exc:
                errors.append(LoadError(str(path), str(exc)))
                continue
            if spec.name in specs:
                errors.append(
                    LoadError(
                        str(path),
                        f"{path}: pipeline name '{spec.name}' is already used by "
                        f"{specs[spec.name].path}",
                    )
                )
                continue
            specs[spec.name] = spec
        for err in errors:
            log.error("pipeline not loaded: %s", err.message)
        return specs, errors

    def load(self) -> ReloadResult:
        """(Re)read the pipelines directory; what runs keeps running."""
        specs, errors = self._scan()
        entries: dict[str, _Entry] = {}
        for name, spec in specs.items():
            old = self._entries.get(name)
            if old is not None and old.state in _ACTIVE:
                old.next_spec = spec
                old.removed = False
                entries[name] = old
            elif old is not None:
                old.spec = spec
                entries[name] = old
            else:
                entries[name] = _Entry(spec)
        for name, old in self._entries.items():
            if name not in entries and old.state in _ACTIVE:
                old.removed = True
                entries[name] = old
        self._entries = entries
        self._load_errors = errors
        self._on_topics({t for e in entries.values() for t in (*e.spec.topics, *_next_topics(e))})
        self._notify()
        return ReloadResult(tuple(sorted(specs)), tuple(errors))

    async def reload(self) -> ReloadResult:
        return self.load()

    # -- queries -----------------------------------------------------------------------------

    def list_pipelines(self) -> tuple[list[PipelineInfo], list[LoadError]]:
        infos = [
            PipelineInfo(
                name=name,
                path=e.spec.path,
                stages=tuple(f"{s.name}:{s.type_name}" for s in e.spec.stages),
                topics=e.spec.topics,
                state=e.state,
            )
            for name, e in sorted(self._entries.items())
        ]
        return infos, list(self._load_errors)

    def status(self, name: str = "") -> list[PipelineStatus]:
        if name:
            return [self._status(name, self._get(name))]
        return [self._status(n, e) for n, e in sorted(self._entries.items())]

    def _get(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none"
            raise PipelineNotFound(f"no pipeline named '{name}' (known: {known})")
        return entry

    def _status(self, name: str, e: _Entry) -> PipelineStatus:
        stats = e.stats or SourceStats()
        if e.runner is not None:
            stats = e.runner.snapshot().stats
        counts = self._subscriber_counts()
        topics = tuple(TopicStatus(t, int(counts.get(t, 0))) for t in e.spec.topics)
        return PipelineStatus(
            name=name,
            state=e.state,
            last_error=e.last_error,
            start_time=e.start_time,
            samples_acquired=stats.samples_acquired,
            samples_dropped=stats.samples_dropped,
            topics=topics,
            device=e.device,
        )

    def running(self) -> list[str]:
        return [n for n, e in self._entries.items() if e.state is PipelineState.RUNNING]

    # -- control -----------------------------------------------------------------------------

    async def start(self, name: str) -> PipelineStatus:
        entry = self._get(name)
        if entry.state in _ACTIVE:
            raise PipelineStateError(
                f"pipeline '{name}' is already {entry.state.value.lower()}; "
                f"stop it first (eegpi stop {name})"
            )
        if entry.next_spec is not None:
            entry.spec, entry.next_spec = entry.next_spec, None
        spec = entry.spec
        for other_name, other in self._entries.items():
            if other is entry or other.state not in _ACTIVE:
                continue
            if spec.claims_device and other.spec.claims_device:
                raise DeviceBusy(
                    f"pipeline '{other_name}' holds the ADS1299; stop it first "
                    f"(eegpi stop {other_name})"
                )
            shared = set(spec.topics) & set(other.spec.topics)
            if shared:
                raise PipelineStateError(
                    f"topic(s) {', '.join(sorted(shared))} already published by running "
                    f"pipeline '{other_name}'; stop it first"
                )

        self._loop = asyncio.get_running_loop()
        ctx = StageContext(
            pipeline=name, device=self._device, publisher=self._publisher, data_dir=self._data_dir
        )
        runner = PipelineRunner(spec, ctx)
        runner.on_change = lambda: self._from_thread(name, runner)
        entry.state, entry.last_error, entry.runner = PipelineState.STARTING, "", runner
        entry.stats, entry.device = None, None
        self._notify()
        try:
            await asyncio.to_thread(self._open_and_start, runner)
        except EegpiError as exc:
            entry.state, entry.last_error, entry.runner = PipelineState.FAILED, str(exc), None
            self._notify()
            log.error("pipeline %s failed to start: %s", name, exc)
            raise
        except Exception as exc:
            entry.state, entry.runner = PipelineState.FAILED, None
            entry.last_error = f"internal error: {type(exc).__name__}: {exc}"
            self._notify()
            log.exception("pipeline %s failed to start", name)
            raise PipelineStateError(f"pipeline '{name}' failed to start: {exc}") from exc
        snap = runner.snapshot()
        entry.start_time = snap.started_at
        entry.device = _device_info(runner)
        if snap.error:  # died between start and here
            entry.state, entry.last_error = PipelineState.FAILED, snap.error
            entry.stats, entry.runner = snap.stats, None
        else:
            entry.state = PipelineState.RUNNING
            log.info("pipeline %s running (topics: %s)", name, ", ".join(spec.topics) or "none")
        self._notify()
        return self._status(name, entry)

    @staticmethod
    def _open_and_start(runner: PipelineRunner) -> None:
        runner.open()
        try:
            runner.start()
        except BaseException:
            runner.stop()
            raise

    async def stop(self, name: str) -> PipelineStatus:
        entry = self._get(name)
        if entry.state in (PipelineState.STARTING, PipelineState.STOPPING):
            raise PipelineStateError(
                f"pipeline '{name}' is {entry.state.value.lower()}; try again in a moment"
            )
        runner = entry.runner
        if runner is not None:
            entry.state = PipelineState.STOPPING
            self._notify()
            try:
                await asyncio.to_thread(runner.stop)
            finally:
                self._finish(entry, runner)
        elif entry.state is PipelineState.FAILED:
            entry.state = PipelineState.STOPPED
            self._notify()
        status = self._status(name, entry)
        if entry.removed:
            del self._entries[name]
        return status

    async def stop_all(self) -> None:
        for name in [n for n, e in self._entries.items() if e.runner is not None]:
            with contextlib.suppress(EegpiError):
                await self.stop(name)

    def _finish(self, entry: _Entry, runner: PipelineRunner) -> None:
        snap = runner.snapshot()
        entry.stats = snap.stats
        entry.runner = None
        if snap.error:
            entry.state, entry.last_error = PipelineState.FAILED, snap.error
        else:
            entry.state = PipelineState.STOPPED
        log.info(
            "pipeline %s %s (%d samples, %d dropped)",
            entry.spec.name,
            entry.state.value.lower(),
            snap.stats.samples_acquired,
            snap.stats.samples_dropped,
        )
        self._notify()

    def _from_thread(self, name: str, runner: PipelineRunner) -> None:
        """Called by a pipeline thread when it ends (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closing during shutdown
            loop.call_soon_threadsafe(self._runner_ended, name, runner)

    def _runner_ended(self, name: str, runner: PipelineRunner) -> None:
        entry = self._entries.get(name)
        if entry is None or entry.runner is not runner or entry.state is not PipelineState.RUNNING:
            return  # a stop() in progress handles it, or a newer run has begun
        self._finish(entry, entry.runner)
        if entry.removed:
            del self._entries[name]

    # -- watching ----------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def watch(self, name: str = "") -> AsyncIterator[PipelineStatus]:
        """Current status, then every change; counters refresh about once a second."""
        if name:
            self._get(name)
        last: dict[str, PipelineStatus] = {}
        while True:
            changed = self._changed
            try:
                statuses = self.status(name)
            except PipelineNotFound:
                return  # removed by a reload
            for st in statuses:
                if last.get(st.name) != st:
                    last[st.name] = st
                    yield st
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), _WATCH_PERIOD_S)

    # -- device ------------------------------------------------------------------------------

    async def device_report(self) -> DeviceReport:
        from dataclasses import replace

        for name, entry in self._entries.items():
            runner = entry.runner
            if runner is None or not entry.spec.claims_device or runner.source is None:
                continue
            report = runner.source.device_report()
            if isinstance(report, DeviceReport):
                return replace(report, held_by=name)
        from eegpi.hardware import probe

        result: DeviceReport = await asyncio.to_thread(probe, self._device)
        return result


def _next_topics(entry: _Entry) -> tuple[str, ...]:
    return entry.next_spec.topics if entry.next_spec is not None else ()


def _device_info(runner: PipelineRunner) -> DeviceInfo | None:
    source = runner.source
    if source is None:
        return None
    report = source.device_report()
    if not isinstance(report, DeviceReport):
        return None
    return DeviceInfo(
        backend=report.backend,
        path=report.path,
        chip=report.chip,
        id_register=report.id_register,
        chips=report.chips,
        channels=report.channels,
        sample_rate=report.sample_rate,
    )
