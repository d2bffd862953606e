"""Filters and decimation: block-wise output equals scipy run on the whole stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy import signal

from eegpi.exc import ConfigError, StageError
from eegpi.hardware.config import DeviceConfig
from eegpi.pipeline.registry import lookup
from eegpi.pipeline.stage import NullPublisher, Stage, StageContext
from eegpi.pipeline.stages.filters import Bandpass, Decimate, Highpass, Lowpass, Notch
from eegpi.stream import Block, StreamMeta

Array = npt.NDArray[np.float64]

FS = 250.0
CHANNELS = tuple(f"C{i}" for i in range(1, 9))
T0 = 1_700_000_000.0


def make_stage(cls: type[Stage], fs: float = FS, n_channels: int = 8, **params: Any) -> Stage:
    stage = cls("under_test", cls.Params(**params))
    meta = StreamMeta(sample_rate=fs, channels=CHANNELS[:n_channels], units="uV")
    ctx = StageContext(
        pipeline="test", device=DeviceConfig(backend="mock"), publisher=NullPublisher()
    )
    stage.open({"in": meta}, ctx)
    return stage


def random_sizes(rng: np.random.Generator, total: int) -> list[int]:
    """Block sizes summing to ``total`` that include 0 and 1 and some large ones."""
    sizes = [0, 1, 0, 1, 1]
    while sum(sizes) < total:
        sizes.append(int(rng.choice([0, 1, 2, 3, 7, 16, 33, 100, 257])))
    sizes[-1] -= sum(sizes) - total
    return sizes


def run_blocks(
    stage: Stage, x: Array, sizes: list[int], seq0: int = 0, fs: float = FS
) -> list[Block]:
    meta = StreamMeta(sample_rate=fs, channels=CHANNELS[: x.shape[1]], units="uV")
    out, pos = [], 0
    for n in sizes:
        block = Block(x[pos : pos + n].copy(), seq0 + pos, T0 + (seq0 + pos) / fs, meta)
        result = stage.process({"in": block})["out"]
        out.append(result)
        pos += n
    return out


def noisy_data(n: int = 3000, n_channels: int = 8, seed: int = 1) -> Array:
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-500, 500, n_channels)  # electrode DC offsets
    return rng.normal(0, 20, (n, n_channels)) + offsets


def reference(sos: Array, x: Array) -> Array:
    """scipy in one call, state initialised from the first sample like the stages."""
    zi = signal.sosfilt_zi(sos)[:, :, np.newaxis] * x[0][np.newaxis, np.newaxis, :]
    y, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
    result: Array = y
    return result


def notch_sos(freq: float, q: float, harmonics: int, fs: float) -> Array:
    return np.vstack(
        [signal.tf2sos(*signal.iirnotch(k * freq, q, fs=fs)) for k in range(1, harmonics + 1)]
    )


CASES: list[tuple[type[Stage], dict[str, Any], Callable[[], Array]]] = [
    (
        Highpass,
        {"cutoff_hz": 0.5, "order": 2},
        lambda: signal.butter(2, 0.5, btype="highpass", fs=FS, output="sos"),
    ),
    (
        Lowpass,
        {"cutoff_hz": 30, "order": 6},
        lambda: signal.butter(6, 30, btype="lowpass", fs=FS, output="sos"),
    ),
    (
        Bandpass,
        {"low_hz": 1.0, "high_hz": 40.0, "order": 4},
        lambda: signal.butter(4, [1, 40], btype="bandpass", fs=FS, output="sos"),
    ),
    (Notch, {"freq_hz": 50.0}, lambda: notch_sos(50, 30, 1, FS)),
    (
        Notch,
        {"freq_hz": 50.0, "quality": 20, "harmonics": 2},
        lambda: notch_sos(50, 20, 2, FS),
    ),
]


@pytest.mark.parametrize(("cls", "params", "design"), CASES)
@pytest.mark.parametrize("seed", [1, 2])
def test_blockwise_equals_scipy_on_the_whole_stream(
    cls: type[Stage], params: dict[str, Any], design: Callable[[], Array], seed: int
) -> None:
    x = noisy_data(seed=seed)
    stage = make_stage(cls, **params)
    sizes = random_sizes(np.random.default_rng(seed + 10), x.shape[0])
    blocks = run_blocks(stage, x, sizes, seq0=1000)

    y = np.concatenate([b.data for b in blocks])
    np.testing.assert_allclose(y, reference(design(), x), rtol=1e-10, atol=1e-9)
    assert y.dtype == np.float64
    for block, n in zip(blocks, sizes, strict=True):
        assert block.n_samples == n
    # position in the stream is kept
    assert [b.seq for b in blocks] == list(1000 + np.cumsum([0, *sizes[:-1]]))
    assert blocks[7].timestamp == pytest.approx(T0 + blocks[7].seq / FS)


def test_the_design_is_the_scipy_design() -> None:
    stage = make_stage(Bandpass, low_hz=1.0, high_hz=40.0, order=4)
    assert isinstance(stage, Bandpass)
    expected = signal.butter(4, [1, 40], btype="bandpass", fs=FS, output="sos")
    np.testing.assert_allclose(stage.sos, expected)


def test_registered_under_their_yaml_names() -> None:
    assert lookup("highpass") is Highpass
    assert lookup("lowpass") is Lowpass
    assert lookup("bandpass") is Bandpass
    assert lookup("notch") is Notch
    assert lookup("decimate") is Decimate


def test_no_start_up_step_on_a_dc_offset() -> None:
    x = np.full((500, 8), 1234.5)
    high = make_stage(Highpass, cutoff_hz=1.0)
    low = make_stage(Lowpass, cutoff_hz=40.0)
    np.testing.assert_allclose(run_blocks(high, x, [500])[0].data, 0.0, atol=1e-8)
    np.testing.assert_allclose(run_blocks(low, x, [500])[0].data, 1234.5, rtol=1e-10)


def test_integer_counts_and_read_only_inputs_are_accepted_and_untouched() -> None:
    counts = np.random.default_rng(3).integers(-(2**23), 2**23, (64, 8), dtype=np.int32)
    before = counts.copy()
    stage = make_stage(Lowpass, cutoff_hz=40.0)
    meta = StreamMeta(sample_rate=FS, channels=CHANNELS, units="counts")
    block = Block(counts, 0, T0, meta)
    out = stage.process({"in": block})["out"]
    assert out.data.dtype == np.float64
    np.testing.assert_array_equal(counts, before)
    sos = signal.butter(4, 40, fs=FS, output="sos")
    np.testing.assert_allclose(out.data, reference(sos, before.astype(float)), rtol=1e-10)


def test_a_seq_gap_keeps_the_filter_state() -> None:
    x = noisy_data(600)
    stage = make_stage(Bandpass, low_hz=1.0, high_hz=40.0)
    meta = StreamMeta(sample_rate=FS, channels=CHANNELS, units="uV")
    first = stage.process({"in": Block(x[:300], 0, T0, meta)})["out"]
    # 50 samples lost upstream: seq jumps from 300 to 350
    second = stage.process({"in": Block(x[300:], 350, T0 + 350 / FS, meta)})["out"]
    assert second.seq == 350
    sos = signal.butter(4, [1, 40], btype="bandpass", fs=FS, output="sos")
    np.testing.assert_allclose(
        np.concatenate([first.data, second.data]), reference(sos, x), rtol=1e-10, atol=1e-9
    )


def test_channel_count_change_is_an_error_naming_the_stage() -> None:
    stage = make_stage(Lowpass, cutoff_hz=40.0)
    meta = StreamMeta(sample_rate=FS, channels=CHANNELS[:4], units="uV")
    with pytest.raises(StageError, match=r"under_test: block has 4 channels.*8"):
        stage.process({"in": Block(np.zeros((3, 4)), 0, T0, meta)})


def steady_gain(stage: Stage, freq: float, fs: float = FS, seconds: float = 20.0) -> float:
    """Output/input RMS of a sine after the transient has died out (last quarter)."""
    t = np.arange(int(seconds * fs)) / fs
    x = np.repeat(np.sin(2 * np.pi * freq * t)[:, np.newaxis], 2, axis=1) * 50.0
    y = np.concatenate([b.data for b in run_blocks(stage, x, [x.shape[0] // 2] * 2, fs=fs)])
    tail = slice(3 * x.shape[0] // 4, None)
    return float(np.sqrt(np.mean(y[tail] ** 2) / np.mean(x[tail] ** 2)))


def test_bandpass_passes_10_hz_within_1_percent() -> None:
    stage = make_stage(Bandpass, n_channels=2, low_hz=1.0, high_hz=40.0, order=4)
    assert steady_gain(stage, 10.0) == pytest.approx(1.0, abs=0.01)


def test_notch_attenuates_50_hz_by_more_than_30_db() -> None:
    stage = make_stage(Notch, n_channels=2, freq_hz=50.0)
    assert 20 * np.log10(steady_gain(stage, 50.0)) < -30.0
    # and leaves 10 Hz alone
    assert steady_gain(make_stage(Notch, n_channels=2, freq_hz=50.0), 10.0) == pytest.approx(
        1.0, abs=0.01
    )


def test_notch_harmonics_remove_100_hz_too() -> None:
    single = make_stage(Notch, n_channels=2, freq_hz=50.0)
    double = make_stage(Notch, n_channels=2, freq_hz=50.0, harmonics=2)
    assert steady_gain(single, 100.0) > 0.9
    assert 20 * np.log10(steady_gain(double, 100.0)) < -30.0


def test_highpass_removes_a_slow_drift() -> None:
    fs, seconds = FS, 60.0
    t = np.arange(int(seconds * fs)) / fs
    drift = 200.0 * np.sin(2 * np.pi * 0.1 * t)
    alpha = 10.0 * np.sin(2 * np.pi * 10.0 * t)
    x = np.stack([drift + alpha, drift], axis=1)
    stage = make_stage(Highpass, n_channels=2, cutoff_hz=1.0, order=4)
    y = np.concatenate([b.data for b in run_blocks(stage, x, [1000] * 15)])
    tail = slice(x.shape[0] // 2, None)
    assert np.max(np.abs(y[tail, 1])) < 0.01 * 200.0
    assert np.sqrt(np.mean(y[tail, 0] ** 2)) == pytest.approx(10.0 / np.sqrt(2), rel=0.01)


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (Highpass, {"cutoff_hz": 1.0, "order": 0}, "order: must be an integer 1..8, got 0"),
        (Highpass, {"cutoff_hz": 1.0, "order": 9}, "order: must be an integer 1..8, got 9"),
        (Lowpass, {"cutoff_hz": 1.0, "order": 4.5}, "order: must be an integer 1..8, got 4.5"),
        (Lowpass, {"cutoff_hz": 1.0, "order": True}, "order: must be an integer"),
        (Lowpass, {"cutoff_hz": -3.0}, "cutoff_hz: -3.0 must be a finite number above 0"),
        (Lowpass, {"cutoff_hz": "40"}, "cutoff_hz: must be a number, got '40'"),
        (Lowpass, {"cutoff_hz": float("nan")}, "cutoff_hz: nan must be a finite number"),
        (Bandpass, {"low_hz": 40.0, "high_hz": 1.0}, r"high_hz: 1 must be above low_hz \(40\)"),
        (Bandpass, {"low_hz": 5.0, "high_hz": 5.0}, r"high_hz: 5 must be above low_hz \(5\)"),
        (Bandpass, {"low_hz": 0.0, "high_hz": 5.0}, "low_hz: 0.0 must be a finite number above 0"),
        (Notch, {"freq_hz": 50.0, "quality": 0}, "quality: 0 must be a finite number above 0"),
        (Notch, {"freq_hz": 50.0, "harmonics": 0}, "harmonics: must be an integer 1..16"),
        (Decimate, {"factor": 1}, "factor: must be an integer 2..128, got 1"),
        (Decimate, {"factor": 2.0}, "factor: must be an integer 2..128, got 2.0"),
        (Decimate, {"factor": 4, "ftype": "median"}, "ftype: must be 'iir' or 'fir'"),
    ],
)
def test_bad_params_name_the_field(cls: type[Stage], params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls.Params(**params)


def test_missing_and_unknown_params_are_type_errors() -> None:
    with pytest.raises(TypeError, match="cutoff_hz"):
        Lowpass.Params(order=4)
    with pytest.raises(TypeError, match="cutof_hz"):
        Lowpass.Params(cutof_hz=4.0)


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (Bandpass, {"low_hz": 1.0, "high_hz": 200.0}, "high_hz: 200 Hz must be below the Nyquist"),
        (Lowpass, {"cutoff_hz": 125.0}, r"cutoff_hz: 125 Hz must be below the Nyquist .*125 Hz"),
        (Highpass, {"cutoff_hz": 300.0}, r"cutoff_hz: 300 Hz .*half the 250 Hz input rate"),
        (Notch, {"freq_hz": 130.0}, "freq_hz: 130 Hz must be below the Nyquist"),
        (Notch, {"freq_hz": 50.0, "harmonics": 3}, "harmonics: 3 puts harmonic 3 at 150 Hz"),
    ],
)
def test_cut_offs_are_checked_against_the_input_rate(
    cls: type[Stage], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_stage(cls, **params)


def test_filters_need_their_input_port() -> None:
    stage = Lowpass("f", Lowpass.Params(cutoff_hz=10.0))
    ctx = StageContext(pipeline="t", device=DeviceConfig(), publisher=NullPublisher())
    with pytest.raises(ConfigError, match="port 'in'"):
        stage.open({}, ctx)


# --- decimate ----------------------------------------------------------------------------


def decimate_reference(x: Array, factor: int, ftype: str, seq0: int) -> Array:
    if ftype == "iir":
        y = reference(signal.cheby1(8, 0.05, 0.8 / factor, output="sos"), x)
    else:
        b = signal.firwin(20 * factor + 1, 1.0 / factor, window="hamming")
        y, _ = signal.lfilter(b, [1.0], x, axis=0, zi=signal.lfilter_zi(b, [1.0])[:, None] * x[0])
    first = (-seq0) % factor
    kept: Array = y[first::factor]
    return kept


@pytest.mark.parametrize("ftype", ["iir", "fir"])
@pytest.mark.parametrize(("factor", "seq0"), [(2, 0), (4, 5), (5, 1003)])
def test_decimate_blockwise_equals_whole_stream(ftype: str, factor: int, seq0: int) -> None:
    x = noisy_data(2000, n_channels=3)
    stage = make_stage(Decimate, n_channels=3, factor=factor, ftype=ftype)
    sizes = random_sizes(np.random.default_rng(factor), x.shape[0])
    blocks = run_blocks(stage, x, sizes, seq0=seq0)

    y = np.concatenate([b.data for b in blocks])
    np.testing.assert_allclose(y, decimate_reference(x, factor, ftype, seq0), rtol=1e-9, atol=1e-8)
    # output seq counts output samples and continues block to block
    first_out = -(-seq0 // factor)
    position = first_out
    for block in blocks:
        assert block.seq == position
        assert block.meta.sample_rate == FS / factor
        # the first kept input sample is seq * factor; its time is the block's timestamp
        assert block.timestamp == pytest.approx(T0 + block.seq * factor / FS)
        position += block.n_samples
    assert position == -(-(seq0 + x.shape[0]) // factor)


def test_decimate_metadata() -> None:
    stage = Decimate("d", Decimate.Params(factor=4))
    meta = StreamMeta(sample_rate=1000.0, channels=("a", "b"), units="uV", extra={"gain": (24, 24)})
    ctx = StageContext(pipeline="t", device=DeviceConfig(), publisher=NullPublisher())
    out = stage.open({"in": meta}, ctx)["out"]
    assert out.sample_rate == 250.0
    assert out.channels == ("a", "b")
    assert out.units == "uV"
    assert out.extra["gain"] == (24, 24)
    assert out.extra["decimation"] == 4
    chained = Decimate("d2", Decimate.Params(factor=5)).open({"in": out}, ctx)["out"]
    assert (chained.sample_rate, chained.extra["decimation"]) == (50.0, 20)


def test_decimate_block_without_a_kept_sample_is_empty_at_the_next_slot() -> None:
    stage = make_stage(Decimate, n_channels=2, factor=4)
    meta = StreamMeta(sample_rate=FS, channels=CHANNELS[:2], units="uV")
    out = stage.process({"in": Block(np.ones((2, 2)), 5, T0, meta)})["out"]
    assert out.n_samples == 0
    assert out.seq == 2  # next kept input is seq 8 -> output 2
    assert out.timestamp == pytest.approx(T0 + 3 / FS)
    empty = stage.process({"in": Block(np.ones((0, 2)), 7, T0, meta)})["out"]
    assert (empty.n_samples, empty.seq) == (0, 2)


@pytest.mark.parametrize("ftype", ["iir", "fir"])
def test_decimate_suppresses_aliases_and_keeps_the_passband(ftype: str) -> None:
    fs, factor = 1000.0, 4  # new rate 250 Hz, Nyquist 125 Hz
    t = np.arange(20_000) / fs
    tone = np.stack([np.sin(2 * np.pi * 10.0 * t), np.sin(2 * np.pi * 200.0 * t)], axis=1)
    stage = make_stage(Decimate, fs=fs, n_channels=2, factor=factor, ftype=ftype)
    y = np.concatenate([b.data for b in run_blocks(stage, tone, [1000] * 20, fs=fs)])
    tail = y[y.shape[0] // 2 :]
    rms = np.sqrt(np.mean(tail**2, axis=0))
    assert rms[0] == pytest.approx(1 / np.sqrt(2), rel=0.01)  # 10 Hz passes
    # 200 Hz would alias to 50 Hz without the anti-alias filter
    assert 20 * np.log10(rms[1] / (1 / np.sqrt(2))) < -40.0
    # without the filter it does alias: proves the check can fail
    naive = tone[::factor, 1]
    assert np.sqrt(np.mean(naive**2)) > 0.5
