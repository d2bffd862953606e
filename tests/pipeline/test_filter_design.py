"""The daemon's own Butterworth and notch designs against scipy.signal's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from eegpi.pipeline.stages.design import butter_sos, notch_sos, sosfilt_zi

RATES = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)


def _bands(fs: float) -> list[tuple[str, float | tuple[float, float]]]:
    nyquist = fs / 2
    return [
        ("lowpass", 40.0),
        ("lowpass", 0.9 * nyquist),
        ("highpass", 0.1),
        ("highpass", 1.0),
        ("highpass", 0.8 * nyquist),
        ("bandpass", (1.0, 40.0)),
        ("bandpass", (8.0, 12.0)),
        ("bandpass", (0.1, 0.9 * nyquist)),
    ]


@pytest.mark.parametrize("fs", RATES)
def test_butterworth_sections_are_scipys_for_every_order_type_and_rate(fs: float) -> None:
    for order in range(1, 9):
        for btype, cutoff in _bands(fs):
            ours = butter_sos(order, cutoff, btype, fs)  # type: ignore[arg-type]
            theirs = signal.butter(order, cutoff, btype=btype, fs=fs, output="sos")
            assert ours.shape == theirs.shape, (order, btype, cutoff)
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(
                sosfilt_zi(ours), signal.sosfilt_zi(theirs), rtol=1e-9, atol=1e-12
            )


@pytest.mark.parametrize("fs", (250.0, 1000.0, 16000.0))
def test_notch_section_is_scipys(fs: float) -> None:
    for freq in (50.0, 60.0, 100.0, 0.45 * fs):
        for quality in (0.5, 1.0, 30.0, 200.0):
            ours = notch_sos(freq, quality, fs)
            theirs = signal.tf2sos(*signal.iirnotch(freq, quality, fs=fs))
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_designs_refuse_what_scipy_refuses() -> None:
    with pytest.raises(ValueError, match="between 0 and 125"):
        butter_sos(4, 125.0, "lowpass", 250.0)
    with pytest.raises(ValueError, match="between 0 and 125"):
        butter_sos(4, (1.0, 130.0), "bandpass", 250.0)
    with pytest.raises(ValueError, match="two cut-offs"):
        butter_sos(4, 40.0, "bandpass", 250.0)
    with pytest.raises(ValueError, match="at least 1"):
        butter_sos(0, 40.0, "lowpass", 250.0)
    with pytest.raises(ValueError, match="between 0 and 125"):
        notch_sos(125.0, 30.0, 250.0)
