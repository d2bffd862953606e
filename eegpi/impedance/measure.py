"""One impedance measurement: a window of a channel's counts -> kOhm, flags and a grade.

The excitation is what the source programmed (its ``lead_off`` param), carried downstream in
the stream's metadata (:meth:`Excitation.to_meta`) so a stage far from the source knows the
current and whether it is on. Only the AC excitation at fDR/4 can be measured here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from eegpi.ads1299.settings import LeadOffSettings
from eegpi.impedance.estimate import ADC_FULL_SCALE, TONE_PER_IZ, fs4_amplitude, railed
from eegpi.impedance.report import ChannelImpedance, ImpedanceReport, Thresholds, grade

__all__ = ["CURRENTS_NA", "MEASURABLE", "Excitation", "measure_window"]

CURRENTS_NA = {"6nA": 6.0, "24nA": 24.0, "6uA": 6000.0, "24uA": 24000.0}
"""LOFF.ILEAD_OFF settings in nA."""
MEASURABLE = "ac_fdr/4"
"""The lead-off frequency an impedance check needs."""
_HOW = "lead_off: {frequency: ac_fdr/4, current: 6nA}"
"""The source param that turns the measurable excitation on (for messages)."""


@dataclass(frozen=True)
class Excitation:
    """The lead-off current a source drives through the electrodes."""

    current_na: float
    frequency: str
    """``dc``, ``ac_7.8hz``, ``ac_31.2hz`` or ``ac_fdr/4`` (LOFF.FLEAD_OFF)."""
    sides: int = 1
    """1: the P inputs only (a common SRB1 reference, whose current returns through the bias
    electrode); 2: P and N, so a channel measures both of its electrodes in series."""

    @classmethod
    def of_source(cls, settings: LeadOffSettings | None, srb1: bool) -> Excitation | None:
        """What a source with these ``lead_off`` settings drives (None: nothing)."""
        if settings is None:
            return None
        return cls(CURRENTS_NA[settings.current], settings.frequency, 1 if srb1 else 2)

    def to_meta(self) -> dict[str, Any]:
        """Stream-metadata entries that describe it."""
        return {
            "lead_off_na": self.current_na,
            "lead_off_frequency": self.frequency,
            "lead_off_sides": self.sides,
        }

    @classmethod
    def from_meta(cls, extra: Mapping[str, Any]) -> Excitation | None:
        """Read back :meth:`to_meta` (None: the source drives no lead-off current)."""
        current = extra.get("lead_off_na")
        if current is None:
            return None
        return cls(
            float(current),
            str(extra.get("lead_off_frequency")),
            int(extra.get("lead_off_sides", 1)),
        )

    @staticmethod
    def refusal(found: Excitation | None, source: str) -> str | None:
        """Why an impedance check cannot measure with ``found`` (None: it can)."""
        if found is None:
            return (
                f"the source{source} drives no lead-off current; an impedance check needs the AC "
                f"excitation at fDR/4: set {_HOW} on it"
            )
        if found.frequency != MEASURABLE:
            return (
                f"the source{source} drives lead-off current at {found.frequency}; an impedance "
                f"check needs it at fDR/4 (frequency: ac_fdr/4), e.g. {_HOW}"
            )
        return None


def measure_window(
    counts: npt.NDArray[Any],
    *,
    seq: int,
    timestamp: float,
    sample_rate: float,
    names: Sequence[str],
    gains: Sequence[float],
    vref_v: float,
    excitation: Excitation,
    series_kohm: float,
    thresholds: Thresholds,
    lead_off: Sequence[bool],
    measured: Sequence[bool] | None = None,
) -> ImpedanceReport:
    """Impedance of every ``measured`` channel (columns of ``counts``) over the window.

    Raises:
        ValueError: a window too short to hold two cycles of the tone.
    """
    tone = fs4_amplitude(counts)
    volts = tone * vref_v / (np.asarray(gains, dtype=np.float64) * ADC_FULL_SCALE)
    ohms = volts / (TONE_PER_IZ * excitation.current_na * 1e-9)
    series = series_kohm * excitation.sides
    at_rail = railed(counts)
    out = []
    for k, name in enumerate(names):
        if measured is not None and not measured[k]:
            continue
        rail = bool(at_rail[k])
        kohm = None if rail else max(0.0, float(ohms[k]) / 1e3 - series)
        out.append(
            ChannelImpedance(
                name=name,
                kohm=kohm,
                grade=grade(kohm, bool(lead_off[k]), rail, thresholds),
                lead_off=bool(lead_off[k]),
                railed=rail,
            )
        )
    return ImpedanceReport(
        seq=seq,
        timestamp=timestamp,
        frequency_hz=sample_rate / 4,
        current_na=excitation.current_na,
        window_s=len(counts) / sample_rate,
        thresholds=thresholds,
        channels=tuple(out),
        series_kohm=series,
    )
