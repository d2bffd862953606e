"""The stage contract every built-in and third-party stage follows.

A stage declares its ports and a ``Params`` dataclass; the loader builds ``Params`` from the
YAML ``params`` mapping (unknown, missing and mistyped fields become errors naming the stage and
field). ``open`` sees the metadata of every input and returns the metadata of every output, so
a whole pipeline is checked before any sample flows. ``process`` is then called once per source
block with the inputs of that tick and returns its outputs; it must work block-wise on numpy
arrays and carry any filter state itself, so splitting the stream into blocks never changes the
result.

Sources (no inputs) additionally implement :class:`SourceStage`; they are read by the pipeline
runner's thread. Sinks have no outputs and hand data across the thread boundary through the
:class:`TopicPublisher` in the context, which never blocks.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from eegpi.exc import ConfigError
from eegpi.stream import Block, Marker, StreamMeta

if TYPE_CHECKING:
    from eegpi.hardware.config import DeviceConfig

__all__ = [
    "NoParams",
    "NullPublisher",
    "SourceStage",
    "SourceStats",
    "Stage",
    "StageContext",
    "TopicPublisher",
]


class TopicPublisher(Protocol):
    """Where sinks send blocks; thread-safe and non-blocking (drops are counted, not waited on)."""

    def declare(self, topic: str, meta: StreamMeta) -> None:
        """Announce a topic and its metadata before data flows (from any thread)."""

    def publish(self, topic: str, block: Block) -> None:
        """Hand a block to the broker; never blocks the caller."""

    def retract(self, topic: str) -> None:
        """The topic's producer stopped; subscribers stay subscribed and wait for it."""

    def flush(self) -> None:
        """End of a pipeline tick: hand over what the tick published, with one wake-up."""

    def publish_event(self, topic: str, event: Mapping[str, Any]) -> None:
        """Hand one event (a marker as JSON-ready fields) to the broker; never blocks."""

    def patience_ms(self, topic: str) -> float | None:
        """How long the most demanding receiver of ``topic`` lets a sample wait before it is
        sent (its subscription's ``max_latency_ms``); None while nobody receives it."""

    def on_hurry(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from any thread; it must not block) whenever some topic's
        patience shrinks (a first subscriber, or a more demanding one), so a source gathering
        a long tick can cut it short. Returns the function that stops the calls."""


class NullPublisher:
    """A publisher that discards everything: for running stages outside the daemon."""

    def declare(self, topic: str, meta: StreamMeta) -> None:
        pass

    def publish(self, topic: str, block: Block) -> None:
        pass

    def retract(self, topic: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def publish_event(self, topic: str, event: Mapping[str, Any]) -> None:
        pass

    def patience_ms(self, topic: str) -> float | None:
        return 0.0  # outside the daemon, run at the source's own tick

    def on_hurry(self, callback: Callable[[], None]) -> Callable[[], None]:
        return _nothing  # patience never changes here


def _nothing() -> None:
    """Cancels nothing."""


def _no_markers(markers: Sequence[Marker]) -> None:
    """Outside a runner, markers have nowhere to go."""


@dataclass
class StageContext:
    """What the daemon gives stages when a pipeline opens."""

    pipeline: str
    """Name of the pipeline the stage belongs to."""
    device: DeviceConfig
    """How to reach the ADS1299 (backend, SPI bus, pins, emulator options)."""
    publisher: TopicPublisher
    """Broker hand-off for sinks."""
    data_dir: str = "."
    """Where recorders write files."""
    extras: dict[str, Any] = field(default_factory=dict)
    markers: Callable[[Sequence[Marker]], None] = _no_markers
    """Where a stage sends markers it finds in the stream (the source: the chip's GPIO bits,
    its trigger input); the runner points it at every marker taker of the pipeline."""


@dataclass(frozen=True)
class NoParams:
    """Params of a stage that takes none."""


class Stage(ABC):
    """One processing step of a pipeline."""

    type_name: ClassVar[str]
    """Name used in YAML ``type:``."""
    Params: ClassVar[type[Any]] = NoParams
    """Frozen dataclass of the stage's parameters; validate values in ``__post_init__``."""
    input_ports: ClassVar[tuple[str, ...]] = ("in",)
    output_ports: ClassVar[tuple[str, ...]] = ("out",)
    topic_param: ClassVar[str | None] = None
    """Name of the param holding the topic this stage publishes (sinks), for duplicate checks."""
    preload: ClassVar[tuple[str, ...]] = ()
    """Slow-to-import modules ``open`` will need (or ``module:function`` loaders); the runner
    imports them in the background while the source waits for the chip (see
    :mod:`eegpi.lazy`)."""

    def __init__(self, name: str, params: Any) -> None:
        self.name = name
        self.params = params

    @abstractmethod
    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        """Check input metadata, allocate state; return the metadata of each output port."""

    @abstractmethod
    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        """Turn this tick's input blocks into output blocks (may be empty mappings)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; called once, also after a failure."""

    def patience_ms(self) -> float | None:
        """How long whoever waits for this stage's output right now (a subscriber of its
        topic, an LSL consumer) lets a sample wait, in ms; None when nobody waits. The source
        ticks as slowly as the most demanding of a pipeline's stages allows: ``tick_ms`` at
        the default 10 ms latency, longer for subscribers that asked for more, and
        ``idle_tick_ms`` while nobody waits at all; fewer ticks, fewer wake-ups."""
        return None

    live_params: ClassVar[tuple[str, ...]] = ()
    """Params that may change while the pipeline runs (``UpdateStage``); the others need a
    restart, which reads the pipeline file again."""

    def update_params(self, params: Any) -> None:
        """Run with ``params`` from the next block on (called by the pipeline thread between
        two ticks, so never mid-block). ``params`` is a validated ``Params`` that differs from
        ``self.params`` in ``live_params`` only; the runner stores it in ``self.params`` after
        this returns. Check it against the stream first: raise ConfigError, changing nothing,
        when it does not fit (a cut-off above Nyquist, say)."""
        raise ConfigError(f"stage {self.name!r} ({self.type_name}) has no live params")

    @classmethod
    def param_fields(cls) -> tuple[dataclasses.Field[Any], ...]:
        return dataclasses.fields(cls.Params)


