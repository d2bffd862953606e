"""band_power: Welch band power over a sliding window, aligned to the stream position."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy import signal

from eegpi.exc import ConfigError
from eegpi.hardware.config import DeviceConfig
from eegpi.pipeline.registry import lookup
from eegpi.pipeline.stage import NullPublisher, StageContext
from eegpi.pipeline.stages.spectral import BandPower
from eegpi.stream import Block, StreamMeta

Array = npt.NDArray[np.float64]

FS = 250.0
T0 = 1_700_000_000.0
BANDS = ("delta", "theta", "alpha", "beta", "gamma")


def in_meta(n_channels: int = 2, fs: float = FS) -> StreamMeta:
    return StreamMeta(fs, tuple(f"C{i}" for i in range(1, n_channels + 1)), "uV")


def make_stage(fs: float = FS, n_channels: int = 2, **params: Any) -> tuple[BandPower, StreamMeta]:
    stage = BandPower("bp", BandPower.Params(**params))
    ctx = StageContext(pipeline="t", device=DeviceConfig(backend="mock"), publisher=NullPublisher())
    return stage, stage.open({"in": in_meta(n_channels, fs)}, ctx)["out"]


def push(stage: BandPower, x: Array, sizes: list[int], seq0: int = 0) -> list[Block]:
    meta = in_meta(x.shape[1])
    out, pos = [], 0
    for n in sizes:
        block = Block(x[pos : pos + n], seq0 + pos, T0 + (seq0 + pos) / FS, meta)
        out.append(stage.process({"in": block})["out"])
        pos += n
    return out


def sines(seconds: float, *freqs_amps: tuple[float, float]) -> Array:
    t = np.arange(int(seconds * FS)) / FS
    return np.stack([a * np.sin(2 * np.pi * f * t) for f, a in freqs_amps], axis=1)


def test_registered() -> None:
    assert lookup("band_power") is BandPower


def test_band_power_is_a_built_in_type() -> None:
    """A YAML ``type: band_power`` works without anyone importing the module first."""
    code = "from eegpi.pipeline.registry import available; print(' '.join(available()))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "band_power" in result.stdout.split()


def test_output_layout_and_metadata() -> None:
    _, meta = make_stage()
    assert meta.channels == tuple(f"C{c}:{b}" for c in (1, 2) for b in BANDS)
    assert meta.units == "uV^2"
    assert meta.sample_rate == pytest.approx(4.0)
    assert meta.extra["bands"]["alpha"] == [8.0, 13.0]
    assert meta.extra["source_channels"] == ("C1", "C2")
    _, density = make_stage(quantity="density")
    assert density.units == "uV^2/Hz"


def test_10_hz_sine_puts_most_power_in_alpha() -> None:
    x = sines(5.0, (10.0, 20.0), (20.0, 20.0))  # C1 alpha, C2 beta
    stage, _ = make_stage()
    rows = np.concatenate([b.data for b in push(stage, x, [100] * 12 + [50])])
    power = rows.reshape(rows.shape[0], 2, len(BANDS))
    alpha, beta = BANDS.index("alpha"), BANDS.index("beta")
    assert np.all(power[:, 0, alpha] > 0.9 * power[:, 0].sum(axis=1))
    assert np.all(power[:, 1, beta] > 0.9 * power[:, 1].sum(axis=1))
    # power of a sine of amplitude A is A^2/2; the Hann window leaks a little outside the band
    assert power[:, 0, alpha] == pytest.approx(200.0, rel=0.05)


def test_rows_follow_the_stream_position_not_the_blocks() -> None:
    x = np.random.default_rng(5).normal(0, 10, (2000, 2))
    one, _ = make_stage()
    whole = push(one, x, [2000])[0]
    many, _ = make_stage()
    sizes = [0, 1, 1, 61, 3, 250, 0, 7, 400, 1, 1276]
    parts = push(many, x, sizes)
    np.testing.assert_allclose(np.concatenate([b.data for b in parts]), whole.data, rtol=1e-10)
    # window 250 samples, step 62.5 samples: row k ends (exclusive) at floor((k+1)*62.5)
    # first full window ends at 250 -> row 3; last ends at 2000 -> row 31
    assert whole.seq == 3
    assert whole.n_samples == 29
    assert whole.timestamp == pytest.approx(T0 + 249 / FS)
    position = 3
    for block in parts:
        assert block.seq == position
        position += block.n_samples
    assert position == 32


def test_each_row_is_welch_over_its_window() -> None:
    x = np.random.default_rng(6).normal(0, 10, (600, 2))
    stage, _ = make_stage(segment_s=0.5)
    rows = push(stage, x, [600])[0]
    k = rows.seq + 2
    end = int((k + 1) * 62.5)
    freqs, psd = signal.welch(x[end - 250 : end], fs=FS, nperseg=125, axis=0)
    alpha = (freqs >= 8) & (freqs < 13)
    expected = psd[alpha].sum(axis=0) * (FS / 125)
    got = rows.data[2].reshape(2, len(BANDS))[:, BANDS.index("alpha")]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_a_seq_gap_restarts_the_window() -> None:
    x = np.random.default_rng(8).normal(0, 10, (1000, 2))
    stage, _ = make_stage()
    first = push(stage, x[:500], [500])[0]
    assert (first.seq, first.n_samples) == (3, 5)  # rows 3..7 (ends 250..500)
    meta = in_meta(2)
    # 100 samples lost, resume at seq 600: the first full window ends at 875 (>= 850), row 13
    after = stage.process({"in": Block(x[500:], 600, T0 + 600 / FS, meta)})["out"]
    assert after.seq == 13
    end = 500 + int(14 * 62.5) - 600  # index in x of the window's exclusive end
    freqs, psd = signal.welch(x[end - 250 : end], fs=FS, nperseg=250, axis=0)
    alpha = (freqs >= 8) & (freqs < 13)
    np.testing.assert_allclose(
        after.data[0].reshape(2, 5)[:, 2], psd[alpha].sum(axis=0) * 1.0, rtol=1e-10
    )


def test_empty_output_is_positioned_at_the_next_row() -> None:
    stage, _ = make_stage()
    out = push(stage, np.zeros((10, 2)), [10])[0]
    assert (out.n_samples, out.seq) == (0, 3)
    assert out.data.shape == (0, 10)


def test_custom_bands() -> None:
    stage, meta = make_stage(n_channels=1, bands={"mu": [8, 12], "low": [0, 4]})
    assert meta.channels == ("C1:mu", "C1:low")
    rows = push(stage, sines(2.0, (10.0, 5.0)), [500])[0].data
    assert np.all(rows[:, 0] > 100 * rows[:, 1])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window_s": 0}, "window_s: 0 must be a finite number above 0"),
        ({"step_s": -1}, "step_s: -1 must be a finite number above 0"),
        ({"segment_s": 2.0}, r"segment_s: 2 must not exceed window_s \(1\)"),
        ({"quantity": "rms"}, "quantity: must be 'power' or 'density'"),
        ({"bands": {}}, "bands: must map band names"),
        ({"bands": {"alpha": [13, 8]}}, "bands.alpha: high 8 must be above low 13"),
        ({"bands": {"alpha": 8}}, r"bands.alpha: must be \[low_hz, high_hz\]"),
        ({"bands": {"a:b": [1, 2]}}, "bands: band names must be non-empty strings without ':'"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BandPower.Params(**params)


@pytest.mark.parametrize(
    ("fs", "params", "message"),
    [
        (62.5, {}, r"bands.gamma: 45 Hz is above the Nyquist frequency 31.25 Hz"),
        (250.0, {"bands": {"narrow": [10.2, 10.4]}}, r"bands.narrow: \[10.2, 10.4\) Hz holds no"),
        (250.0, {"window_s": 0.01}, "segment_s: 2 samples at 250 Hz is too short"),
        (250.0, {"step_s": 0.001}, "step_s: 0.001 s is shorter than one sample"),
    ],
)
def test_open_checks_against_the_input_rate(
    fs: float, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_stage(fs=fs, **params)
