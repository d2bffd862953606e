"""``Device.MeasureImpedance`` on the wire: the request into an ImpedanceRequest, the report into
an ImpedanceResult, and back (for the CLI)."""

from __future__ import annotations

from eegpi.impedance.check import ImpedanceRequest
from eegpi.impedance.report import ChannelImpedance, ImpedanceReport, Thresholds
from eegpi.v1 import device_pb2 as dpb

__all__ = ["check_deadline", "request_from_pb", "result_from_pb", "result_to_pb"]

_SLACK_S = 1.0
"""Time a check needs beyond its window (opening the idle device, the first conversions)."""


def request_from_pb(msg: dpb.MeasureImpedanceRequest) -> ImpedanceRequest:
    """Raises ConfigError (INVALID_ARGUMENT) for a field out of range."""
    return ImpedanceRequest.of(
        duration_s=msg.duration_s,
        current=msg.current,
        channels=list(msg.channels),
        good_kohm=msg.good_kohm,
        fair_kohm=msg.fair_kohm,
        chips=msg.chips,
    )


def check_deadline(request: ImpedanceRequest, remaining_s: float | None) -> None:
    """Refuse a check that cannot finish before the caller's deadline.

    Raises:
        TimeoutError: (DEADLINE_EXCEEDED) saying how long to allow.
    """
    need = request.duration_s + _SLACK_S
    if remaining_s is not None and remaining_s < need:
        raise TimeoutError(
            f"an impedance check of {request.duration_s:g} s needs about {need:g} s, the call's "
            f"deadline leaves {remaining_s:.1f} s; allow more (eegpi --timeout, grpcurl "
            "-max-time) or ask for a shorter duration_s"
        )


def result_to_pb(report: ImpedanceReport) -> dpb.ImpedanceResult:
    return dpb.ImpedanceResult(
        channels=[
            dpb.ChannelImpedance(
                name=c.name, kohm=c.kohm, grade=c.grade, lead_off=c.lead_off, railed=c.railed
            )
            for c in report.channels
        ],
        frequency_hz=report.frequency_hz,
        current_na=report.current_na,
        window_s=report.window_s,
        series_kohm=report.series_kohm,
        good_kohm=report.thresholds.good_kohm,
        fair_kohm=report.thresholds.fair_kohm,
        pipeline=report.pipeline,
        seq=report.seq,
        timestamp=report.timestamp,
    )


def result_from_pb(msg: dpb.ImpedanceResult) -> ImpedanceReport:
    channels = [
        ChannelImpedance(
            name=c.name,
            kohm=c.kohm if c.HasField("kohm") else None,
            grade=c.grade,  # type: ignore[arg-type]
            lead_off=c.lead_off,
            railed=c.railed,
        )
        for c in msg.channels
    ]
    return ImpedanceReport(
        seq=msg.seq,
        timestamp=msg.timestamp,
        frequency_hz=msg.frequency_hz,
        current_na=msg.current_na,
        window_s=msg.window_s,
        thresholds=Thresholds(good_kohm=msg.good_kohm, fair_kohm=msg.fair_kohm),
        channels=tuple(channels),
        series_kohm=msg.series_kohm,
        pipeline=msg.pipeline,
    )
