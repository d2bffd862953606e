"""What an impedance check reports: per-channel kOhm, a grade, and the flags behind it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DEFAULT_FAIR_KOHM",
    "DEFAULT_GOOD_KOHM",
    "ChannelImpedance",
    "Grade",
    "ImpedanceReport",
    "Thresholds",
    "grade",
]

Grade = Literal["good", "fair", "poor", "lead_off", "railed"]

DEFAULT_GOOD_KOHM = 10.0
"""Up to this an electrode is good: what wet gel electrodes reach on prepared skin."""
DEFAULT_FAIR_KOHM = 50.0
"""Up to this it is fair (dry or semi-dry electrodes, a high-impedance amplifier copes);
above, poor."""


@dataclass(frozen=True)
class Thresholds:
    """Grade limits in kOhm: ``good`` <= good_kohm < ``fair`` <= fair_kohm < ``poor``."""

    good_kohm: float = DEFAULT_GOOD_KOHM
    fair_kohm: float = DEFAULT_FAIR_KOHM

    def __post_init__(self) -> None:
        for name in ("good_kohm", "fair_kohm"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not 0 < value < math.inf:
                raise ValueError(f"{name}: {value!r} is not a positive number of kOhm")
        if self.fair_kohm <= self.good_kohm:
            raise ValueError(
                f"fair_kohm ({self.fair_kohm:g}) must be above good_kohm ({self.good_kohm:g})"
            )
        object.__setattr__(self, "good_kohm", float(self.good_kohm))
        object.__setattr__(self, "fair_kohm", float(self.fair_kohm))

    def to_json(self) -> dict[str, float]:
        return {"good": self.good_kohm, "fair": self.fair_kohm}


def grade(kohm: float | None, lead_off: bool, railed: bool, limits: Thresholds) -> Grade:
    """Lead-off first (the comparator says the electrode is not there), then railed (the
    channel is saturated: no value), then the value against the thresholds."""
    if lead_off:
        return "lead_off"
    if railed or kohm is None:
        return "railed"
    if kohm <= limits.good_kohm:
        return "good"
    return "fair" if kohm <= limits.fair_kohm else "poor"


@dataclass(frozen=True)
class ChannelImpedance:
    """One electrode's result."""

    name: str
    kohm: float | None
    """Impedance in kOhm, the series resistance subtracted; None when railed."""
    grade: Grade
    lead_off: bool
    """The chip's lead-off comparator reports the electrode off (LOFF_STATP/N)."""
    railed: bool
    """The channel sat at the end of the ADC's range: the value cannot be measured."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kohm": None if self.kohm is None else round(self.kohm, 3),
            "grade": self.grade,
            "lead_off": self.lead_off,
            "railed": self.railed,
        }


@dataclass(frozen=True)
class ImpedanceReport:
    """One measurement window over every measured channel."""

    seq: int
    """Sample slot of the window's first sample."""
    timestamp: float
    """Unix time of that sample."""
    frequency_hz: float
    """The excitation's frequency (fDR/4)."""
    current_na: float
    window_s: float
    thresholds: Thresholds
    channels: Sequence[ChannelImpedance]
    series_kohm: float = 0.0
    """What was subtracted from each channel's measured resistance."""
    pipeline: str = ""
    """The running pipeline it was measured on; empty for a check on the idle device."""

    def to_event(self) -> dict[str, Any]:
        """The ``impedance`` topic's event (docs/API.md)."""
        event: dict[str, Any] = {
            "kind": "impedance",
            "seq": self.seq,
            "timestamp": self.timestamp,
            "frequency_hz": self.frequency_hz,
            "current_na": self.current_na,
            "window_s": self.window_s,
            "series_kohm": self.series_kohm,
            "thresholds_kohm": self.thresholds.to_json(),
            "channels": [c.to_json() for c in self.channels],
        }
        if self.pipeline:
            event["pipeline"] = self.pipeline
        return event
