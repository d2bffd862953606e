"""The fDR/4 tone of the lead-off excitation, measured exactly, and what it says in kOhm.

The chip's AC lead-off at fDR/4 swaps a current ``I`` back and forth every two conversions, so
each channel carries a square wave of ``I * Z`` (Z: everything between the pins, the electrode
plus the board's series resistor). The chip's sinc3 filter averages it over three data periods,
so a conversion reads +/-2/3 of it and the square's tone at fDR/4, the one the DFT picks out,
has amplitude ``2*sqrt(2)/3 * I * Z`` (:data:`TONE_PER_IZ`; if a chip's switching were offset
from its conversions the factor would lie between 0.916 and 0.943, within 3 %).

The amplitude comes from one DFT bin at fs/4 over a whole number of its cycles (a multiple of 4
samples) under a periodic Hann window: exact for the tone itself, and blind to the offset and
slow drift (the window's spectrum is zero beyond one bin) and to EEG and mains further than a
few bins away (sidelobes fall as the cube of the distance).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ADC_FULL_SCALE",
    "MIN_SAMPLES",
    "RAIL_FRACTION",
    "TONE_PER_IZ",
    "fs4_amplitude",
    "railed",
]

TONE_PER_IZ = 2 * math.sqrt(2) / 3
"""Amplitude of the fs/4 tone per volt of ``I * Z``, after the chip's sinc3 filter."""
ADC_FULL_SCALE = 2**23
"""Codes from 0 to either end of the 24-bit output."""
RAIL_FRACTION = 0.99
"""A sample this close to either end of the range counts as at the rail."""
MIN_SAMPLES = 8
"""Fewest samples a window may hold (two cycles of the tone)."""
_RAILED_SHARE = 0.01
"""A channel whose samples sit at the rail this often in a window is railed."""


def fs4_amplitude(x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Amplitude of the tone at a quarter of the sample rate in each column of ``x`` (samples x
    channels), in the units of ``x``; the last ``len(x) % 4`` samples are left out.

    Raises:
        ValueError: fewer than :data:`MIN_SAMPLES` samples.
    """
    n = len(x) - len(x) % 4
    if n < MIN_SAMPLES:
        raise ValueError(f"a window of {len(x)} samples is too short: at least {MIN_SAMPLES}")
    k = np.arange(n)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * k / n)
    # e^(-i pi k / 2) is 1, -i, -1, i: the real and imaginary parts pick samples 0,2 and 1,3.
    cos = window * np.array([1.0, 0.0, -1.0, 0.0])[k % 4]
    sin = window * np.array([0.0, -1.0, 0.0, 1.0])[k % 4]
    data = np.asarray(x[:n], dtype=np.float64)
    re, im = cos @ data, sin @ data
    amplitude: npt.NDArray[np.float64] = 2 * np.hypot(re, im) / window.sum()
    return amplitude


def railed(counts: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Channels (columns of ``counts``) that sit at either end of the ADC's range in at least
    1 % of the samples: saturated, so no amplitude measured on them means anything."""
    limit = RAIL_FRACTION * ADC_FULL_SCALE
    at_rail = np.abs(np.asarray(counts, dtype=np.int64)) >= limit
    found: npt.NDArray[np.bool_] = at_rail.mean(axis=0) >= _RAILED_SHARE
    return found
