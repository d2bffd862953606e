"""Band power: ``band_power`` turns a stream into power per channel and frequency band.

Every ``step_s`` a Welch estimate (:func:`scipy.signal.welch`, Hann segments of ``segment_s``,
half overlap, mean removed) is taken over the last ``window_s`` of each channel, and the power
spectral density is summed over each band (``[low, high)`` in Hz, times the bin width).

Output layout: one row per step; columns are channel-major, ``"<channel>:<band>"`` (``C1:delta``,
``C1:theta``, ..., ``C2:delta``, ...). ``quantity: power`` gives ``<units>^2`` (band power),
``quantity: density`` the mean PSD in the band, ``<units>^2/Hz``. ``sample_rate`` is
``1 / step_s``.

Windows are aligned to the stream position, not to block boundaries. With ``step`` =
``step_s * sample_rate`` input samples (it may be fractional, e.g. 62.5, so the output rate is
exactly ``1 / step_s``) and ``end(k) = floor((k+1) * step)``, output row ``k`` covers input
``seq`` ``[end(k) - window, end(k))``, its ``seq`` is ``k`` and its ``timestamp`` is that of the
window's last sample. Rows whose window would start before the first sample are not produced.

``bands`` may change while the stage runs (``live_params``): the next row uses the new bands,
over the same window of history, so the output goes on without a gap; its meta (channels,
``bands``) changes with the first row that has them.

A gap in the input ``seq`` discards the history, because a spectrum across missing samples is
wrong: rows resume once a full window of contiguous samples has arrived after the gap, so the
gap shows in the output ``seq`` too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from eegpi.exc import ConfigError, StageError
from eegpi.lazy import LazyModule
from eegpi.pipeline.registry import register
from eegpi.pipeline.stage import Stage, StageContext
from eegpi.pipeline.stages.filters import check_positive, single_input
from eegpi.stream import Block, StreamMeta

signal: Any = LazyModule("scipy.signal")  # imported when a filter is designed

__all__ = ["DEFAULT_BANDS", "BandPower", "BandPowerParams"]

FloatArray = npt.NDArray[np.float64]

DEFAULT_BANDS: Mapping[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}


def _default_bands() -> dict[str, tuple[float, float]]:
    return dict(DEFAULT_BANDS)


def _check_bands(raw: object) -> dict[str, tuple[float, float]]:
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"bands: must map band names to [low_hz, high_hz], got {raw!r}")
    bands: dict[str, tuple[float, float]] = {}
    for name, edges in raw.items():
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(
                f"bands: band names must be non-empty strings without ':', got {name!r}"
            )
        if isinstance(edges, str) or not isinstance(edges, list | tuple) or len(edges) != 2:
            raise ValueError(f"bands.{name}: must be [low_hz, high_hz], got {edges!r}")
        if isinstance(edges[0], int | float) and not isinstance(edges[0], bool) and edges[0] == 0:
            low = 0.0
        else:
            low = check_positive(f"bands.{name} low", edges[0])
        high = check_positive(f"bands.{name} high", edges[1])
        if high <= low:
            raise ValueError(f"bands.{name}: high {high:g} must be above low {low:g}")
        bands[name] = (low, high)
    return bands


@dataclass(frozen=True)
class BandPowerParams:
    """Params of ``band_power``."""

    bands: Mapping[str, tuple[float, float]] = field(default_factory=_default_bands)
    """Band name -> [low_hz, high_hz); default delta/theta/alpha/beta/gamma."""
    window_s: float = 1.0
    """Length of signal each estimate covers."""
    step_s: float = 0.25
    """Time between estimates; the output rate is 1 / step_s."""
    segment_s: float | None = None
    """Welch segment length (default: window_s, one Hann segment; shorter = smoother,
    coarser frequency resolution 1 / segment_s)."""
    quantity: Literal["power", "density"] = "power"
    """``power``: PSD summed over the band (units^2); ``density``: mean PSD (units^2/Hz)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", _check_bands(self.bands))
        window = check_positive("window_s", self.window_s)
        object.__setattr__(self, "window_s", window)
        object.__setattr__(self, "step_s", check_positive("step_s", self.step_s))
        if self.segment_s is not None:
            segment = check_positive("segment_s", self.segment_s)
            if segment > window:
                raise ValueError(f"segment_s: {segment:g} must not exceed window_s ({window:g})")
            object.__setattr__(self, "segment_s", segment)
        if self.quantity not in ("power", "density"):
            raise ValueError(f"quantity: must be 'power' or 'density', got {self.quantity!r}")


