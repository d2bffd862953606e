"""bench.acquisition --as-fast: the per-frame cost splits into the reader's and the chip's."""

from __future__ import annotations

import pytest

from bench.acquisition import frame_cost, main


def test_frame_cost_splits_the_loop_into_reader_and_chip() -> None:
    r = frame_cost(frames=2000, rate=1000)
    assert r["frames"] >= 2000 and r["missed"] == 0  # virtual time: nothing is late
    assert r["chip_us"] > 0 and r["reader_us"] > 0
    assert r["total_us"] == pytest.approx(r["chip_us"] + r["reader_us"])
    assert r["calls_per_frame"] == pytest.approx(4, abs=0.1)  # wait, read, transfer, late check


def test_as_fast_prints_both_shares_and_the_pi_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--as-fast", "--frames", "1000", "--rate", "250"])
    out = capsys.readouterr().out
    assert "reader's own work" in out and "emulated chip" in out and "on a Pi 4" in out
