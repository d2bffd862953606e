"""The ``impedance`` stage: electrode impedance from the source's lead-off excitation, live.

It takes the source's counts (connect it to the ``ads1299_source``, whose ``lead_off`` must be
``{frequency: ac_fdr/4, current: ...}``), measures each window of ``window_s`` seconds
(:mod:`eegpi.impedance`) and publishes one event per window on ``topic``. The topic is declared
when the stage opens, so it is listed and can be subscribed before the first event. A lost
sample or a settings change (a new gain) starts the window again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

from eegpi.exc import ConfigError
from eegpi.impedance.estimate import MIN_SAMPLES
from eegpi.impedance.measure import Excitation
from eegpi.impedance.report import DEFAULT_FAIR_KOHM, DEFAULT_GOOD_KOHM, Thresholds
from eegpi.impedance.running import ExcitedSource, measure_running, source_excitation
from eegpi.impedance.tap import SOURCE_KEY, WindowBuilder
from eegpi.pipeline.registry import register
from eegpi.pipeline.stage import Stage, StageContext, TopicPublisher
from eegpi.pipeline.stages.sinks import WebSocketSinkParams
from eegpi.stream import Block, StreamMeta

__all__ = ["ImpedanceParams", "ImpedanceStage"]

log = logging.getLogger("eegpi.pipeline")

WINDOW_S_MAX = 10.0


@dataclass(frozen=True)
class ImpedanceParams:
    """Parameters of ``impedance``."""

    topic: str = "impedance"
    """Where the events go (1-64 letters, digits, '_', '-', '.')."""
    window_s: float = 1.0
    """Seconds per measurement, 0.1 to 10: longer is steadier against EEG and mains."""
    good_kohm: float = DEFAULT_GOOD_KOHM
    """Up to this an electrode is graded good."""
    fair_kohm: float = DEFAULT_FAIR_KOHM
    """Up to this fair; above, poor."""
    series_kohm: float | None = None
    """The board's series resistor per input, subtracted; default device.series_resistance_kohm."""

    def __post_init__(self) -> None:
        WebSocketSinkParams(self.topic)  # the same topic rules
        w = self.window_s
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0.1 <= w <= WINDOW_S_MAX:
            raise ValueError(f"window_s: {w!r} is not a number of seconds, 0.1 to {WINDOW_S_MAX:g}")
        self.thresholds  # noqa: B018 - validates
        s = self.series_kohm
        if s is not None and (isinstance(s, bool) or not isinstance(s, int | float) or s < 0):
            raise ValueError(f"series_kohm: {s!r} is not a number of kOhm >= 0")

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(good_kohm=self.good_kohm, fair_kohm=self.fair_kohm)


@register
class ImpedanceStage(Stage):
    """Publishes each electrode's impedance, one event per window."""

    type_name = "impedance"
    Params = ImpedanceParams
    output_ports: ClassVar[tuple[str, ...]] = ()
    topic_param = "topic"

    params: ImpedanceParams

    def __init__(self, name: str, params: ImpedanceParams) -> None:
        super().__init__(name, params)
        self._publisher: TopicPublisher | None = None
        self._source: ExcitedSource | None = None
        self._excitation: Excitation | None = None
        self._series = 0.0
        self._samples = MIN_SAMPLES
        self._builder = WindowBuilder(MIN_SAMPLES)
        self._pipeline = ""

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        meta = inputs["in"]
        if meta.units != "counts":
            raise ConfigError(
                f"its input is in {meta.units}; connect it to the ads1299_source itself (it "
                "measures the chip's counts, with the gain and excitation they were taken with)"
            )
        source = ctx.extras.get(SOURCE_KEY)
        if source is None:
            raise ConfigError("this pipeline has no ads1299_source to measure on")
        excitation = source_excitation(source)
        refusal = Excitation.refusal(excitation, f" {source.name!r}")
        if refusal is not None or excitation is None:
            raise ConfigError(refusal or "no excitation")
        p = self.params
        samples = 4 * max(MIN_SAMPLES // 4, math.floor(p.window_s * meta.sample_rate / 4))
        self._source, self._excitation = source, excitation
        self._series = ctx.device.series_resistance_kohm if p.series_kohm is None else p.series_kohm
        self._samples = samples
        self._builder = WindowBuilder(samples)
        self._pipeline = ctx.pipeline
        self._publisher = ctx.publisher
        kinds = meta.extra.get("input", ("normal",) * len(meta.channels))
        if not isinstance(kinds, list | tuple):
            kinds = (kinds,) * len(meta.channels)
        measured = tuple(n for n, k in zip(meta.channels, kinds, strict=False) if k == "normal")
        topic_meta = StreamMeta(
            sample_rate=1.0 / p.window_s,
            channels=measured,
            units="kOhm",
            extra={
                "kind": "impedance",
                "frequency_hz": meta.sample_rate / 4,
                "current_na": excitation.current_na,
                "window_s": samples / meta.sample_rate,
            },
        )
        ctx.publisher.declare(p.topic, topic_meta)
        return {}

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        block = inputs["in"]
        if block.n_samples == 0:
            return {}
        builder = self._builder
        builder.add(block)
        if not builder.done.is_set():
            return {}
        self._builder = WindowBuilder(self._samples)
        source, excitation, publisher = self._source, self._excitation, self._publisher
        if source is None or excitation is None or publisher is None:
            return {}
        report = measure_running(
            source,
            builder.window(),
            excitation,
            series_kohm=self._series,
            thresholds=self.params.thresholds,
        )
        report = replace(report, pipeline=self._pipeline)
        publisher.publish_event(self.params.topic, report.to_event())
        return {}

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.retract(self.params.topic)
            self._publisher = None
