"""to_voltage scaling from the programmed gain, and re-referencing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from eegpi.exc import ConfigError, StageError
from eegpi.hardware.config import DeviceConfig
from eegpi.pipeline.registry import lookup
from eegpi.pipeline.stage import NullPublisher, Stage, StageContext
from eegpi.pipeline.stages.convert import Rereference, ToVoltage, uv_per_count
from eegpi.stream import Block, StreamMeta

CHANNELS = tuple(f"C{i}" for i in range(1, 9))
T0 = 1_700_000_000.0


def counts_meta(**extra: Any) -> StreamMeta:
    return StreamMeta(sample_rate=250.0, channels=CHANNELS, units="counts", extra=extra)


def open_stage(stage: Stage, meta: StreamMeta) -> StreamMeta:
    ctx = StageContext(pipeline="t", device=DeviceConfig(backend="mock"), publisher=NullPublisher())
    return stage.open({"in": meta}, ctx)["out"]


def test_registered_under_their_yaml_names() -> None:
    assert lookup("to_voltage") is ToVoltage
    assert lookup("rereference") is Rereference


@pytest.mark.parametrize("gain", [1, 2, 4, 6, 8, 12, 24])
def test_to_voltage_scale_per_gain(gain: int) -> None:
    stage = ToVoltage("to_voltage", ToVoltage.Params())
    out_meta = open_stage(stage, counts_meta(gain=(gain,) * 8, vref_v=4.5))
    assert out_meta.units == "uV"
    assert out_meta.channels == CHANNELS
    assert out_meta.sample_rate == 250.0

    codes = np.array([[0, 1, -1, 2**23 - 1, -(2**23), 1000, -1000, 12345]], dtype=np.int32)
    block = Block(codes, 42, T0, counts_meta(gain=(gain,) * 8, vref_v=4.5))
    out = stage.process({"in": block})["out"]
    lsb = 4.5e6 / (gain * 2**23)
    np.testing.assert_allclose(out.data, codes * lsb, rtol=1e-12)
    assert out.data.dtype == np.float64
    assert (out.seq, out.timestamp, out.meta.units) == (42, T0, "uV")
    # full scale is +/- VREF / gain
    assert out.data[0, 4] == pytest.approx(-4.5e6 / gain)


def test_to_voltage_uses_each_channels_own_gain_and_vref() -> None:
    gains = (1, 2, 4, 6, 8, 12, 24, 24)
    stage = ToVoltage("to_voltage", ToVoltage.Params())
    open_stage(stage, counts_meta(gain=gains, vref_v=2.5))
    expected = np.array([2.5e6 / (g * 2**23) for g in gains])
    np.testing.assert_allclose(stage.scale, expected, rtol=1e-12)
    assert uv_per_count(24, 4.5) == pytest.approx(0.02235174, rel=1e-6)
    meta = counts_meta(gain=gains, vref_v=2.5)
    block = Block(np.full((3, 8), 100, dtype=np.int32), 0, T0, meta)
    np.testing.assert_allclose(
        stage.process({"in": block})["out"].data, np.tile(100 * expected, (3, 1))
    )


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (
            StreamMeta(250.0, CHANNELS, "uV", {"gain": (24,) * 8, "vref_v": 4.5}),
            "input is in 'uV', to_voltage converts ADC 'counts'",
        ),
        (counts_meta(vref_v=4.5), "input metadata has no 'gain'"),
        (counts_meta(gain=(24,) * 4, vref_v=4.5), "'gain' has 4 values for 8 channels"),
        (counts_meta(gain=(24,) * 7 + (0,), vref_v=4.5), "'gain' must hold positive numbers"),
        (counts_meta(gain=(24,) * 8), "'vref_v' must be the reference voltage in volts"),
    ],
)
def test_to_voltage_refuses_inputs_it_cannot_scale(meta: StreamMeta, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_stage(ToVoltage("to_voltage", ToVoltage.Params()), meta)


def test_to_voltage_checks_the_channel_count_of_blocks() -> None:
    stage = ToVoltage("conv", ToVoltage.Params())
    open_stage(stage, counts_meta(gain=(24,) * 8, vref_v=4.5))
    with pytest.raises(StageError, match="conv: block has 2 channels"):
        stage.process({"in": Block(np.zeros((1, 2)), 0, T0, counts_meta())})


def uv_block(data: np.ndarray[Any, Any]) -> Block:
    return Block(data, 10, T0, StreamMeta(250.0, CHANNELS[: data.shape[1]], "uV"))


def test_common_average_makes_the_channel_mean_zero() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 30, (500, 8)) + rng.uniform(-100, 100, 8)
    before = x.copy()
    stage = Rereference("car", Rereference.Params(mode="average"))
    out_meta = open_stage(stage, StreamMeta(250.0, CHANNELS, "uV"))
    assert out_meta.extra["reference"] == "average"
    out = stage.process({"in": uv_block(x)})["out"]
    np.testing.assert_allclose(out.data.mean(axis=1), 0.0, atol=1e-10)
    np.testing.assert_allclose(out.data, before - before.mean(axis=1, keepdims=True))
    np.testing.assert_array_equal(x, before)  # the input is left alone
    assert (out.seq, out.timestamp) == (10, T0)


def test_reference_to_named_channels() -> None:
    x = np.arange(24, dtype=float).reshape(3, 8) ** 2
    single = Rereference("ref", Rereference.Params(channels=["C3"]))
    open_stage(single, StreamMeta(250.0, CHANNELS, "uV"))
    out = single.process({"in": uv_block(x)})["out"].data
    np.testing.assert_allclose(out, x - x[:, [2]])
    assert np.all(out[:, 2] == 0)

    linked = Rereference("ref", Rereference.Params(channels=["C1", "C8"]))
    meta = open_stage(linked, StreamMeta(250.0, CHANNELS, "uV"))
    assert meta.extra["reference"] == ["C1", "C8"]
    out = linked.process({"in": uv_block(x)})["out"].data
    np.testing.assert_allclose(out, x - (x[:, [0]] + x[:, [7]]) / 2)


def test_rereference_of_an_empty_block_is_empty() -> None:
    stage = Rereference("car", Rereference.Params(mode="average"))
    open_stage(stage, StreamMeta(250.0, CHANNELS, "uV"))
    out = stage.process({"in": uv_block(np.zeros((0, 8)))})["out"]
    assert out.data.shape == (0, 8)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "give exactly one of mode: average"),
        ({"mode": "average", "channels": ["C1"]}, "give exactly one of mode: average"),
        ({"mode": "median"}, "mode: must be 'average', got 'median'"),
        ({"channels": []}, "channels: must be a non-empty list"),
        ({"channels": ["C1", 3]}, "channels: names must be non-empty strings"),
        ({"channels": ["C1", "C1"]}, "channels: names repeat"),
    ],
)
def test_rereference_params_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rereference.Params(**params)


def test_rereference_to_an_unknown_channel_lists_the_real_ones() -> None:
    stage = Rereference("ref", Rereference.Params(channels=["Cz"]))
    with pytest.raises(ConfigError, match=r"channels: \['Cz'\] not in the input; its channels"):
        open_stage(stage, StreamMeta(250.0, CHANNELS, "uV"))
