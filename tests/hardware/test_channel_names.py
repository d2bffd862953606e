"""Electrode names on ``ads1299_source``: validated params, and the names in the stream meta."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hw_helpers import SourceRunner, mock_config, stack

from eegpi.exc import ConfigError
from eegpi.pipeline.spec import parse_pipeline
from eegpi.pipeline.stages.source import Ads1299SourceParams

EIGHT = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]


def test_the_names_become_the_stream_channels(runner: SourceRunner) -> None:
    src = runner.open(mock_config(), channel_names=EIGHT)
    meta = src._meta
    assert meta is not None and meta.channels == tuple(EIGHT)
    blocks = runner.collect(src, 10)
    assert all(b.meta.channels == tuple(EIGHT) for b in blocks)


def test_without_names_the_channels_are_numbered(runner: SourceRunner) -> None:
    src = runner.open(mock_config())
    assert src._meta is not None and src._meta.channels == tuple(f"ch{k}" for k in range(1, 9))


def test_a_pieeg16_takes_one_name_per_channel_of_both_chips(runner: SourceRunner) -> None:
    names = [f"E{k}" for k in range(1, 17)]
    cfg = dataclasses.replace(mock_config(stamp_index=True), board="pieeg16")
    src = runner.open(cfg, chips=2, channel_names=names)
    assert src._meta is not None and src._meta.channels == tuple(names)
    assert stack(runner.collect(src, 30)).shape[1] == 16


def test_a_count_that_does_not_fit_the_device_is_refused_at_open(runner: SourceRunner) -> None:
    # An ADS1299-4 has 4 channels: 8 names pass the params check (8 fits some part) but not it.
    with pytest.raises(ConfigError, match=r"channel_names: 8 names for the 4 channels"):
        runner.open(mock_config(id_register=0x3C), channel_names=EIGHT)
    src = runner.open(mock_config(id_register=0x3C), channel_names=EIGHT[:4])
    assert src._meta is not None and src._meta.channels == tuple(EIGHT[:4])


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("Fp1", r"channel_names: 'Fp1' is not a list of names"),
        (EIGHT[:7], r"channel_names: a list needs one name per channel \(8 for 1 chip"),
        (["Fp1", *EIGHT[1:7], "Fp1"], r"channel_names: Fp1 appear\(s\) more than once"),
        (["", *EIGHT[1:]], r"channel_names: '': a name must not be empty"),
        ([" Fp1", *EIGHT[1:]], r"channel_names: ' Fp1': a name must not be empty or start"),
        (["A" * 17, *EIGHT[1:]], r"channel_names: 'AAAAAAAAAAAAAAAAA' has 17 characters"),
        (["Fp1\u00e9", *EIGHT[1:]], r"channel_names: 'Fp1\u00e9' is not printable ASCII"),
        (["Fp1\t", *EIGHT[1:]], r"channel_names: 'Fp1\\t': a name must not be empty or start"),
        ([1, *EIGHT[1:]], r"channel_names: 1 is not a string \(quote it in YAML\)"),
    ],
)
def test_bad_names_are_refused_naming_the_field(names: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Ads1299SourceParams(channel_names=names)


def test_sixteen_characters_fit() -> None:
    names = ["A" * 16, *EIGHT[1:]]
    assert Ads1299SourceParams(channel_names=names).channel_names == tuple(names)


def test_a_pipeline_file_error_names_the_stage_and_param() -> None:
    doc = {
        "name": "p",
        "stages": [
            {
                "name": "acquire",
                "type": "ads1299_source",
                "params": {"channel_names": ["Fp1", "Fp1"]},
            }
        ],
    }
    with pytest.raises(ConfigError) as err:
        parse_pipeline(doc, "p.yaml")
    text = str(err.value)
    assert "stage 'acquire'" in text and "param 'channel_names'" in text, text
    assert "one name per channel" in text, text
