"""The fDR/4 tone estimator and the window measurement, on synthetic signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eegpi.ads1299.settings import LeadOffSettings
from eegpi.impedance import Excitation, Thresholds, measure_window
from eegpi.impedance.estimate import TONE_PER_IZ, fs4_amplitude, railed
from eegpi.impedance.report import grade

FS = 250.0
COUNTS_PER_UV = 24 * 2**23 / 4.5e6


def _tone(n: int, amplitude: float, phase: float) -> np.ndarray:
    return amplitude * np.cos(np.pi / 2 * np.arange(n) + phase)


@pytest.mark.parametrize("phase", [0.0, 0.3, math.pi / 4, 2.0, -1.2])
@pytest.mark.parametrize("n", [8, 248, 250, 1001])
def test_exact_on_a_tone_at_a_quarter_of_the_rate(phase: float, n: int) -> None:
    x = np.stack([_tone(n, 40.0, phase), _tone(n, 6000.0, phase + 1)], axis=1)
    assert np.allclose(fs4_amplitude(x), [40.0, 6000.0], rtol=1e-12)


def test_the_sampled_square_reads_its_fundamental() -> None:
    square = np.tile([-2 / 3, -2 / 3, 2 / 3, 2 / 3], 62)[:, None]  # what the chip reads of I*Z=1
    assert fs4_amplitude(square)[0] == pytest.approx(TONE_PER_IZ, rel=1e-12)


def test_immune_to_alpha_mains_offset_and_drift_underneath() -> None:
    t = np.arange(250) / FS
    rng = np.random.default_rng(3)
    under = (
        20 * np.sin(2 * np.pi * 10 * t + 0.4)  # alpha
        + 3 * np.sin(2 * np.pi * 50 * t)  # mains
        + 30  # electrode offset
        + 15 * t  # drift
        + rng.normal(0, 0.2, len(t))
    )
    tone = _tone(len(t), 40.0, 0.7)
    alone = fs4_amplitude(tone[:, None])[0]
    both = fs4_amplitude((tone + under)[:, None])[0]
    assert alone == pytest.approx(40.0, rel=1e-12)
    assert both == pytest.approx(40.0, rel=0.005)
    quiet = fs4_amplitude(under[:, None])[0]
    assert quiet < 0.1  # no tone, nothing read (alpha is 20 uV, mains 3 uV)


def test_60_hz_mains_beside_the_62_5_hz_tone_fades_with_the_window() -> None:
    t = np.arange(1000) / FS  # 4 s: 60 Hz is 10 bins from 62.5 Hz
    x = _tone(len(t), 40.0, 0.0) + 20 * np.sin(2 * np.pi * 60 * t)
    assert fs4_amplitude(x[:, None])[0] == pytest.approx(40.0, rel=0.01)


def test_too_short_a_window_is_refused() -> None:
    with pytest.raises(ValueError, match="a window of 7 samples is too short: at least 8"):
        fs4_amplitude(np.zeros((7, 1)))


def test_railed_needs_one_percent_of_the_samples_at_the_rail() -> None:
    counts = np.zeros((200, 3), dtype=np.int32)
    counts[:1, 0] = 2**23 - 1  # one sample in 200: a spike, not railed
    counts[:2, 1] = -(2**23)  # two: railed
    counts[:, 2] = int(0.98 * 2**23)  # near, not at, the rail
    assert railed(counts).tolist() == [False, True, False]


def _counts(kohm_total: list[float], n: int = 250, current_na: float = 6.0) -> np.ndarray:
    """What the chip reads: the +/-2/3 square of I*Z per channel, in counts at gain 24."""
    square = np.tile([-2 / 3, -2 / 3, 2 / 3, 2 / 3], n // 4 + 1)[:n]
    uv = np.outer(square, np.array(kohm_total) * 1e3 * current_na * 1e-9 * 1e6)
    return np.rint(uv * COUNTS_PER_UV).astype(np.int32)


def test_a_window_gives_kohm_minus_the_series_resistor_and_grades() -> None:
    z = [5.0, 10.0, 20.0, 50.0, 100.0, 1000.0]
    counts = _counts([v + 2.2 for v in z])
    counts[:, 4] = 2**23 - 1  # railed
    report = measure_window(
        counts,
        seq=100,
        timestamp=1.5,
        sample_rate=FS,
        names=["Fp1", "Fp2", "C3", "C4", "O1", "O2"],
        gains=[24.0] * 6,
        vref_v=4.5,
        excitation=Excitation(6.0, "ac_fdr/4"),
        series_kohm=2.2,
        thresholds=Thresholds(),
        lead_off=[False, False, False, True, False, False],
    )
    by = {c.name: c for c in report.channels}
    assert by["Fp1"].kohm == pytest.approx(5.0, abs=0.01)
    assert by["O2"].kohm == pytest.approx(1000.0, rel=1e-4)
    assert [c.grade for c in report.channels] == [
        "good",
        "good",
        "fair",
        "lead_off",
        "railed",
        "poor",
    ]
    assert by["O1"].kohm is None and by["O1"].railed
    assert by["C4"].lead_off and by["C4"].kohm == pytest.approx(50.0, rel=1e-3)
    event = report.to_event()
    assert event["kind"] == "impedance" and event["seq"] == 100 and event["timestamp"] == 1.5
    assert event["frequency_hz"] == 62.5 and event["current_na"] == 6.0
    assert event["window_s"] == 1.0 and event["thresholds_kohm"] == {"good": 10.0, "fair": 50.0}
    assert event["channels"][4] == {
        "name": "O1",
        "kohm": None,
        "grade": "railed",
        "lead_off": False,
        "railed": True,
    }


def test_two_sides_subtract_two_series_resistors_and_unmeasured_channels_are_left_out() -> None:
    counts = _counts([24.4, 24.4])  # P and N electrode 10 kOhm each, 2 x 2.2 in series
    report = measure_window(
        counts,
        seq=0,
        timestamp=0.0,
        sample_rate=FS,
        names=["a", "b"],
        gains=[24.0, 24.0],
        vref_v=4.5,
        excitation=Excitation(6.0, "ac_fdr/4", sides=2),
        series_kohm=2.2,
        thresholds=Thresholds(good_kohm=30, fair_kohm=60),
        lead_off=[False, False],
        measured=[True, False],
    )
    assert [c.name for c in report.channels] == ["a"]
    assert report.channels[0].kohm == pytest.approx(20.0, abs=0.01)
    assert report.channels[0].grade == "good" and report.series_kohm == 4.4


def test_grade_edges() -> None:
    limits = Thresholds(good_kohm=10, fair_kohm=50)
    assert grade(10.0, False, False, limits) == "good"
    assert grade(10.01, False, False, limits) == "fair"
    assert grade(50.0, False, False, limits) == "fair"
    assert grade(50.01, False, False, limits) == "poor"
    assert grade(None, True, True, limits) == "lead_off"


@pytest.mark.parametrize(
    ("good", "fair", "message"),
    [
        (0, 50, "good_kohm: 0 is not a positive number"),
        (10, 10, r"fair_kohm \(10\) must be above good_kohm \(10\)"),
        (10, "x", "fair_kohm: 'x' is not a positive number"),
    ],
)
def test_bad_thresholds_are_refused(good: object, fair: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Thresholds(good_kohm=good, fair_kohm=fair)  # type: ignore[arg-type]


def test_the_excitation_travels_in_the_metadata_and_says_what_is_missing() -> None:
    found = Excitation.of_source(LeadOffSettings(current="24nA", frequency="ac_fdr/4"), True)
    assert found == Excitation(24.0, "ac_fdr/4", 1)
    assert Excitation.from_meta(found.to_meta()) == found
    assert Excitation.from_meta({}) is None
    assert Excitation.refusal(found, "") is None
    off = Excitation.refusal(None, " 'acquire'")
    assert off is not None and "the source 'acquire' drives no lead-off current" in off
    assert "lead_off: {frequency: ac_fdr/4, current: 6nA}" in off
    dc = Excitation.refusal(Excitation(6.0, "dc"), "")
    assert dc is not None and "lead-off current at dc" in dc
