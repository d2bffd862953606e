"""Stateful IIR filters and decimation: ``highpass``, ``lowpass``, ``bandpass``, ``notch``,
``decimate``.

Every filter is designed once in ``open`` as second-order sections at the input's sample rate
(Butterworth and notch by :mod:`~eegpi.pipeline.stages.design`, without importing
``scipy.signal``) and then run through :class:`~eegpi.pipeline.stages.sos.SosState` (scipy's
``sosfilt`` kernel without its per-call validation), carrying the per-channel state from one
block to the next. The state is initialised from the first sample of the stream (the filter's
step-response steady state scaled by that sample), so a stream that starts at a DC offset shows
no start-up transient. Because the state is carried, filtering a stream block by block gives
the same output as filtering it in one call, whatever the block sizes (zero-sample blocks
included).

A filter's params may change while it runs (``live_params``: cut-offs and order, the notch's
frequency, quality, harmonics and ``enabled``): the new filter is designed at the same rate and
its state starts from its steady state for the next sample, as at the start of a stream, so the
output stays continuous (no ``seq`` gap) and shows no transient beyond the new filter's own
settling to the signal.

A gap in ``seq`` (samples lost upstream) does not reset the state: the filter continues as if
the missing samples had never existed. The gap itself stays visible in ``seq`` and is counted
where the samples were lost; resetting would add a start-up transient on top of the loss.

``decimate`` low-passes (Chebyshev I IIR as in :func:`scipy.signal.decimate`, or a Hamming
windowed FIR) and then keeps the input samples whose ``seq`` is a multiple of ``factor``.
Output sample ``k`` is input sample ``k * factor``, so output ``seq = input seq // factor`` and
which samples are kept depends only on the stream position, never on how it was split into
blocks. A block that holds no kept sample yields a zero-sample block positioned at the next
output slot.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from eegpi.exc import ConfigError, StageError
from eegpi.lazy import LazyModule
from eegpi.pipeline.registry import register
from eegpi.pipeline.stage import Stage, StageContext
from eegpi.pipeline.stages.design import butter_sos, notch_sos
from eegpi.pipeline.stages.sos import SosState
from eegpi.stream import Block, StreamMeta

signal: Any = LazyModule("scipy.signal")  # imported when a decimate stage is designed

__all__ = [
    "Bandpass",
    "Decimate",
    "FilterStage",
    "Highpass",
    "Lowpass",
    "Notch",
    "check_positive",
    "int_in_range",
    "single_input",
]

FloatArray = npt.NDArray[np.float64]

MAX_ORDER = 8
MAX_DECIMATION = 128
"""Larger factors: chain two decimate stages (cheaper; the IIR design stays well conditioned)."""


def check_positive(name: str, value: object) -> float:
    """``value`` as a finite float > 0, or ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: {value!r} must be a finite number above 0")
    return float(value)


