"""Reading recordings back with MNE and pyedflib, as a user would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np
import numpy.typing as npt
import pyedflib

LSB_UV = 4.5e6 / (24 * 2**23)
"""Microvolts per ADC count at gain 24 (VREF 4.5 V)."""
GAP_UV = -(2**23) * (4.5e6 / 24) / (2**23 - 1)
"""What a gap's fill code reads as at gain 24 (one step below the physical minimum)."""


@dataclass
class Read:
    """A file as MNE sees it: microvolts (samples x channels), names, rate, annotations."""

    uv: npt.NDArray[np.float64]
    channels: list[str]
    sample_rate: float
    annotations: list[tuple[float, float, str]]


def read_mne(path: Path) -> Read:
    reader = mne.io.read_raw_edf if path.suffix == ".edf" else mne.io.read_raw_bdf
    raw = reader(path, preload=True, verbose="error")
    anns = [
        (float(a["onset"]), float(a["duration"]), str(a["description"])) for a in raw.annotations
    ]
    return Read(raw.get_data().T * 1e6, list(raw.ch_names), float(raw.info["sfreq"]), anns)


def read_pyedflib(path: Path) -> Read:
    with pyedflib.EdfReader(str(path)) as f:
        n = f.signals_in_file
        uv = np.stack([f.readSignal(i) for i in range(n)], axis=1)
        onsets, durations, texts = f.readAnnotations()
        anns = [
            (float(o), max(0.0, float(d)), str(t))
            for o, d, t in zip(onsets, durations, texts, strict=True)
        ]
        return Read(uv, list(f.getSignalLabels()), float(f.getSampleFrequency(0)), anns)


def is_gap(uv: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Rows that are the fill of a gap (every channel at the fill code)."""
    return np.all(np.abs(uv - GAP_UV) < LSB_UV, axis=1)


def onsets(read: Read, text: str) -> list[float]:
    return [o for o, _, t in read.annotations if t.startswith(text)]
