"""Runs one pipeline: opens its stages, then moves blocks from the source through the DAG.

Each running pipeline has one thread of its own. It reads a block from the source (which in
turn is fed by the acquisition thread's ring buffer), then calls every stage once in
topological order with that tick's blocks, then flushes the publisher once, so the event loop
is woken once per tick whatever the number of topics. All numeric work is block-wise numpy, so
the cost per sample stays small at 16 kSPS. Sinks hand blocks to the broker through a non-blocking,
bounded publisher: nothing downstream can stall this thread, and this thread never stalls
acquisition (the ring buffer between them counts what it has to drop).

The thread never touches asyncio; state changes are reported through ``on_change``, which the
daemon turns into a thread-safe call onto its event loop.

Parameter changes (``UpdateStage``) reach the thread through a bounded queue
(:mod:`eegpi.pipeline.live`) that it empties between two ticks, before it reads the next block,
so no stage sees its params change in the middle of a block; the caller waits for the verdict.

The source's counters are read once more after it stops and before any stage closes (closing
releases what holds them, e.g. the acquisition process's shared ring), and kept: a stopped or
failed runner reports the final counts of its run, and ``snapshot`` never reads a source that
is shutting down.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from eegpi.exc import (
    ConfigError,
    EegpiError,
    HardwareError,
    PipelineNotFound,
    PipelineStateError,
    StageError,
)
from eegpi.lazy import preload
from eegpi.pipeline.live import UpdateQueue, checked_params, params_to_json
from eegpi.pipeline.markers import MARKERS_TOPIC, MarkerReceiver, place_marker
from eegpi.pipeline.spec import PipelineSpec
from eegpi.pipeline.stage import SourceStage, SourceStats, Stage, StageContext
from eegpi.status import StageParams
from eegpi.stream import Block, Marker, StreamMeta
from eegpi.threadname import name_this_thread

__all__ = ["UPDATE_TIMEOUT_S", "PipelineRunner", "RunnerSnapshot"]

log = logging.getLogger("eegpi.pipeline")

_READ_TIMEOUT_S = 0.1
UPDATE_TIMEOUT_S = 30.0
"""How long a param change may take to apply (reprogramming the chip waits for its replies)."""


@dataclass(frozen=True)
class RunnerSnapshot:
    running: bool
    error: str
    stats: SourceStats
    started_at: float | None


class PipelineRunner:
    """Opens, runs and closes the stages of one pipeline."""

    def __init__(
        self,
        spec: PipelineSpec,
        ctx: StageContext,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.spec = spec
        self._ctx = dataclasses.replace(ctx, markers=self.deliver_markers)
        self._receivers: tuple[MarkerReceiver, ...] = ()
        self.on_change = on_change
        """Called (from any thread) when the pipeline thread ends."""
        self._stages: list[Stage] = []
        self._source: SourceStage | None = None
        self._metas: dict[str, Mapping[str, StreamMeta]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error = ""
        self._started_at: float | None = None
        self._closed = False
        """Set (under ``_lock``) by the one thread that shuts the runner down."""
        self._shut = threading.Event()
        """Set once the source is stopped and every stage is closed."""
        self._stats = SourceStats()
        """The source's counters as last read; final once ``_closed`` is set."""
        self._lock = threading.Lock()
        self._updates = UpdateQueue()
        self._stop_hurry: Callable[[], None] | None = None
        """Cancels the publisher's hurry calls (set while the thread runs)."""

    # -- lifecycle (called from the daemon, off the event loop: opening hardware blocks) --------

    def open(self) -> None:
        """Instantiate and open every stage in order; on failure close what was opened."""
        preload(m for st in self.spec.stages for m in st.cls.preload)
        try:
            for st in self.spec.stages:
                stage = st.instantiate()
                inputs = {
                    port: self._metas[ref.stage][ref.port]
                    for port, ref in zip(stage.input_ports, st.inputs, strict=True)
                }
                try:
                    outs = dict(stage.open(inputs, self._ctx))
                except EegpiError as exc:
                    stage.close()
                    raise type(exc)(f"stage '{st.name}' ({st.type_name}): {exc}") from exc
                except Exception as exc:
                    stage.close()
                    log.exception("stage %s failed to open", st.name)
                    raise StageError(
                        f"stage '{st.name}' ({st.type_name}) failed to open: {exc}"
                    ) from exc
                missing = set(stage.output_ports) - set(outs)
                if missing:
                    stage.close()
                    raise StageError(
                        f"stage '{st.name}' ({st.type_name}) did not describe "
                        f"output(s) {sorted(missing)}"
                    )
                self._stages.append(stage)
                self._metas[st.name] = outs
                if isinstance(stage, SourceStage):
                    self._source = stage
        except BaseException:
            self._close_stages()
            raise
        if self._source is None:  # parse_pipeline guarantees one; keep the invariant explicit
            self._close_stages()
            raise ConfigError(f"pipeline '{self.spec.name}' has no source stage")
        self._receivers = tuple(s for s in self._stages if isinstance(s, MarkerReceiver))

    def start(self) -> None:
        """Start the source and the pipeline thread (after ``open``)."""
        assert self._source is not None, "open() first"
        self._source.start()
        self._started_at = time.time()
        # A first subscriber of a pipeline nobody watched need not wait out its idle tick.
        self._stop_hurry = self._ctx.publisher.on_hurry(self._source.hurry)
        self._thread = threading.Thread(
            target=self._run, name=f"eegpi-pipeline-{self.spec.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread, the source, and close every stage. Idempotent.

        Returns once everything is closed, also when another thread (the pipeline thread
        ending after a failure) is the one closing it.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.error("pipeline %s thread did not stop within %.1f s", self.spec.name, timeout)
        self._shutdown()
        if threading.current_thread() is not thread:
            self._shut.wait()

    # -- markers -----------------------------------------------------------------------------

    def post_marker(self, label: str, origin: str, at: float | None = None) -> Marker:
        """Place a marker at the sample of ``at`` (default: now) and deliver it (any thread).

        Raises:
            ValueError: a bad label or time.
            PipelineStateError: the pipeline is not running or has no sample yet.
        """
        source = self._source
        if source is None or not self.snapshot().running:
            raise PipelineStateError(f"pipeline '{self.spec.name}' is not running")
        marker = place_marker(source, label, origin, at, pipeline=self.spec.name)
        self.deliver_markers([marker])
        return marker

    def deliver_markers(self, markers: Sequence[Marker]) -> None:
        """Hand markers to every stage that keeps them and to the ``markers`` topic."""
        if not markers:
            return
        for stage in self._receivers:
            try:
                stage.add_markers(markers)
            except Exception:
                log.exception("stage %s failed to take markers", getattr(stage, "name", stage))
        for marker in markers:
            self._ctx.publisher.publish_event(
                MARKERS_TOPIC, {**marker.to_json(), "pipeline": self.spec.name}
            )

    # -- live params -------------------------------------------------------------------------

    def update_stage(
        self, name: str, changes: Mapping[str, Any], timeout: float = UPDATE_TIMEOUT_S
    ) -> StageParams:
        """Change live params of stage ``name`` between two ticks; returns once they apply.

        Raises:
            PipelineNotFound: no stage of that name.
            ConfigError: an unknown param or a bad value (the loader's message), or one that
                does not fit the stream; nothing changed.
            PipelineStateError: the pipeline does not run, or a param cannot change live.
            TimeoutError: the pipeline thread did not get to it within ``timeout``.
        """
        if name not in {st.name for st in self.spec.stages}:
            known = ", ".join(st.name for st in self.spec.stages)
            raise PipelineNotFound(
                f"pipeline '{self.spec.name}' has no stage '{name}' (stages: {known})"
            )
        stage = next((s for s in list(self._stages) if s.name == name), None)
        if stage is None or not self.snapshot().running:
            raise PipelineStateError(f"pipeline '{self.spec.name}' is not running")
        params = checked_params(stage, changes, self.spec.name)
        done = self._updates.submit(stage, params)
        try:
            done.result(timeout)
        except FutureTimeout:
            raise TimeoutError(
                f"stage '{name}' of pipeline '{self.spec.name}' did not take the change within "
                f"{timeout:g} s; it may still apply (GetStatus shows the params in force)"
            ) from None
        return self._stage_params(stage)

    def stage_params(self) -> tuple[StageParams, ...]:
        """Every stage's params as they are now (empty once the pipeline is closed)."""
        return tuple(self._stage_params(stage) for stage in list(self._stages))

    def _stage_params(self, stage: Stage) -> StageParams:
        cls = type(stage)
        return StageParams(
            self.spec.name, stage.name, cls.type_name, params_to_json(stage.params), cls.live_params
        )

    def _apply_update(self, stage: Stage, params: Any) -> None:
        """Pipeline thread, between ticks."""
        try:
            stage.update_params(params)
        except ConfigError as exc:
            raise ConfigError(
                f"pipeline '{self.spec.name}': stage '{stage.name}' ({type(stage).type_name}): "
                f"{exc}"
            ) from None
        stage.params = params
        log.info("stage %s: params now %s", stage.name, params_to_json(params))

    # -- state -------------------------------------------------------------------------------

    @property
    def source(self) -> SourceStage | None:
        return self._source

    def output_meta(self, stage: str, port: str = "out") -> StreamMeta:
        return self._metas[stage][port]

    def snapshot(self) -> RunnerSnapshot:
        """State and counters; after a stop or failure, the final counters of the run."""
        with self._lock:
            if not self._closed:
                self._stats = self._read_stats()
            stats = self._stats
        thread = self._thread
        running = thread is not None and thread.is_alive() and not self._stop.is_set()
        return RunnerSnapshot(running, self._error, stats, self._started_at)

    # -- the pipeline thread -----------------------------------------------------------------

    def _run(self) -> None:
        name_this_thread(f"pipe:{self.spec.name}")
        source = self._source
        assert source is not None
        plan = [
            (stage, tuple(zip(stage.input_ports, st.inputs, strict=True)))
            for stage, st in zip(self._stages, self.spec.stages, strict=True)
            if stage is not source
        ]
        src_name = self.spec.source.name
        publisher = self._ctx.publisher
        updates = self._updates
        # Stages someone may wait for (sinks), and the markers topic every run may publish:
        # the source ticks as slowly as the most demanding of them allows.
        waiting = [
            s.patience_ms for s in self._stages if type(s).patience_ms is not Stage.patience_ms
        ]
        try:
            while not self._stop.is_set():
                if updates:
                    updates.apply(self._apply_update)
                patience = publisher.patience_ms(MARKERS_TOPIC)
                for stage_patience in waiting:
                    ms = stage_patience()
                    if ms is not None and (patience is None or ms < patience):
                        patience = ms
                source.downstream_patience_ms = patience
                block = source.read(_READ_TIMEOUT_S)
                if block is None:
                    continue
                outputs: dict[str, Mapping[str, Block]] = {src_name: {"out": block}}
                for stage, wiring in plan:
                    inputs = {}
                    for port, ref in wiring:
                        produced = outputs.get(ref.stage)
                        if produced is None or ref.port not in produced:
                            break
                        inputs[port] = produced[ref.port]
                    else:
                        try:
                            outputs[stage.name] = stage.process(inputs)
                        except EegpiError:
                            raise
                        except Exception as exc:
                            log.exception("stage %s failed", stage.name)
                            raise StageError(
                                f"stage '{stage.name}' ({type(stage).type_name}) failed: "
                                f"{type(exc).__name__}: {exc}"
                            ) from exc
                publisher.flush()
        except HardwareError as exc:
            self._fail(f"device error: {exc}")
        except EegpiError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a bug: keep the daemon up, report it
            log.exception("pipeline %s crashed", self.spec.name)
            self._fail(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._shutdown()

    def _fail(self, message: str) -> None:
        log.error("pipeline %s failed: %s", self.spec.name, message)
        self._error = message
        self._stop.set()

    def _read_stats(self) -> SourceStats:
        """The source's counters now (the last known ones if it cannot tell)."""
        source = self._source
        if source is None or self._started_at is None:
            return self._stats  # nothing is counted before the source started
        try:
            return source.stats()
        except Exception:
            log.exception("reading the counters of %s failed", self.spec.name)
            return self._stats

    def _shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._stats = self._read_stats()
            self._closed = True  # from here on, snapshot() reports self._stats only
        self._updates.close(f"pipeline '{self.spec.name}' stopped before the change applied")
        stop_hurry, self._stop_hurry = self._stop_hurry, None
        if stop_hurry is not None:
            stop_hurry()
        try:
            if self._source is not None:
                try:
                    self._source.stop()
                except Exception:
                    log.exception("stopping the source of %s failed", self.spec.name)
                self._stats = self._read_stats()  # final: stopped, not yet closed
            self._close_stages()
        finally:
            self._shut.set()
        self.on_change()

    def _close_stages(self) -> None:
        for stage in reversed(self._stages):
            try:
                stage.close()
            except Exception:
                log.exception("closing stage %s failed", stage.name)
        self._stages.clear()

    @property
    def error(self) -> str:
        return self._error
