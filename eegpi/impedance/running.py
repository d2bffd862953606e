"""Impedance on a running ``ads1299_source``: its excitation, its lead-off status, a window of
its counts -> a report. Shared by the ``impedance`` stage and ``Device.MeasureImpedance``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from eegpi.impedance.measure import Excitation, measure_window
from eegpi.impedance.report import ImpedanceReport, Thresholds
from eegpi.impedance.tap import Window
from eegpi.status import DeviceReport
from eegpi.stream import StreamMeta

__all__ = ["ExcitedSource", "lead_off_flags", "measure_running", "source_excitation"]


class ExcitedSource(Protocol):
    """What this module reads of an ``ads1299_source``."""

    name: str
    params: Any
    """Its params: ``lead_off_settings``, ``srb1``, ``channel_names``."""

    def device_report(self) -> Any: ...


def source_excitation(source: ExcitedSource) -> Excitation | None:
    """The lead-off current the source programs (None: none)."""
    params = source.params
    return Excitation.of_source(params.lead_off_settings, params.srb1)


def lead_off_flags(source: ExcitedSource, names: Sequence[str]) -> list[bool]:
    """Per channel of ``names``: the chip's comparator reports its P or N electrode off, in the
    newest status word the source read (only where lead-off sensing is on)."""
    report = source.device_report()
    if not isinstance(report, DeviceReport):
        return [False] * len(names)
    given = source.params.channel_names
    own = list(given or (f"ch{k + 1}" for k in range(len(report.lead_off))))
    off = {
        n: (lo.p_off or lo.n_off) and lo.sensed for n, lo in zip(own, report.lead_off, strict=False)
    }
    return [off.get(name, False) for name in names]


def _per_channel(meta: StreamMeta, key: str, default: Any) -> list[Any]:
    value = meta.extra.get(key, default)
    if isinstance(value, list | tuple):
        return list(value)
    return [value] * len(meta.channels)


def measure_running(
    source: ExcitedSource,
    window: Window,
    excitation: Excitation,
    *,
    series_kohm: float,
    thresholds: Thresholds,
    only: Collection[str] = (),
) -> ImpedanceReport:
    """The report of one window of the source's counts: every normal-input channel (those of
    ``only`` when given)."""
    meta = window.meta
    names = meta.channels
    kinds = _per_channel(meta, "input", "normal")
    measured = [
        k == "normal" and (not only or n in only) for n, k in zip(names, kinds, strict=False)
    ]
    return measure_window(
        window.counts,
        seq=window.seq,
        timestamp=window.timestamp,
        sample_rate=meta.sample_rate,
        names=names,
        gains=[float(g) for g in _per_channel(meta, "gain", 24)],
        vref_v=float(meta.extra.get("vref_v", 4.5)),
        excitation=excitation,
        series_kohm=series_kohm,
        thresholds=thresholds,
        lead_off=lead_off_flags(source, names),
        measured=measured,
    )
