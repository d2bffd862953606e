"""Human output helpers: durations and aligned tables."""

from __future__ import annotations

import pytest

from eegpi.cli.output import format_duration, key_values, table, uptime
from eegpi.status import PipelineState, PipelineStatus


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.9, "42s"), (303, "5m03s"), (3725, "1h02m05s"), (273_600, "3d04h"), (-5, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_table_aligns_columns() -> None:
    out = table(("NAME", "N", "NOTE"), [("default", 1, "x"), ("a", 12345, "")])
    assert out.splitlines() == ["NAME     N      NOTE", "default  1      x", "a        12345"]


def test_key_values() -> None:
    assert key_values([("chip", "ADS1299"), ("held by", "-")]) == "chip     ADS1299\nheld by  -"


def test_uptime_only_while_live() -> None:
    running = PipelineStatus("p", PipelineState.RUNNING, start_time=100.0)
    assert uptime(running, now=160.0) == 60.0
    stopped = PipelineStatus("p", PipelineState.STOPPED, start_time=100.0)
    assert uptime(stopped, now=160.0) is None
