"""Unit conversion and re-referencing: ``to_voltage`` and ``rereference``.

``to_voltage`` turns ADS1299 codes into microvolts with the gain the source actually
programmed, read from the input's metadata (``extra["gain"]``, one per channel, and
``extra["vref_v"]``), never from a guess: one LSB is ``VREF / (gain * 2**23)`` (datasheet; the
full scale of +/-VREF/gain spans 2**24 codes). The metadata of each block is the one it was
converted with: when the source's gain changes while it runs, blocks from then on carry the new
gain, and ``to_voltage`` scales each block by its own, so microvolts stay right across the
change (and its output meta changes with the first such block).

``rereference`` subtracts a reference signal from every channel: the common average of all
channels, or the mean of the named channels (one channel = a linked or single-electrode
reference). All channels are kept, so the layout downstream does not change; a single reference
channel therefore becomes identically zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from eegpi.exc import ConfigError, StageError
from eegpi.pipeline.registry import register
from eegpi.pipeline.stage import NoParams, Stage, StageContext
from eegpi.pipeline.stages.filters import single_input
from eegpi.stream import Block, StreamMeta

__all__ = ["Rereference", "RereferenceParams", "ToVoltage", "uv_per_count"]

FloatArray = npt.NDArray[np.float64]

ADC_HALF_SCALE = 2**23
"""Codes from 0 to positive full scale of the 24-bit two's-complement output."""


def uv_per_count(gain: float, vref_v: float) -> float:
    """Microvolts of one ADS1299 code at ``gain`` with reference voltage ``vref_v``."""
    return vref_v * 1e6 / (gain * ADC_HALF_SCALE)


def _gains(meta: StreamMeta) -> tuple[float, ...]:
    n = len(meta.channels)
    raw = meta.extra.get("gain")
    if raw is None:
        raise ConfigError(
            "input metadata has no 'gain': to_voltage needs the per-channel gain the source "
            "programmed (connect it to an ads1299_source, or to a stage that keeps its metadata)"
        )
    values: Sequence[Any] = raw if isinstance(raw, Sequence) else (raw,) * n
    if len(values) != n:
        raise ConfigError(f"input metadata 'gain' has {len(values)} values for {n} channels")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"input metadata 'gain' must hold positive numbers, got {raw!r}")
    return tuple(float(v) for v in values)


def _vref(meta: StreamMeta) -> float:
    raw = meta.extra.get("vref_v")
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise ConfigError(
            f"input metadata 'vref_v' must be the reference voltage in volts (e.g. 4.5), "
            f"got {raw!r}"
        )
    return float(raw)


@register
class ToVoltage(Stage):
    """ADS1299 codes to microvolts (``units: uV``), per channel from the programmed gain."""

    type_name = "to_voltage"
    Params = NoParams

    def __init__(self, name: str, params: Any) -> None:
        super().__init__(name, params)
        self._scale: FloatArray = np.ones(0)
        self._meta: StreamMeta | None = None
        self._in_meta: StreamMeta | None = None

    @property
    def scale(self) -> FloatArray:
        """Microvolts per code, one per channel (valid after ``open``)."""
        return self._scale

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        meta = single_input(inputs)
        if meta.units != "counts":
            raise ConfigError(
                f"input is in {meta.units!r}, to_voltage converts ADC 'counts' "
                "(connect it directly to the source)"
            )
        self._follow(meta)
        assert self._meta is not None
        return {"out": self._meta}

    def _follow(self, meta: StreamMeta) -> None:
        """Scale and output meta for input described by ``meta``."""
        vref = _vref(meta)
        scale = np.array([uv_per_count(g, vref) for g in _gains(meta)], dtype=np.float64)
        scale.flags.writeable = False
        self._scale, self._in_meta = scale, meta
        self._meta = meta.with_changes(units="uV")

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        block = inputs.get("in")
        if block is None:
            return {}
        if block.data.shape[1] != self._scale.shape[0]:
            raise StageError(
                f"{self.name}: block has {block.data.shape[1]} channels, the stream was "
                f"opened with {self._scale.shape[0]}"
            )
        if block.meta is not self._in_meta:  # the source changed its gain: follow it
            try:
                self._follow(block.meta)
            except ConfigError as exc:
                raise StageError(f"{self.name}: {exc}") from None
        return {"out": block.derive(block.data * self._scale, self._meta)}


@dataclass(frozen=True)
class RereferenceParams:
    """Params of ``rereference``: exactly one of ``mode: average`` or ``channels: [...]``."""

    mode: str | None = None
    """``average``: subtract the mean of all channels (common average reference)."""
    channels: Sequence[str] | None = None
    """Subtract the mean of these channels (e.g. ``[A1, A2]`` for linked ears)."""

    def __post_init__(self) -> None:
        if (self.mode is None) == (self.channels is None):
            raise ValueError(
                "give exactly one of mode: average (common average) "
                "or channels: [names] (reference channels)"
            )
        if self.mode is not None and self.mode != "average":
            raise ValueError(f"mode: must be 'average', got {self.mode!r}")
        if self.channels is not None:
            names = [self.channels] if isinstance(self.channels, str) else self.channels
            if not isinstance(names, Sequence) or not names:
                raise ValueError(f"channels: must be a non-empty list of names, got {names!r}")
            if not all(isinstance(n, str) and n for n in names):
                raise ValueError(f"channels: names must be non-empty strings, got {names!r}")
            if len(set(names)) != len(names):
                raise ValueError(f"channels: names repeat in {list(names)!r}")
            object.__setattr__(self, "channels", tuple(names))


@register
class Rereference(Stage):
    """Re-reference every channel to the common average or to named channels."""

    type_name = "rereference"
    Params = RereferenceParams

    def __init__(self, name: str, params: Any) -> None:
        super().__init__(name, params)
        self._ref_index: tuple[int, ...] = ()
        self._n_channels = 0

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        p: RereferenceParams = self.params
        meta = single_input(inputs)
        self._n_channels = len(meta.channels)
        if p.channels is None:
            if self._n_channels < 2:
                raise ConfigError("mode: average needs at least 2 channels")
            self._ref_index = tuple(range(self._n_channels))
            reference: str | list[str] = "average"
        else:
            missing = [c for c in p.channels if c not in meta.channels]
            if missing:
                raise ConfigError(
                    f"channels: {missing} not in the input; its channels are {list(meta.channels)}"
                )
            self._ref_index = tuple(meta.channels.index(c) for c in p.channels)
            reference = list(p.channels)
        return {"out": meta.with_changes(extra={**meta.extra, "reference": reference})}

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        block = inputs.get("in")
        if block is None:
            return {}
        if block.data.shape[1] != self._n_channels:
            raise StageError(
                f"{self.name}: block has {block.data.shape[1]} channels, the stream was "
                f"opened with {self._n_channels}"
            )
        x = np.asarray(block.data, dtype=np.float64)
        ref = x[:, list(self._ref_index)].mean(axis=1, keepdims=True)
        return {"out": block.derive(x - ref)}
