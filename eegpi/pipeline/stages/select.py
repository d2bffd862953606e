"""The ``select`` stage: pick, order and rename channels.

``channels`` names the input channels to keep, in the order wanted, by name or by 1-based
position; ``rename`` (``{old: new}``) or ``names`` (one per picked channel) gives them new names.
Everything is checked against the input's metadata when the pipeline opens, so a typo fails
before any sample flows, with the input's channel names in the message.

Per-channel facts in the metadata's ``extra`` travel with their channels: ``gain`` and ``input``
(one entry per channel, from the source) are picked like the columns, so ``to_voltage`` after a
``select`` still scales every channel by its own gain. Other facts describe the stream as a whole
(``vref_v``, ``device``, ``reference``, ``decimation``, ...) and pass unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eegpi.exc import ConfigError, StageError
from eegpi.pipeline.labels import check_channel_name, check_unique
from eegpi.pipeline.registry import register
from eegpi.pipeline.stage import Stage, StageContext
from eegpi.pipeline.stages.filters import single_input
from eegpi.safe_yaml import short_repr
from eegpi.stream import Block, StreamMeta

__all__ = ["PER_CHANNEL_EXTRA", "Select", "SelectParams"]

PER_CHANNEL_EXTRA = ("gain", "input")
"""``extra`` keys that hold one value per channel: picked with the channels."""


def _picks(value: Any) -> tuple[str | int, ...]:
    items = [value] if isinstance(value, (str, int)) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(
            f"channels: {short_repr(value)} is not a non-empty list of channel names or "
            "1-based channel numbers"
        )
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ValueError(
                f"channels: {short_repr(item)} is neither a channel name nor a 1-based number"
            )
        if isinstance(item, int) and item < 1:
            raise ValueError(f"channels: {item} is not a channel number (they count from 1)")
        if isinstance(item, str) and not item:
            raise ValueError("channels: an empty string is not a channel name")
    twice = sorted({str(i) for i in items if items.count(i) > 1})
    if twice:
        raise ValueError(f"channels: {', '.join(twice)} picked more than once")
    return tuple(items)


@dataclass(frozen=True)
class SelectParams:
    """Params of ``select``: ``channels`` and at most one of ``rename`` and ``names``."""

    channels: Sequence[str | int]
    """The channels to keep, in output order: names (``Fp1``) or 1-based numbers (``3``)."""
    rename: Mapping[str, str] | None = None
    """New names for some picked channels, ``{old: new}`` (old as in the input)."""
    names: Sequence[str] | None = None
    """New names for all picked channels, one per entry of ``channels``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", _picks(self.channels))
        if self.rename is not None and self.names is not None:
            raise ValueError("rename: give rename ({old: new}) or names ([...]), not both")
        if self.rename is not None:
            if not isinstance(self.rename, Mapping) or not self.rename:
                raise ValueError(
                    f"rename: {short_repr(self.rename)} is not a mapping of old to new names"
                )
            for old, new in self.rename.items():
                if not isinstance(old, str):
                    raise ValueError(
                        f"rename: key {short_repr(old)} is not a channel name (quote it in YAML)"
                    )
                check_channel_name(f"rename.{old}", new)
            object.__setattr__(self, "rename", dict(self.rename))
        if self.names is not None:
            if isinstance(self.names, str) or not isinstance(self.names, (list, tuple)):
                raise ValueError(f"names: {short_repr(self.names)} is not a list of names")
            if len(self.names) != len(self.channels):
                raise ValueError(
                    f"names: {len(self.names)} names for {len(self.channels)} channels; give "
                    "one per entry of channels"
                )
            names = tuple(check_channel_name("names", n) for n in self.names)
            check_unique("names", names)
            object.__setattr__(self, "names", names)


@register
class Select(Stage):
    """Keeps the chosen channels in the chosen order, optionally under new names."""

    type_name = "select"
    Params = SelectParams

    def __init__(self, name: str, params: SelectParams) -> None:
        super().__init__(name, params)
        self.params: SelectParams = params
        self._index: tuple[int, ...] = ()
        self._identity = False
        self._n_in = 0
        self._meta: StreamMeta | None = None

    @property
    def index(self) -> tuple[int, ...]:
        """0-based input column of each output column (valid after ``open``)."""
        return self._index

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        p = self.params
        meta = single_input(inputs)
        available = list(meta.channels)
        self._n_in = len(available)
        index = []
        for pick in p.channels:
            if isinstance(pick, int):
                if pick > self._n_in:
                    raise ConfigError(
                        f"channels: {pick} is past the last channel; the input has "
                        f"{self._n_in} ({available})"
                    )
                index.append(pick - 1)
            elif pick in available:
                index.append(available.index(pick))
            else:
                raise ConfigError(
                    f"channels: {pick!r} is not in the input; its channels are {available}"
                )
        twice = sorted({available[i] for i in index if index.count(i) > 1})
        if twice:
            raise ConfigError(f"channels: {', '.join(twice)} picked more than once")
        picked = [available[i] for i in index]
        if p.names is not None:
            out_names = list(p.names)
        else:
            rename = p.rename or {}
            unknown = [old for old in rename if old not in picked]
            if unknown:
                raise ConfigError(
                    f"rename: {', '.join(map(repr, unknown))} not among the picked channels "
                    f"{picked}"
                )
            out_names = [rename.get(name, name) for name in picked]
        try:
            check_unique("rename" if p.rename else "names", out_names)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._index = tuple(index)
        self._identity = self._index == tuple(range(self._n_in))
        extra = dict(meta.extra)
        for key in PER_CHANNEL_EXTRA:
            value = extra.get(key)
            if isinstance(value, (list, tuple)) and len(value) == self._n_in:
                extra[key] = tuple(value[i] for i in index)
        self._meta = meta.with_changes(channels=tuple(out_names), extra=extra)
        return {"out": self._meta}

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        block = inputs.get("in")
        if block is None:
            return {}
        if block.data.shape[1] != self._n_in:
            raise StageError(
                f"{self.name}: block has {block.data.shape[1]} channels, the stream was "
                f"opened with {self._n_in}"
            )
        data = block.data if self._identity else np.take(block.data, self._index, axis=1)
        return {"out": block.derive(data, self._meta)}
