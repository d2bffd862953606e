"""The pipeline manager: what the gRPC API starts, stops, lists and watches.

It lives on the daemon's event loop. Opening a pipeline touches hardware (spawning the
acquisition process, resets, waits of hundreds of milliseconds), so that part runs in a worker
thread and the loop keeps serving other clients meanwhile.

Every start and stop is a task the manager owns; a caller only awaits it (shielded). A caller
that gives up (a gRPC deadline, Ctrl-C on the CLI) therefore changes nothing: the transition
completes, and its outcome shows in the status. Transitions of one pipeline run one after the
other: a stop asked for while it starts waits for the start and then stops it, a start asked
for while it stops waits for the stop and then starts, and a second start (or stop) joins the
one in flight. ``stop_all`` waits for whatever is in flight, so shutdown leaves no child behind.
Watchers are told every step (STARTING, RUNNING or FAILED, STOPPING, STOPPED).

A pipeline thread that dies reports back through a thread-safe callback once its stages are
closed; the manager then marks the pipeline FAILED with the reason. The counters of every run
(the runner keeps the source's final counts) stay in the status until the next start.

Reloading parses the files in a worker thread, one reload at a time, and never disturbs what
runs: a running pipeline keeps its spec until it is stopped; the new file applies at its next
start.

Params of a running pipeline's stages change live (``update_stage``): the runner checks and
applies them between ticks; the entry's spec and the file stay as they were, so the next start
uses the file again.

While a pipeline that claims the device is starting or stopping, the Device RPCs wait for it to
finish rather than open the device beside the acquisition process; a start waits for a device
probe in flight likewise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from eegpi.daemon.changes import StatusChanges
from eegpi.exc import (
    ConfigError,
    DeviceBusy,
    EegpiError,
    PipelineNotFound,
    PipelineStateError,
)
from eegpi.hardware.config import DeviceConfig
from eegpi.impedance.check import ImpedanceRequest, measure_idle, measure_source
from eegpi.impedance.report import ImpedanceReport
from eegpi.lazy import preload
from eegpi.pipeline.live import params_to_json
from eegpi.pipeline.runner import PipelineRunner
from eegpi.pipeline.spec import PipelineSpec, load_pipeline_file
from eegpi.pipeline.stage import SourceStage, SourceStats, StageContext, TopicPublisher
from eegpi.recording import Recorders, list_recordings, repair_unfinished
from eegpi.recording.http import serve_from
from eegpi.status import (
    AcquisitionReport,
    DeviceInfo,
    DeviceReport,
    LoadError,
    PipelineInfo,
    PipelineState,
    PipelineStatus,
    RecordingFile,
    RecordingStatus,
    ReloadResult,
    StageParams,
    TopicStatus,
)
from eegpi.stream import Marker

__all__ = ["PipelineManager"]

log = logging.getLogger("eegpi.daemon")

_ACTIVE = (PipelineState.STARTING, PipelineState.RUNNING, PipelineState.STOPPING)
_WATCH_PERIOD_S = 1.0
_WATCH_QUEUE = 64
"""Status changes a slow watcher may have waiting; beyond, the oldest go (it re-reads soon)."""

_Kind = Literal["start", "stop"]
_Work = Coroutine[Any, Any, PipelineStatus]


@dataclass
class _Op:
    """A start or stop the manager runs for a pipeline."""

    kind: _Kind
    task: asyncio.Task[PipelineStatus]


@dataclass
class _Entry:
    spec: PipelineSpec
    state: PipelineState = PipelineState.STOPPED
    runner: PipelineRunner | None = None
    last_error: str = ""
    start_time: float | None = None
    stats: SourceStats | None = None
    """The final counters of the last run (while no runner is attached)."""
    device: DeviceInfo | None = None
    next_spec: PipelineSpec | None = None
    """A reloaded file for a pipeline that was running at reload time."""
    removed: bool = False
    """The file disappeared at a reload while the pipeline ran; drop it when it stops."""
    op: _Op | None = None
    """The latest start or stop asked for (any earlier one finishes first)."""
    recorders: Recorders | None = None
    """The recorder stages of the current (or last) run."""

    def pending(self) -> _Op | None:
        op = self.op
        return op if op is not None and not op.task.done() else None

    @property
    def busy(self) -> bool:
        return self.state in _ACTIVE or self.pending() is not None


@dataclass
class _Watcher:
    name: str
    queue: asyncio.Queue[PipelineStatus] = field(
        default_factory=lambda: asyncio.Queue(_WATCH_QUEUE)
    )


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
        on_start: Callable[[str, tuple[str, ...]], None] = lambda name, topics: None,
    ) -> None:
        self.pipelines_dir = pipelines_dir
        self._device = device
        self._publisher = publisher
        self._subscriber_counts = subscriber_counts
        self._data_dir = data_dir
        self._on_topics = on_topics
        """Told every topic the loaded pipelines can publish (the broker's unknown_topic check)."""
        self._on_start = on_start
        """Told which pipeline publishes which topics when it starts (the broker's meta)."""
        self._entries: dict[str, _Entry] = {}
        self._load_errors: list[LoadError] = []
        self._watchers: list[_Watcher] = []
        self.changes = StatusChanges()
        """Fired at every status change the watchers are told of (the supervisor follows it)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        """Every transition and probe in flight (kept referenced until done)."""
        self._probe: asyncio.Task[DeviceReport] | None = None
        self._check: asyncio.Task[ImpedanceReport] | None = None
        """An impedance check that has the idle device open (starts and probes wait for it)."""
        self._reloading = asyncio.Lock()
        self._closing = False
        """Set by ``stop_all``: no new start is accepted."""
        serve_from(data_dir)  # the web port's /recordings/

    # -- loading -----------------------------------------------------------------------------

    def _scan(self) -> tuple[dict[str, PipelineSpec], list[LoadError]]:
        """Parse every pipeline file (blocking: run it off the event loop)."""
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
        """Read the pipelines directory (blocking: at start-up, before serving).

        Recordings a crash left unfinished are repaired first (no recorder runs yet).
        """
        repair_unfinished(Path(self._data_dir))
        return self._apply(*self._scan())

    async def reload(self) -> ReloadResult:
        """Re-read the pipelines directory in a worker thread; what runs keeps running."""
        async with self._reloading:
            specs, errors = await asyncio.to_thread(self._scan)
            return self._apply(specs, errors)

    def _apply(self, specs: dict[str, PipelineSpec], errors: list[LoadError]) -> ReloadResult:
        entries: dict[str, _Entry] = {}
        for name, spec in specs.items():
            old = self._entries.get(name)
            if old is not None and old.busy:
                old.next_spec = spec
                old.removed = False
                entries[name] = old
            elif old is not None:
                old.spec = spec
                entries[name] = old
            else:
                entries[name] = _Entry(spec)
        for name, old in self._entries.items():
            if name not in entries and old.busy:
                old.removed = True
                entries[name] = old
        self._entries = entries
        self._load_errors = errors
        self._on_topics({t for e in entries.values() for t in (*e.spec.topics, *_next_topics(e))})
        self._notify()
        return ReloadResult(tuple(sorted(specs)), tuple(errors))

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

    def preload(self, names: Iterable[str]) -> None:
        """Start importing, in the background, what the named pipelines' stages will need when
        they open (scipy's filter kernel, scipy.signal for decimate and band_power), while the
        servers start up."""
        specs = [self._entries[n].spec for n in names if n in self._entries]
        preload(m for spec in specs for st in spec.stages for m in st.cls.preload)

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
            stats = e.runner.snapshot().stats  # final counters once it is shutting down
        counts = self._subscriber_counts()
        topics = tuple(TopicStatus(t, int(counts.get(t, 0))) for t in e.spec.topics)
        return PipelineStatus(
            name=name,
            state=e.state,
            last_error=e.last_error,
            start_time=e.start_time,
            # The wire type is unsigned: a source's miscount must not turn every status call
            # into an error.
            samples_acquired=max(0, stats.samples_acquired),
            samples_dropped=max(0, stats.samples_dropped),
            topics=topics,
            device=e.device,
            sample_rate_measured_hz=stats.sample_rate_measured_hz,
            clock_ppm=stats.clock_ppm,
            timestamp_residual_us=stats.timestamp_residual_us,
            trigger_markers=max(0, stats.trigger_markers),
            trigger_lost=max(0, stats.trigger_lost),
            gpio_markers=max(0, stats.gpio_markers),
            recordings=e.recorders.statuses() if e.recorders is not None else (),
            stages=(
                e.runner.stage_params()
                if e.runner is not None and e.state is PipelineState.RUNNING
                else ()
            ),
        )

    def running(self) -> list[str]:
        return [n for n, e in self._entries.items() if e.state is PipelineState.RUNNING]

    def post_marker(
        self, name: str, label: str, origin: str, at: float | None = None
    ) -> tuple[str, Marker]:
        """Place a marker on a running pipeline (``name`` empty: the only one running).

        Returns the pipeline's name and the marker as placed (its ``seq`` says on which
        sample). Raises PipelineNotFound, PipelineStateError (not running, no sample yet,
        several running and no name) or ValueError (a bad label or time).
        """
        if not name:
            running = sorted(self.running())
            if not running:
                raise PipelineStateError("no pipeline is running: start one before marking it")
            if len(running) > 1:
                raise PipelineStateError(
                    f"name the pipeline to mark: {', '.join(running)} are running"
                )
            name = running[0]
        entry = self._get(name)
        runner = entry.runner
        if runner is None or entry.state is not PipelineState.RUNNING:
            raise PipelineStateError(
                f"pipeline '{name}' is {entry.state.name.lower()}: markers need it running"
            )
        try:
            return name, runner.post_marker(label, origin, at)
        except PipelineStateError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def stage_params(self, name: str) -> tuple[bool, tuple[StageParams, ...]]:
        """Whether ``name`` runs, and its stages' params: the live ones while it runs, else
        those of its file (what the next start uses)."""
        entry = self._get(name)
        runner = entry.runner
        if runner is not None and entry.state is PipelineState.RUNNING:
            return True, runner.stage_params()
        spec = entry.next_spec or entry.spec
        return False, tuple(
            StageParams(name, st.name, st.type_name, params_to_json(st.params), st.cls.live_params)
            for st in spec.stages
        )

    async def update_stage(self, pipeline: str, stage: str, changes: dict[str, Any]) -> StageParams:
        """Change live params of a stage of a running pipeline; returns once they apply.

        Raises PipelineNotFound (no such pipeline or stage), ConfigError (an unknown param or a
        bad value: the loader's message), PipelineStateError (not running, or a param that
        cannot change live) or TimeoutError.
        """
        entry = self._get(pipeline)
        if stage not in {st.name for st in entry.spec.stages}:
            known = ", ".join(st.name for st in entry.spec.stages)
            raise PipelineNotFound(
                f"pipeline '{pipeline}' has no stage '{stage}' (stages: {known})"
            )
        runner = entry.runner
        if runner is None or entry.state is not PipelineState.RUNNING:
            raise PipelineStateError(
                f"pipeline '{pipeline}' is {entry.state.value.lower()}: params change live on a "
                f"running pipeline (edit {entry.spec.path} for its next start)"
            )
        result = await asyncio.to_thread(runner.update_stage, stage, changes)
        self._notify(pipeline)
        return result

    async def wait_idle(self) -> None:
        """Return once no start, stop or device probe is in flight."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # -- control -----------------------------------------------------------------------------

    async def start(self, name: str) -> PipelineStatus:
        """Start ``name`` and return its status once it runs (or raise why it did not).

        Cancelling the caller does not cancel the start. A start while it starts joins that
        start; a start while it stops waits for the stop, then starts.
        """
        entry = self._get(name)
        self._refuse_if_closing()
        op = entry.pending()
        if op is not None and op.kind == "start":
            return await asyncio.shield(op.task)
        if op is None:
            runner = self._begin_start(name, entry)
            work: _Work = self._starting(name, entry, runner)
        else:
            work = self._after(op.task, lambda: self._start_later(name, entry))
        return await asyncio.shield(self._schedule(entry, "start", work))

    async def stop(self, name: str) -> PipelineStatus:
        """Stop ``name`` and return its final status (stopping a stopped pipeline is fine).

        Cancelling the caller does not cancel the stop. A stop while it starts waits for the
        start, then stops; a stop while it stops joins that stop.
        """
        entry = self._get(name)
        op = entry.pending()
        if op is not None and op.kind == "stop":
            return await asyncio.shield(op.task)
        if op is None:
            runner = entry.runner
            if runner is None:
                return self._acknowledge(name, entry)
            self._begin_stop(entry)
            work: _Work = self._stopping(name, entry, runner)
        else:
            work = self._after(op.task, lambda: self._stop_later(name, entry))
        return await asyncio.shield(self._schedule(entry, "stop", work))

    async def stop_all(self) -> None:
        """Stop every pipeline, after any start in flight; refuse new starts from now on."""
        self._closing = True
        names = [n for n, e in self._entries.items() if e.runner is not None or e.pending()]
        results = await asyncio.gather(*(self.stop(n) for n in names), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, EegpiError):
                log.error("stopping pipeline %s failed: %r", name, result)
        await self.wait_idle()

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise PipelineStateError("the daemon is shutting down; no pipeline can start now")

    def _schedule(self, entry: _Entry, kind: _Kind, work: _Work) -> asyncio.Task[PipelineStatus]:
        task = asyncio.get_running_loop().create_task(work)
        entry.op = _Op(kind, task)
        self._track(task)
        return task

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._untrack)

    def _untrack(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: whoever awaited it has it; the outcome is logged

    @staticmethod
    async def _after(
        previous: asyncio.Task[PipelineStatus], then: Callable[[], _Work]
    ) -> PipelineStatus:
        await asyncio.wait([previous])  # whatever its outcome
        return await then()

    # -- starting ----------------------------------------------------------------------------

    def _begin_start(self, name: str, entry: _Entry) -> PipelineRunner:
        """Check that ``name`` may start now, then mark it STARTING (no await in between)."""
        if self._entries.get(name) is not entry:
            raise PipelineNotFound(f"pipeline '{name}' was removed by a reload")
        if entry.state in _ACTIVE:
            raise PipelineStateError(
                f"pipeline '{name}' is already {entry.state.value.lower()}; "
                f"stop it first (eegpi stop {name})"
            )
        spec = entry.next_spec or entry.spec
        for other_name, other in self._entries.items():
            if other is entry or not other.busy:
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
        entry.spec, entry.next_spec = spec, None
        self._loop = asyncio.get_running_loop()
        recorders = Recorders()
        ctx = StageContext(
            pipeline=name,
            device=self._device,
            publisher=self._publisher,
            data_dir=self._data_dir,
            extras={Recorders.KEY: recorders},
        )
        entry.recorders = recorders
        runner = PipelineRunner(spec, ctx)
        runner.on_change = lambda: self._from_thread(name, runner)
        self._on_start(name, spec.topics)
        entry.state, entry.last_error, entry.runner = PipelineState.STARTING, "", runner
        entry.stats, entry.device, entry.start_time = None, None, None
        self._notify(name)
        return runner

    async def _start_later(self, name: str, entry: _Entry) -> PipelineStatus:
        if self._entries.get(name) is not entry:
            raise PipelineNotFound(f"pipeline '{name}' was removed by a reload")
        self._refuse_if_closing()
        return await self._starting(name, entry, self._begin_start(name, entry))

    async def _starting(self, name: str, entry: _Entry, runner: PipelineRunner) -> PipelineStatus:
        held = [t for t in (self._probe, self._check) if t is not None and not t.done()]
        if entry.spec.claims_device and held:
            await asyncio.wait(held)  # the daemon itself has the device open briefly
        try:
            await asyncio.to_thread(self._open_and_start, runner)
        except Exception as exc:
            entry.state, entry.runner = PipelineState.FAILED, None
            entry.stats = runner.snapshot().stats
            if isinstance(exc, EegpiError):
                entry.last_error = str(exc)
                log.error("pipeline %s failed to start: %s", name, exc)
            else:  # a bug: the caller gets it as it is (INTERNAL over gRPC)
                entry.last_error = f"internal error: {type(exc).__name__}: {exc}"
                log.exception("pipeline %s failed to start", name)
            self._notify(name)
            raise
        snap = runner.snapshot()
        entry.start_time = snap.started_at
        entry.device = _device_info(runner)
        if snap.error:  # died between start and here: wait until it is closed
            await asyncio.to_thread(runner.stop)
            self._finish(entry, runner)
        else:
            entry.state = PipelineState.RUNNING
            log.info(
                "pipeline %s running (topics: %s)", name, ", ".join(entry.spec.topics) or "none"
            )
            self._notify(name)
        return self._status(name, entry)

    @staticmethod
    def _open_and_start(runner: PipelineRunner) -> None:
        runner.open()
        try:
            runner.start()
        except BaseException:
            runner.stop()
            raise

    # -- stopping ----------------------------------------------------------------------------

    def _acknowledge(self, name: str, entry: _Entry) -> PipelineStatus:
        """Stop of a pipeline that does not run: FAILED becomes STOPPED (error kept)."""
        if entry.state is PipelineState.FAILED:
            entry.state = PipelineState.STOPPED
            self._notify(name)
        status = self._status(name, entry)
        self._drop_if_removed(name, entry)
        return status

    def _begin_stop(self, entry: _Entry) -> None:
        entry.state = PipelineState.STOPPING
        self._notify(entry.spec.name)

    async def _stop_later(self, name: str, entry: _Entry) -> PipelineStatus:
        runner = entry.runner
        if runner is None:  # the start failed, or it failed while running
            return self._acknowledge(name, entry)
        self._begin_stop(entry)
        return await self._stopping(name, entry, runner)

    async def _stopping(self, name: str, entry: _Entry, runner: PipelineRunner) -> PipelineStatus:
        try:
            await asyncio.to_thread(runner.stop)
        except Exception:
            log.exception("stopping pipeline %s failed", name)
        self._finish(entry, runner)
        status = self._status(name, entry)
        self._drop_if_removed(name, entry)
        return status

    def _finish(self, entry: _Entry, runner: PipelineRunner) -> None:
        """The runner is closed: keep its final counters, STOPPED or FAILED."""
        snap = runner.snapshot()
        entry.stats = snap.stats
        entry.runner = None
        if snap.error:
            entry.state, entry.last_error = PipelineState.FAILED, snap.error
        else:
            entry.state = PipelineState.STOPPED
        status = self._status(entry.spec.name, entry)
        log.info(
            "pipeline %s %s (%d samples, %d dropped)",
            entry.spec.name,
            entry.state.value.lower(),
            status.samples_acquired,
            status.samples_dropped,
        )
        self._notify(entry.spec.name)

    def _drop_if_removed(self, name: str, entry: _Entry) -> None:
        """Forget a pipeline whose file went away, once it is idle with nothing queued."""
        op = entry.pending()
        if op is not None and op.task is not asyncio.current_task():
            return  # a later start or stop is queued; it decides
        if entry.removed and entry.state not in _ACTIVE and self._entries.get(name) is entry:
            del self._entries[name]

    def _from_thread(self, name: str, runner: PipelineRunner) -> None:
        """Called by a pipeline thread when it ends (any thread), its stages closed."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closing during shutdown
            loop.call_soon_threadsafe(self._runner_ended, name, runner)

    def _runner_ended(self, name: str, runner: PipelineRunner) -> None:
        entry = self._entries.get(name)
        if entry is None or entry.runner is not runner or entry.state is not PipelineState.RUNNING:
            return  # a start or stop in progress handles it, or a newer run has begun
        self._finish(entry, runner)
        self._drop_if_removed(name, entry)

    # -- recordings --------------------------------------------------------------------------

    async def start_recording(self, pipeline: str, stage: str = "") -> list[RecordingStatus]:
        """Start recording on the recorder stages of a running pipeline (all when ``stage`` is
        empty); those already recording go on unchanged."""
        entry = self._get(pipeline)
        if entry.state is not PipelineState.RUNNING or entry.recorders is None:
            raise PipelineStateError(
                f"pipeline '{pipeline}' is {entry.state.value.lower()}; recordings start on a "
                f"running pipeline (eegpi start {pipeline})"
            )
        chosen = entry.recorders.select(pipeline, stage)
        statuses = await asyncio.to_thread(lambda: [r.start_recording() for r in chosen])
        self._notify(pipeline)
        return statuses

    async def stop_recording(self, pipeline: str, stage: str = "") -> list[RecordingStatus]:
        """Finalise the files of the selected recorder stages (not recording: nothing to do)."""
        entry = self._get(pipeline)
        if entry.recorders is None:
            return []
        chosen = entry.recorders.select(pipeline, stage)
        statuses = await asyncio.to_thread(lambda: [r.stop_recording() for r in chosen])
        self._notify(pipeline)
        return statuses

    async def list_recordings(self) -> list[RecordingFile]:
        """The recording files under the data directory, newest first."""
        return await asyncio.to_thread(list_recordings, Path(self._data_dir))

    # -- watching ----------------------------------------------------------------------------

    def _notify(self, name: str = "") -> None:
        """Queue the status of ``name`` (every pipeline when empty) for its watchers."""
        self.changes.fire()
        if not self._watchers:
            return
        names = [name] if name else sorted(self._entries)
        statuses = [self._status(n, self._entries[n]) for n in names if n in self._entries]
        for watcher in self._watchers:
            for st in statuses:
                if watcher.name in ("", st.name):
                    _offer(watcher.queue, st)

    async def watch(self, name: str = "") -> AsyncGenerator[PipelineStatus, None]:
        """Current status, then every change; counters refresh about once a second."""
        if name:
            self._get(name)
        loop = asyncio.get_running_loop()
        watcher = _Watcher(name)
        self._watchers.append(watcher)
        last: dict[str, PipelineStatus] = {}
        try:
            updates = self.status(name)
            refresh_at = loop.time() + _WATCH_PERIOD_S
            while True:
                for st in updates:
                    if last.get(st.name) != st:
                        last[st.name] = st
                        yield st
                try:
                    timeout = max(0.0, refresh_at - loop.time())
                    updates = [await asyncio.wait_for(watcher.queue.get(), timeout)]
                except TimeoutError:
                    try:
                        updates = self.status(name)
                    except PipelineNotFound:
                        return  # removed by a reload
                    refresh_at = loop.time() + _WATCH_PERIOD_S
        finally:
            self._watchers.remove(watcher)

    # -- device ------------------------------------------------------------------------------

    async def _device_settled(self, *, probes: bool = False) -> None:
        """Until no start or stop of a device pipeline (with ``probes``: nor a device probe or
        impedance check) is in flight."""
        while True:
            busy: list[asyncio.Future[Any]] = [
                op.task
                for e in self._entries.values()
                if e.spec.claims_device and (op := e.pending()) is not None
            ]
            if probes:
                busy += [t for t in (self._probe, self._check) if t is not None and not t.done()]
            if not busy:
                return
            await asyncio.wait(busy)

    def _device_source(self) -> tuple[str, SourceStage] | None:
        """The running pipeline that holds the device, and its source."""
        for name, entry in self._entries.items():
            runner = entry.runner
            if runner is not None and entry.spec.claims_device and runner.source is not None:
                return name, runner.source
        return None

    async def device_report(self) -> DeviceReport:
        """The device as the pipeline holding it sees it, or as a brief probe finds it.

        Waits for a start or stop of a device pipeline in flight first: the acquisition
        process opens and releases the device then, and must not meet the daemon's probe.
        """
        await self._device_settled()
        holder = self._device_source()
        if holder is not None:
            name, source = holder
            report = source.device_report()
            if isinstance(report, DeviceReport):
                return replace(report, held_by=name)
        while self._check is not None and not self._check.done():
            await asyncio.wait([self._check])  # an impedance check has the device open
        probe = self._probe
        if probe is None or probe.done():
            from eegpi import hardware

            probe = asyncio.get_running_loop().create_task(
                asyncio.to_thread(hardware.probe, self._device)
            )
            self._probe = probe
            self._track(probe)
        return await asyncio.shield(probe)

    async def measure_impedance(self, request: ImpedanceRequest) -> ImpedanceReport:
        """Electrode impedance on the stream of the pipeline holding the device, or on the idle
        device opened for the check: one check at a time, after any start, stop or probe in
        flight; a start or probe asked for meanwhile waits for the check."""
        await self._device_settled(probes=True)
        holder = self._device_source()
        if holder is not None:
            name, source = holder
            return await asyncio.to_thread(measure_source, source, name, request, self._device)
        check = asyncio.get_running_loop().create_task(
            asyncio.to_thread(measure_idle, self._device, request)
        )
        self._check = check
        self._track(check)
        return await asyncio.shield(check)


def _offer(queue: asyncio.Queue[PipelineStatus], status: PipelineStatus) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(status)


def _next_topics(entry: _Entry) -> tuple[str, ...]:
    return entry.next_spec.topics if entry.next_spec is not None else ()


def _device_info(runner: PipelineRunner) -> DeviceInfo | None:
    source = runner.source
    if source is None:
        return None
    report = source.device_report()
    if not isinstance(report, DeviceReport):
        return None
    acquisition = source.acquisition_report()
    serving = dataclasses.asdict(acquisition) if isinstance(acquisition, AcquisitionReport) else {}
    return DeviceInfo(
        backend=report.backend,
        path=report.path,
        chip=report.chip,
        id_register=report.id_register,
        chips=report.chips,
        channels=report.channels,
        sample_rate=report.sample_rate,
        **serving,
    )
