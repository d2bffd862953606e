"""``eegpi impedance``'s table: grades in colour only for a terminal, railed values as '-'."""

from __future__ import annotations

from eegpi.cli.impedance import render
from eegpi.impedance.report import ChannelImpedance, ImpedanceReport, Thresholds


def _report() -> ImpedanceReport:
    return ImpedanceReport(
        seq=0,
        timestamp=0.0,
        frequency_hz=62.5,
        current_na=6.0,
        window_s=0.992,
        thresholds=Thresholds(),
        channels=(
            ChannelImpedance("Fp1", 4.2, "good", False, False),
            ChannelImpedance("Fp2", 33.0, "fair", False, False),
            ChannelImpedance("O1", None, "railed", False, True),
            ChannelImpedance("O2", 80.0, "lead_off", True, False),
        ),
        series_kohm=2.2,
        pipeline="impedance",
    )


def test_plain_table_for_a_pipe() -> None:
    lines = render(_report(), colour=False).splitlines()
    assert lines[0].startswith("impedance (pipeline impedance): 6 nA at 62.5 Hz over 0.992 s")
    assert [line.split() for line in lines[2:]] == [
        ["Fp1", "4.2", "good"],
        ["Fp2", "33.0", "fair"],
        ["O1", "-", "railed"],
        ["O2", "80.0", "lead-off"],
    ]


def test_grades_in_green_yellow_red_on_a_terminal() -> None:
    text = render(_report(), colour=True)
    assert "\x1b[32mgood\x1b[0m" in text and "\x1b[33mfair\x1b[0m" in text
    assert "\x1b[31mrailed\x1b[0m" in text and "\x1b[31mlead-off\x1b[0m" in text
