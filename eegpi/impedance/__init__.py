"""Electrode impedance from the ADS1299's AC lead-off excitation at fDR/4.

:mod:`~eegpi.impedance.estimate` measures the tone, :mod:`~eegpi.impedance.measure` turns a
window of counts into kOhm with flags and grades (:mod:`~eegpi.impedance.report`). The
``impedance`` stage runs it on a pipeline's stream; ``Device.MeasureImpedance`` runs it on the
running source or, with none running, on the device opened for the check.
"""

from __future__ import annotations

from eegpi.impedance.measure import Excitation, measure_window
from eegpi.impedance.report import ChannelImpedance, ImpedanceReport, Thresholds

__all__ = ["ChannelImpedance", "Excitation", "ImpedanceReport", "Thresholds", "measure_window"]
