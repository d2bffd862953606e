"""The ``select`` stage: picks, orders and renames channels; per-channel facts follow them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from eegpi.exc import ConfigError, StageError
from eegpi.hardware.config import DeviceConfig
from eegpi.pipeline.registry import lookup
from eegpi.pipeline.spec import parse_pipeline
from eegpi.pipeline.stage import NullPublisher, Stage, StageContext
from eegpi.pipeline.stages.convert import ToVoltage
from eegpi.pipeline.stages.select import Select, SelectParams
from eegpi.stream import Block, StreamMeta

NAMES = ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2")
GAINS = (24, 12, 8, 6, 4, 2, 1, 24)
INPUTS = ("normal",) * 6 + ("shorted", "test")
T0 = 1_700_000_000.0


def source_meta() -> StreamMeta:
    """What ads1299_source hands downstream."""
    return StreamMeta(
        sample_rate=250.0,
        channels=NAMES,
        units="counts",
        extra={"gain": GAINS, "vref_v": 4.5, "input": INPUTS, "device": "ADS1299"},
    )


def open_stage(stage: Stage, meta: StreamMeta) -> StreamMeta:
    ctx = StageContext(pipeline="t", device=DeviceConfig(backend="mock"), publisher=NullPublisher())
    return stage.open({"in": meta}, ctx)["out"]


def select(**params: Any) -> Select:
    return Select("pick", SelectParams(**params))


def counts_block(meta: StreamMeta, n: int = 5) -> Block:
    data = np.arange(n * 8, dtype=np.int32).reshape(n, 8) * 1000
    return Block(data, 42, T0, meta)


def test_registered_as_select() -> None:
    assert lookup("select") is Select


def test_picks_orders_and_keeps_the_data_exact() -> None:
    stage = select(channels=["O2", "Fp1", 4])
    out_meta = open_stage(stage, source_meta())
    assert out_meta.channels == ("O2", "Fp1", "C4")
    assert (out_meta.sample_rate, out_meta.units) == (250.0, "counts")
    block = counts_block(source_meta())
    out = stage.process({"in": block})["out"]
    assert np.array_equal(out.data, block.data[:, [7, 0, 3]])
    assert out.data.dtype == np.int32
    assert (out.seq, out.timestamp, out.meta) == (42, T0, out_meta)


def test_per_channel_facts_are_picked_with_their_channels() -> None:
    out_meta = open_stage(select(channels=[7, "Fp2", "O2"]), source_meta())
    assert out_meta.extra["gain"] == (1, 12, 24)
    assert out_meta.extra["input"] == ("shorted", "normal", "test")
    assert out_meta.extra["vref_v"] == 4.5 and out_meta.extra["device"] == "ADS1299"


def test_to_voltage_after_select_scales_each_channel_by_its_own_gain() -> None:
    pick = select(channels=["P8", "C3"], rename={"P8": "A2"})
    picked_meta = open_stage(pick, source_meta())
    convert = ToVoltage("uv", ToVoltage.Params())
    open_stage(convert, picked_meta)
    block = counts_block(source_meta())
    uv = convert.process({"in": pick.process({"in": block})["out"]})["out"]
    assert uv.meta.channels == ("A2", "C3")
    lsb = [4.5e6 / (g * 2**23) for g in (GAINS[5], GAINS[2])]
    np.testing.assert_allclose(uv.data, block.data[:, [5, 2]] * lsb, rtol=1e-12)


def test_rename_and_names_give_new_names() -> None:
    renamed = open_stage(select(channels=["C3", "C4"], rename={"C4": "Cz"}), source_meta())
    assert renamed.channels == ("C3", "Cz")
    named = open_stage(select(channels=[1, 2], names=["left", "right"]), source_meta())
    assert named.channels == ("left", "right")


def test_all_channels_in_order_hand_on_the_same_array() -> None:
    stage = select(channels=list(range(1, 9)), names=[f"E{k}" for k in range(8)])
    open_stage(stage, source_meta())
    block = counts_block(source_meta())
    assert stage.process({"in": block})["out"].data is block.data


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"channels": ["Cz"]}, r"channels: 'Cz' is not in the input; its channels are \['Fp1'"),
        ({"channels": [9]}, r"channels: 9 is past the last channel; the input has 8"),
        ({"channels": ["Fp1", 1]}, r"channels: Fp1 picked more than once"),
        ({"channels": ["C3"], "rename": {"C4": "x"}}, r"rename: 'C4' not among the picked"),
        ({"channels": ["C3", "C4"], "rename": {"C4": "C3"}}, r"rename: C3 appear\(s\) more than"),
    ],
)
def test_choices_the_input_cannot_meet_are_refused_at_open(
    params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        open_stage(select(**params), source_meta())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"channels": []}, r"channels: \[\] is not a non-empty list"),
        ({"channels": [0]}, r"channels: 0 is not a channel number \(they count from 1\)"),
        ({"channels": [True]}, r"channels: True is neither a channel name nor"),
        ({"channels": ["C3", "C3"]}, r"channels: C3 picked more than once"),
        ({"channels": ["C3"], "rename": {}, "names": ["x"]}, r"rename: give rename .* not both"),
        ({"channels": ["C3"], "rename": {"C3": "A" * 17}}, r"rename.C3: 'A+' has 17 characters"),
        ({"channels": ["C3"], "rename": {1: "x"}}, r"rename: key 1 is not a channel name"),
        ({"channels": ["C3", "C4"], "names": ["x"]}, r"names: 1 names for 2 channels"),
        ({"channels": ["C3", "C4"], "names": ["x", "x"]}, r"names: x appear\(s\) more than"),
        ({"channels": ["C3"], "names": ["Cé"]}, r"names: 'Cé' is not printable ASCII"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SelectParams(**params)


def test_a_single_name_is_a_one_channel_pick() -> None:
    assert open_stage(select(channels="O1"), source_meta()).channels == ("O1",)


def test_a_block_of_another_width_is_a_stage_error() -> None:
    stage = select(channels=["C3"])
    open_stage(stage, source_meta())
    wide = Block(np.zeros((2, 9), dtype=np.int32), 0, T0, source_meta())
    with pytest.raises(StageError, match="block has 9 channels, the stream was opened with 8"):
        stage.process({"in": wide})


def test_a_pipeline_file_error_names_stage_and_param() -> None:
    doc = {
        "name": "p",
        "stages": [
            {"name": "acquire", "type": "ads1299_source"},
            {"name": "pick", "type": "select", "params": {"channels": [0]}, "inputs": ["acquire"]},
        ],
    }
    with pytest.raises(ConfigError) as err:
        parse_pipeline(doc, "p.yaml")
    assert "stage 'pick'" in str(err.value) and "param 'channels'" in str(err.value)
