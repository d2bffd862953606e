"""An impedance check on request (``Device.MeasureImpedance``): on the running pipeline's
stream, or on the idle device opened for the check.

Running: the pipeline's source must already drive the fDR/4 excitation (a check never
reprograms a running chip: that would cut its recording); a window of its counts is taken from
its :class:`~eegpi.impedance.tap.ImpedanceTap`. Idle: an ``ads1299_source`` with the
excitation on is opened, run for the window and closed, the same code path a pipeline runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eegpi.exc import ConfigError, PipelineStateError
from eegpi.hardware.config import DeviceConfig
from eegpi.impedance.estimate import MIN_SAMPLES
from eegpi.impedance.measure import CURRENTS_NA, MEASURABLE, Excitation
from eegpi.impedance.report import ImpedanceReport, Thresholds
from eegpi.impedance.running import measure_running, source_excitation
from eegpi.impedance.tap import Window, WindowBuilder
from eegpi.pipeline.stage import NullPublisher, StageContext

__all__ = [
    "CHECK_SAMPLE_RATE",
    "DURATION_S_MAX",
    "ImpedanceRequest",
    "measure_idle",
    "measure_source",
    "samples_for",
]

CHECK_SAMPLE_RATE = 250
"""Sample rate of a check on the idle device: the excitation at 62.5 Hz, clear of EEG bands."""
CHECK_GAIN = 24
"""Gain of a check on the idle device: 6 nA x 1 MOhm = 6 mV, far inside its +/-187.5 mV."""
DURATION_S_MAX = 10.0
_SETTLE_SAMPLES = 8
"""Samples an idle check leaves out after the start (the chip's first conversions settle)."""
_WAIT_MARGIN_S = 5.0


@dataclass(frozen=True)
class ImpedanceRequest:
    """What a caller asks for; every field has a default."""

    duration_s: float = 1.0
    """Window length, 0.1-10 s."""
    current: str = ""
    """6nA, 24nA, 6uA or 24uA for an idle check ('' = 6nA); on a running pipeline '' or the
    current its source drives."""
    channels: tuple[str, ...] = ()
    """Channel names to report ('' = every normal-input channel)."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    chips: int = 0
    """ADS1299s in the chain for an idle check (0: 1, or 2 on a board with two chip-selects)."""

    def __post_init__(self) -> None:
        d = self.duration_s
        if isinstance(d, bool) or not isinstance(d, int | float) or not 0.1 <= d <= DURATION_S_MAX:
            raise ConfigError(
                f"duration_s: {d!r} is not a number of seconds from 0.1 to {DURATION_S_MAX:g}"
            )
        if self.current and self.current not in CURRENTS_NA:
            raise ConfigError(
                f"current: {self.current!r} is not one of {', '.join(CURRENTS_NA)} (or empty)"
            )
        if self.chips not in (0, 1, 2, 3, 4):
            raise ConfigError(f"chips: {self.chips!r} is not 1..4 (0: the board's default)")

    @classmethod
    def of(
        cls,
        *,
        duration_s: float = 0.0,
        current: str = "",
        channels: Sequence[str] = (),
        good_kohm: float = 0.0,
        fair_kohm: float = 0.0,
        chips: int = 0,
    ) -> ImpedanceRequest:
        """From wire fields where 0 and '' mean the default.

        Raises:
            ConfigError: a field out of range (INVALID_ARGUMENT).
        """
        try:
            limits = Thresholds(
                good_kohm=good_kohm or Thresholds.good_kohm,
                fair_kohm=fair_kohm or Thresholds.fair_kohm,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            duration_s=duration_s or 1.0,
            current=current,
            channels=tuple(channels),
            thresholds=limits,
            chips=chips,
        )


def samples_for(duration_s: float, sample_rate: float) -> int:
    """Samples of a window: whole cycles of the fs/4 tone, at least two."""
    return 4 * max(MIN_SAMPLES // 4, math.floor(duration_s * sample_rate / 4))


def _only(report: ImpedanceReport, request: ImpedanceRequest, names: Sequence[str]) -> None:
    unknown = [n for n in request.channels if n not in names]
    if unknown:
        raise ConfigError(
            f"channels: no channel named {', '.join(map(repr, unknown))}; this device has "
            f"{', '.join(names)}"
        )


def measure_source(
    source: Any, pipeline: str, request: ImpedanceRequest, cfg: DeviceConfig
) -> ImpedanceReport:
    """A window of a running ``ads1299_source``'s counts (blocks: run it in a worker thread).

    Raises:
        PipelineStateError: its excitation is off, or not at fDR/4, or drives another current.
        ConfigError: an unknown channel name.
        TimeoutError: no window came (the pipeline stopped, or kept losing samples).
    """
    excitation = source_excitation(source)
    refusal = Excitation.refusal(excitation, f" of pipeline {pipeline!r}")
    if refusal is not None or excitation is None:
        raise PipelineStateError(
            f"{refusal}; or stop it (eegpi stop {pipeline}) to check on the idle device, or "
            "run a pipeline that has it (eegpi start impedance)"
        )
    wanted = request.current
    if wanted and CURRENTS_NA[wanted] != excitation.current_na:
        raise PipelineStateError(
            f"pipeline {pipeline!r} drives {excitation.current_na:g} nA, not {wanted}; ask "
            "for its current (or none), or stop it to check on the idle device at another"
        )
    samples = samples_for(request.duration_s, float(source.params.sample_rate))
    try:
        window = source.impedance.collect(samples, request.duration_s * 2 + _WAIT_MARGIN_S)
    except RuntimeError as exc:
        raise PipelineStateError(str(exc)) from None
    return _report(source, window, excitation, request, cfg, pipeline)


def _report(
    source: Any,
    window: Window,
    excitation: Excitation,
    request: ImpedanceRequest,
    cfg: DeviceConfig,
    pipeline: str,
) -> ImpedanceReport:
    report = measure_running(
        source,
        window,
        excitation,
        series_kohm=cfg.series_resistance_kohm,
        thresholds=request.thresholds,
        only=request.channels,
    )
    _only(report, request, window.meta.channels)
    return replace(report, pipeline=pipeline)


def measure_idle(cfg: DeviceConfig, request: ImpedanceRequest) -> ImpedanceReport:
    """Open the device with the excitation on, take one window, close it (blocks).

    Raises:
        HardwareError: the device cannot be opened or stops delivering.
        ConfigError: an unknown channel name, or a chip count the board cannot hold.
    """
    from eegpi.pipeline.stages.source import Ads1299Source, Ads1299SourceParams

    chips = request.chips or (2 if cfg.two_chip_selects else 1)
    if cfg.backend == "mock" and not request.chips and cfg.emulator.chips:
        chips = cfg.emulator.chips
    try:
        cfg.check_chips(chips)
        params = Ads1299SourceParams(
            sample_rate=CHECK_SAMPLE_RATE,
            gain=CHECK_GAIN,
            chips=chips,
            lead_off={"frequency": MEASURABLE, "current": request.current or "6nA"},
            tick_ms=20.0,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    source = Ads1299Source("impedance-check", params)
    excitation = source_excitation(source)
    assert excitation is not None
    ctx = StageContext(pipeline="", device=cfg, publisher=NullPublisher())
    samples = samples_for(request.duration_s, CHECK_SAMPLE_RATE)
    allowed_s = request.duration_s * 2 + _WAIT_MARGIN_S
    try:
        source.open({}, ctx)
        source.start()
        builder = WindowBuilder(samples)
        skipped = 0
        deadline = time.monotonic() + allowed_s
        while time.monotonic() < deadline:
            block = source.read(0.5)
            if block is None:
                continue
            if skipped < _SETTLE_SAMPLES:  # the first conversions after START
                skipped += block.n_samples
                continue
            builder.add(block)
            if builder.done.is_set():
                return _report(source, builder.window(), excitation, request, cfg, "")
        raise TimeoutError(
            f"the device delivered no {samples} contiguous samples within {allowed_s:g} s"
        )
    finally:
        source.close()