def int_in_range(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``low..high``, or ValueError naming the field."""
    bounds = f"{low}..{high}" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an integer {bounds}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name}: must be an integer {bounds}, got {value}")
    return value


def single_input(inputs: Mapping[str, StreamMeta]) -> StreamMeta:
    """The metadata on port ``in``; ConfigError when the stage is wired otherwise."""
    try:
        return inputs["in"]
    except KeyError:
        raise ConfigError(f"expects one input on port 'in', got {sorted(inputs)}") from None


def _below_nyquist(name: str, freq: float, sample_rate: float) -> None:
    nyquist = sample_rate / 2
    if freq >= nyquist:
        raise ConfigError(
            f"{name}: {freq:g} Hz must be below the Nyquist frequency {nyquist:g} Hz "
            f"(half the {sample_rate:g} Hz input rate)"
        )


def _as_float_samples(block: Block, n_channels: int, stage: str) -> FloatArray:
    if block.data.shape[1] != n_channels:
        raise StageError(
            f"{stage}: block has {block.data.shape[1]} channels, the stream was opened "
            f"with {n_channels}"
        )
    return np.asarray(block.data, dtype=np.float64)


class FilterStage(Stage):
    """A causal SOS filter applied per channel with state carried across blocks."""

    preload = ("eegpi.pipeline.stages.kernel:sosfilt",)

    def __init__(self, name: str, params: Any) -> None:
        super().__init__(name, params)
        self._sos: FloatArray = np.zeros((0, 6))
        self._state: SosState | None = None
        self._n_channels = 0
        self._sample_rate = 0.0

    @abstractmethod
    def design(self, sample_rate: float, params: Any = None) -> FloatArray:
        """Second-order sections for ``params`` (default: the stage's) at ``sample_rate``;
        ConfigError naming the bad field."""

    @property
    def sos(self) -> FloatArray:
        """The designed sections (valid after ``open``)."""
        return self._sos

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        meta = single_input(inputs)
        self._sample_rate = float(meta.sample_rate)
        self._sos = self.design(self._sample_rate)
        self._n_channels = len(meta.channels)
        self._state = SosState(self._sos, self._n_channels)
        return {"out": meta}

    def update_params(self, params: Any) -> None:
        """Redesign at the stream's rate; the new state starts at the next sample's steady
        state (as a stream's first sample does), so the output goes on without a gap."""
        sos = self.design(self._sample_rate, params)  # ConfigError: the old filter stays
        self._sos = sos
        self._state = SosState(sos, self._n_channels)

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        block = inputs.get("in")
        if block is None:
            return {}
        assert self._state is not None, "process before open"
        if block.data.shape[1] != self._n_channels:
            _as_float_samples(block, self._n_channels, self.name)  # raises, naming the stage
        return {"out": block.derive(self._state.apply(block.data))}


def _check_order(order: object) -> None:
    int_in_range("order", order, 1, MAX_ORDER)


@dataclass(frozen=True)
class CutoffParams:
    """Params of ``highpass`` and ``lowpass``."""

    cutoff_hz: float
    """-3 dB frequency."""
    order: int = 4
    """Butterworth order, 1..8."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoff_hz", check_positive("cutoff_hz", self.cutoff_hz))
        _check_order(self.order)


class _CutoffFilter(FilterStage):
    """A Butterworth filter with one cut-off; subclasses name the kind."""

    Params = CutoffParams
    live_params = ("cutoff_hz", "order")
    btype: ClassVar[Literal["highpass", "lowpass"]]

    def design(self, sample_rate: float, params: Any = None) -> FloatArray:
        p: CutoffParams = params or self.params
        _below_nyquist("cutoff_hz", p.cutoff_hz, sample_rate)
        return butter_sos(p.order, p.cutoff_hz, self.btype, sample_rate)


@register
class Highpass(_CutoffFilter):
    """Butterworth high-pass: removes electrode drift and DC offset."""

    type_name = "highpass"
    btype = "highpass"


@register
class Lowpass(_CutoffFilter):
    """Butterworth low-pass: removes muscle and mains content above the band of interest."""

    type_name = "lowpass"
    btype = "lowpass"


@dataclass(frozen=True)
class BandpassParams:
    """Params of ``bandpass``."""

    low_hz: float
    """Lower -3 dB frequency."""
    high_hz: float
    """Upper -3 dB frequency; above ``low_hz`` and below Nyquist."""
    order: int = 4
    """Butterworth prototype order, 1..8 (the band-pass has twice as many poles)."""

    def __post_init__(self) -> None:
        low = check_positive("low_hz", self.low_hz)
        high = check_positive("high_hz", self.high_hz)
        if high <= low:
            raise ValueError(f"high_hz: {high:g} must be above low_hz ({low:g})")
        object.__setattr__(self, "low_hz", low)
        object.__setattr__(self, "high_hz", high)
        _check_order(self.order)


@register
class Bandpass(FilterStage):
    """Butterworth band-pass: the usual EEG view (e.g. 1-40 Hz)."""

    type_name = "bandpass"
    Params = BandpassParams
    live_params = ("low_hz", "high_hz", "order")

    def design(self, sample_rate: float, params: Any = None) -> FloatArray:
        p: BandpassParams = params or self.params
        _below_nyquist("high_hz", p.high_hz, sample_rate)
        return butter_sos(p.order, (p.low_hz, p.high_hz), "bandpass", sample_rate)


@dataclass(frozen=True)
class NotchParams:
    """Params of ``notch``."""

    freq_hz: float
    """Mains frequency to remove (50 or 60)."""
    quality: float = 30.0
    """Q = freq_hz / bandwidth at -3 dB; higher is narrower."""
    harmonics: int = 1
    """How many multiples to remove: 1 = freq_hz only, 3 = freq_hz, 2x and 3x."""
    enabled: bool = True
    """False passes the signal through unchanged (a notch switched off while running)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "freq_hz", check_positive("freq_hz", self.freq_hz))
        object.__setattr__(self, "quality", check_positive("quality", self.quality))
        int_in_range("harmonics", self.harmonics, 1, 16)
        if not isinstance(self.enabled, bool):
            raise ValueError(f"enabled: must be true or false, got {self.enabled!r}")


@register
class Notch(FilterStage):
    """IIR notch (scipy's ``iirnotch`` design) at mains frequency and optionally its harmonics."""

    type_name = "notch"
    Params = NotchParams
    live_params = ("freq_hz", "quality", "harmonics", "enabled")

    def design(self, sample_rate: float, params: Any = None) -> FloatArray:
        p: NotchParams = params or self.params
        _below_nyquist("freq_hz", p.freq_hz, sample_rate)
        if not p.enabled:
            return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])  # one section that passes all
        sections = []
        for k in range(1, p.harmonics + 1):
            freq = k * p.freq_hz
            if freq >= sample_rate / 2:
                raise ConfigError(
                    f"harmonics: {p.harmonics} puts harmonic {k} at {freq:g} Hz, at or above "
                    f"the Nyquist frequency {sample_rate / 2:g} Hz; use harmonics: {k - 1}"
                )
            sections.append(notch_sos(freq, p.quality, sample_rate))
        return np.vstack(sections)


