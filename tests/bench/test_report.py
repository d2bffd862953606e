"""The table bench writes, its targets, ratios and the fan-out figures it reads back."""

from __future__ import annotations

from bench.__main__ import fanout_rows, parse_fanout
from bench.peers import ratio
from bench.report import Row, at_least, at_most, machine, render
from bench.tree import span

FANOUT_OUTPUT = """\
fan-out: 250 SPS x 8 ch, one sample per tick, json, max_latency_ms 10, 5 s per run; ...
  bare    10 clients:   12500 delivered (of 12500), CPU   0.30 s in   5.1 s wall,   24.0 us/message
  eegpi   10 clients:   12500 delivered (of 12500), CPU   0.36 s in   5.1 s wall,   28.8 us/message
  ratio bare/eegpi at 10 clients: 0.83
  bare   100 clients:  125000 delivered (of 125000), CPU   2.50 s in   5.1 s wall,   20.0 us/message
  eegpi  100 clients:  125000 delivered (of 125000), CPU   5.00 s in   5.1 s wall,   40.0 us/message
  ratio bare/eegpi at 100 clients: 0.50
"""


def test_fanout_figures_are_read_back_per_client_count() -> None:
    assert parse_fanout(FANOUT_OUTPUT) == {10: (24.0, 28.8), 100: (20.0, 40.0)}
    assert parse_fanout("nothing here") == {}


def test_fanout_is_met_only_if_every_repetition_met_it() -> None:
    runs = [{10: (16.0, 20.7), 100: (5.9, 5.0)}, {10: (18.7, 19.2), 100: (6.0, 5.2)}]
    ten, hundred = fanout_rows(runs)
    assert ten.measured == "0.77-0.97 (16.0-18.7 / 19.2-20.7 us)"
    assert ten.met is False
    assert hundred.measured == "1.15-1.18 (5.9-6.0 / 5.0-5.2 us)"
    assert hundred.met is True
    assert [r.met for r in fanout_rows(runs[1:])] == [True, True]
    assert fanout_rows([{}]) == []  # bench.fanout missing: no row


def test_targets_and_missing_figures() -> None:
    assert at_most(6.0)(5.9) is True
    assert at_most(6.0)(6.1) is False
    assert at_least(0.8)(0.8) is True
    assert at_least(0.8)(None) is None
    assert Row("x", "<= 1", "2", False).verdict == "**not met**"
    assert Row("x", "", "2").verdict == ""


def test_ratio_of_medians() -> None:
    assert ratio([1.0, 3.0, 2.0], [4.0, 4.0]) == 0.5
    assert ratio([], [1.0]) is None
    assert ratio([1.0], [0.0]) is None


def test_span_is_a_range_or_one_figure() -> None:
    assert span([5.04, 5.01]) == "5.0"
    assert span([4.0, 6.26]) == "4.0-6.3"
    assert span([]) == "n/a"


def test_the_document_names_the_machine_and_its_load() -> None:
    m = machine(busy_loops=2)
    m.finish()
    text = render(m, [Row("whole tree CPU", "<= 6 %", "5.0 %", True)], ["a note"])
    assert text.startswith("# Performance\n")
    assert f"{m.cores} cores" in text
    assert "load average" in text and "2 busy loop(s)" in text
    assert "| whole tree CPU | <= 6 % | 5.0 % | met |" in text
    assert text.rstrip().endswith("a note")