@dataclass
class SourceStats:
    """Counters a source reports in GetStatus."""

    samples_acquired: int = 0
    samples_dropped: int = 0
    sample_rate_measured_hz: float = 0.0
    """The rate the device really samples at, from its edge times (0: not measured yet)."""
    clock_ppm: float = 0.0
    """``sample_rate_measured_hz`` against the programmed rate, in parts per million."""
    timestamp_residual_us: float = 0.0
    """RMS distance of the edge times from the sample clock's fit (their jitter), in us."""
    trigger_markers: int = 0
    """Trigger edges placed as markers (this run)."""
    trigger_lost: int = 0
    """Trigger edges lost, counted (kernel buffer or queue full, or after the run's end)."""
    gpio_markers: int = 0
    """Changes of the chip's GPIO levels placed as markers (this run)."""


class SourceStage(Stage):
    """A stage with no inputs that produces blocks from a device."""

    input_ports: ClassVar[tuple[str, ...]] = ()
    claims_device: ClassVar[bool] = False
    """True when two running pipelines cannot both use this source (one ADS1299)."""
    downstream_patience_ms: float | None = 0.0
    """Set by the runner before each ``read``: how long the most demanding consumer of the
    pipeline's output lets a sample wait (see :meth:`Stage.patience_ms`; None: nobody waits),
    so the source may gather a longer tick (it need not)."""

    @abstractmethod
    def start(self) -> None:
        """Begin acquisition (after ``open``)."""

    @abstractmethod
    def read(self, timeout: float) -> Block | None:
        """Next block of samples, or None after ``timeout`` seconds without data.

        Called from the pipeline runner's thread only. Raises HardwareError on device failure.
        """

    @abstractmethod
    def stop(self) -> None:
        """Stop acquisition; ``read`` may then return None."""

    def hurry(self) -> None:
        """A consumer now wants samples sooner than ``downstream_patience_ms`` said when the
        current ``read`` began: end that read's wait early (any thread; never blocks). A
        source that ticks at one cadence whatever its consumers want ignores it."""

    @abstractmethod
    def stats(self) -> SourceStats:
        """Counters so far (thread-safe)."""

    def device_report(self) -> Any:
        """Identity/registers/lead-off of the held device (sources that hold one)."""
        return None

    def acquisition_report(self) -> Any:
        """How a device source's running acquisition is served (reader, scheduling, memory)."""
        return None

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        raise NotImplementedError("sources are read, not processed")
