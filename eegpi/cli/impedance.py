"""``eegpi impedance``: each electrode's impedance, as a table (grades in colour on a terminal),
as JSON, or redrawn until Ctrl-C (``--watch``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from eegpi.cli.client import ControlClient
from eegpi.cli.output import print_json, table
from eegpi.impedance.report import ImpedanceReport
from eegpi.rpc.impedance import result_from_pb
from eegpi.v1 import device_pb2 as dpb

__all__ = ["add_impedance_arguments", "cmd_impedance", "render"]

_CALL_SLACK_S = 10.0
"""Deadline beyond the window: opening the idle device and its first conversions."""
_COLOURS = {"good": "32", "fair": "33", "poor": "31", "lead_off": "31", "railed": "31"}
"""ANSI colours of the grades: green, yellow, red."""
_CLEAR = "\x1b[H\x1b[2J"


def add_impedance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--duration",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="measurement window, 0.1-10 (default 1)",
    )
    p.add_argument(
        "--current",
        choices=("6nA", "24nA", "6uA", "24uA"),
        help="excitation current of a check on the idle device (default 6nA); a running "
        "pipeline measures with its own",
    )
    p.add_argument(
        "--channel",
        metavar="NAME",
        action="append",
        default=[],
        help="report this channel (repeatable; default: every electrode)",
    )
    p.add_argument("--good", metavar="KOHM", type=float, default=0.0, help="good up to (10)")
    p.add_argument("--fair", metavar="KOHM", type=float, default=0.0, help="fair up to (50)")
    p.add_argument(
        "--chips",
        metavar="N",
        type=int,
        default=0,
        help="ADS1299s in the chain, for a check on the idle device (default 1)",
    )
    p.add_argument("--watch", action="store_true", help="measure again and redraw until Ctrl-C")


def _request(args: argparse.Namespace) -> dpb.MeasureImpedanceRequest:
    return dpb.MeasureImpedanceRequest(
        duration_s=args.duration,
        current=args.current or "",
        channels=args.channel,
        good_kohm=args.good,
        fair_kohm=args.fair,
        chips=args.chips,
    )


def _json(report: ImpedanceReport) -> dict[str, Any]:
    return {**report.to_event(), "pipeline": report.pipeline}


def render(report: ImpedanceReport, colour: bool) -> str:
    """The table: electrode, kOhm, grade (coloured when ``colour``), and where it came from."""
    rows = []
    for c in report.channels:
        value = "-" if c.kohm is None else f"{c.kohm:.1f}"
        label = c.grade.replace("_", "-")
        shown = f"\x1b[{_COLOURS.get(c.grade, '0')}m{label}\x1b[0m" if colour else label
        rows.append((c.name, value, shown))
    where = f"pipeline {report.pipeline}" if report.pipeline else "idle device"
    limits = report.thresholds
    head = (
        f"impedance ({where}): {report.current_na:g} nA at {report.frequency_hz:g} Hz over "
        f"{report.window_s:g} s, {report.series_kohm:g} kOhm series subtracted; good <= "
        f"{limits.good_kohm:g}, fair <= {limits.fair_kohm:g} kOhm"
    )
    return head + "\n" + table(("ELECTRODE", "KOHM", "GRADE"), rows)


def cmd_impedance(args: argparse.Namespace) -> int:
    """One measurement, or (``--watch``) one after the other until Ctrl-C, which then exits 0:
    that is how watching is meant to end."""
    try:
        return _measure(args)
    except KeyboardInterrupt:
        if not args.watch:
            raise
        return 0


def _measure(args: argparse.Namespace) -> int:
    deadline = max(args.timeout, args.duration + _CALL_SLACK_S)
    request = _request(args)
    colour = sys.stdout.isatty()
    with ControlClient(args.grpc, token=args.token, timeout=args.timeout) as client:
        first = True
        while True:
            reply = client.call(
                client.device.MeasureImpedance,
                request,
                timeout=deadline,
                on_deadline=f"the impedance check did not finish within {deadline:g} s",
            )
            report = result_from_pb(reply)
            if args.json and args.watch:
                print(json.dumps(_json(report)), flush=True)
            elif args.json:
                print_json(_json(report))
            else:
                prefix = _CLEAR if args.watch and colour else ("" if first else "\n")
                print(prefix + render(report, colour), flush=True)
            if not args.watch:
                return 0
            first = False  # no pause: the check itself takes the window's time