@dataclass(frozen=True)
class DecimateParams:
    """Params of ``decimate``."""

    factor: int
    """Keep one sample in ``factor``; output rate = input rate / factor."""
    ftype: Literal["iir", "fir"] = "iir"
    """Anti-alias filter: ``iir`` (order-8 Chebyshev I at 0.8 x new Nyquist, low delay) or
    ``fir`` (Hamming-windowed, 20 x factor + 1 taps: linear phase, but a delay of 10 x factor
    input samples and a cost per sample that grows with the factor)."""

    def __post_init__(self) -> None:
        int_in_range("factor", self.factor, 2, MAX_DECIMATION)
        if self.ftype not in ("iir", "fir"):
            raise ValueError(f"ftype: must be 'iir' or 'fir', got {self.ftype!r}")


@register
class Decimate(Stage):
    """Anti-alias low-pass, then keep every ``factor``-th sample (aligned to ``seq``)."""

    type_name = "decimate"
    Params = DecimateParams
    preload = ("scipy.signal",)

    def __init__(self, name: str, params: Any) -> None:
        super().__init__(name, params)
        self._b: FloatArray = np.ones(1)
        self._a: FloatArray = np.ones(1)
        self._sos: FloatArray | None = None
        self._state: SosState | None = None
        self._zi: FloatArray | None = None
        self._in_rate = 0.0
        self._out_meta: StreamMeta | None = None
        self._n_channels = 0

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        p: DecimateParams = self.params
        meta = single_input(inputs)
        self._in_rate = float(meta.sample_rate)
        if p.ftype == "iir":
            self._sos = signal.cheby1(8, 0.05, 0.8 / p.factor, output="sos")
        else:
            self._sos = None
            self._b = signal.firwin(20 * p.factor + 1, 1.0 / p.factor, window="hamming")
            self._a = np.ones(1)
        self._zi = None
        self._n_channels = len(meta.channels)
        self._state = SosState(self._sos, self._n_channels) if self._sos is not None else None
        # total factor from the acquired stream, when decimate stages are chained
        extra = {**meta.extra, "decimation": int(meta.extra.get("decimation", 1)) * p.factor}
        self._out_meta = meta.with_changes(sample_rate=self._in_rate / p.factor, extra=extra)
        return {"out": self._out_meta}

    def _filter(self, x: FloatArray) -> FloatArray:
        if self._state is not None:
            y = self._state.apply(x)
        else:
            if self._zi is None:
                self._zi = signal.lfilter_zi(self._b, self._a)[:, np.newaxis] * x[0]
            y, self._zi = signal.lfilter(self._b, self._a, x, axis=0, zi=self._zi)
        result: FloatArray = y
        return result

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        block = inputs.get("in")
        if block is None:
            return {}
        assert self._out_meta is not None, "process before open"
        factor: int = self.params.factor
        x = _as_float_samples(block, self._n_channels, self.name)
        y = self._filter(x) if x.shape[0] else x
        # First input index in this block whose seq is a multiple of factor.
        first = (-block.seq) % factor
        kept = np.ascontiguousarray(y[first::factor], dtype=np.float64)
        out = Block(
            data=kept,
            seq=(block.seq + first) // factor,
            timestamp=block.timestamp + first / self._in_rate,
            meta=self._out_meta,
        )
        return {"out": out}