@register
class BandPower(Stage):
    """Per-channel power in named frequency bands over a sliding window."""

    type_name = "band_power"
    Params = BandPowerParams
    live_params = ("bands",)
    preload = ("scipy.signal",)

    def __init__(self, name: str, params: Any) -> None:
        super().__init__(name, params)
        self._window = 0
        self._step = Fraction(1)
        self._segment = 0
        self._in_rate = 0.0
        self._masks: FloatArray = np.zeros((0, 0))
        self._n_channels = 0
        # Recent input, a linear buffer compacted to its last window-1 samples when full, so
        # each sample is copied O(1) times instead of re-concatenating the window every block.
        self._buffer: FloatArray = np.zeros((0, 0))
        self._filled = 0
        self._buffer_end: int | None = None
        self._out_meta: StreamMeta | None = None
        self._in_meta: StreamMeta | None = None

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        p: BandPowerParams = self.params
        meta = single_input(inputs)
        fs = float(meta.sample_rate)
        self._in_rate = fs
        self._window = round(p.window_s * fs)
        self._step = Fraction(p.step_s * fs).limit_denominator(10_000)
        self._segment = round((p.segment_s or p.window_s) * fs)
        if self._segment < 8:
            raise ConfigError(
                f"segment_s: {self._segment} samples at {fs:g} Hz is too short for a spectrum "
                "(need at least 8); lengthen window_s or segment_s"
            )
        if self._step < 1:
            raise ConfigError(f"step_s: {p.step_s:g} s is shorter than one sample at {fs:g} Hz")
        self._in_meta = meta
        self._masks = self._band_masks(p.bands)
        self._n_channels = len(meta.channels)
        self._buffer = np.zeros((2 * self._window, self._n_channels))
        self._filled = 0
        self._buffer_end = None
        self._out_meta = self._meta_for(p.bands)
        return {"out": self._out_meta}

    def update_params(self, params: Any) -> None:
        """New bands from the next row on; the history (and so the row numbering) stays."""
        masks = self._band_masks(params.bands)  # ConfigError: the old bands stay
        self._masks = masks
        self._out_meta = self._meta_for(params.bands)

    def _band_masks(self, bands: Mapping[str, tuple[float, float]]) -> FloatArray:
        """(n_freqs, n_bands) weights that turn a PSD into band values; ConfigError names a
        band the input cannot resolve."""
        p: BandPowerParams = self.params
        fs = self._in_rate
        freqs = np.fft.rfftfreq(self._segment, d=1.0 / fs)
        bin_hz = fs / self._segment
        masks = []
        for band, (low, high) in bands.items():
            if high > fs / 2:
                raise ConfigError(
                    f"bands.{band}: {high:g} Hz is above the Nyquist frequency {fs / 2:g} Hz "
                    f"of the {fs:g} Hz input"
                )
            mask = (freqs >= low) & (freqs < high)
            if not mask.any():
                raise ConfigError(
                    f"bands.{band}: [{low:g}, {high:g}) Hz holds no frequency bin at "
                    f"{bin_hz:g} Hz resolution; lengthen segment_s (resolution = 1/segment_s)"
                )
            # density: mean PSD over the band's bins; power: PSD x bin width, summed
            weight = 1.0 / mask.sum() if p.quantity == "density" else bin_hz
            masks.append(mask * weight)
        return np.array(masks, dtype=np.float64).T

    def _meta_for(self, bands: Mapping[str, tuple[float, float]]) -> StreamMeta:
        meta = self._in_meta
        assert meta is not None, "open first"
        p: BandPowerParams = self.params
        fs = self._in_rate
        units = f"{meta.units}^2" if p.quantity == "power" else f"{meta.units}^2/Hz"
        channels = tuple(f"{ch}:{band}" for ch in meta.channels for band in bands)
        extra = {
            "bands": {band: list(edges) for band, edges in bands.items()},
            "source_channels": tuple(meta.channels),
            "window_s": self._window / fs,
            "step_s": float(self._step) / fs,
            "resolution_hz": fs / self._segment,
        }
        return StreamMeta(
            sample_rate=fs / float(self._step), channels=channels, units=units, extra=extra
        )

    def _row_end(self, k: int) -> int:
        """Exclusive end ``seq`` of the window of row ``k``: floor((k + 1) * step)."""
        return (k + 1) * self._step.numerator // self._step.denominator

    def _first_row_ending_at(self, seq: int) -> int:
        """Smallest row ``k`` whose window ends (exclusive) at or after ``seq``."""
        p, q = self._step.numerator, self._step.denominator
        return -(-seq * q // p) - 1

    def _first_row_ending_after(self, seq: int) -> int:
        """Smallest row ``k`` whose window ends (exclusive) after ``seq``."""
        return self._first_row_ending_at(seq + 1)

    def _append(self, block: Block) -> FloatArray:
        """Add the block to the buffer; the contiguous samples that end at ``block.end_seq``."""
        if self._buffer_end != block.seq:
            self._filled = 0  # a gap (or the first block): history is no longer contiguous
        n = block.n_samples
        if self._filled + n > self._buffer.shape[0]:
            keep = min(self._window - 1, self._filled)
            tail = self._buffer[self._filled - keep : self._filled]
            if keep + n > self._buffer.shape[0]:
                grown = np.empty((keep + n + self._window, self._n_channels))
                grown[:keep] = tail
                self._buffer = grown
            else:
                self._buffer[:keep] = tail  # overlapping move, handled by numpy
            self._filled = keep
        self._buffer[self._filled : self._filled + n] = block.data
        self._filled += n
        self._buffer_end = block.end_seq
        return self._buffer[: self._filled]

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        block = inputs.get("in")
        if block is None:
            return {}
        assert self._out_meta is not None, "process before open"
        if block.data.shape[1] != self._n_channels:
            raise StageError(
                f"{self.name}: block has {block.data.shape[1]} channels, the stream was "
                f"opened with {self._n_channels}"
            )
        x = self._append(block)
        start = block.end_seq - x.shape[0]  # seq of x[0]
        # rows whose window ends (exclusive) in (seq, end_seq] and starts at or after `start`
        first_k = max(
            self._first_row_ending_after(block.seq),
            self._first_row_ending_at(start + self._window),
        )
        last_k = self._first_row_ending_after(block.end_seq) - 1
        n_rows = max(0, last_k - first_k + 1)
        rows = np.zeros((n_rows, len(self._out_meta.channels)))
        if n_rows:
            p, q = self._step.numerator, self._step.denominator
            ends = (np.arange(first_k, last_k + 1, dtype=np.int64) + 1) * p // q - start
            windows = sliding_window_view(x, self._window, axis=0)[ends - self._window]
            _, psd = signal.welch(
                windows, fs=self._in_rate, nperseg=self._segment, axis=-1, detrend="constant"
            )
            # psd: (rows, channels, freqs) -> (rows, channels, bands) -> channel-major columns
            rows = (psd @ self._masks).reshape(n_rows, -1)
        # an empty block is positioned at the next row this stream can produce
        seq = first_k if n_rows else max(first_k, last_k + 1)
        last_sample = self._row_end(seq) - 1
        out = Block(
            data=rows,
            seq=seq,
            timestamp=block.timestamp + (last_sample - block.seq) / self._in_rate,
            meta=self._out_meta,
        )
        return {"out": out}
