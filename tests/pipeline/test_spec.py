"""Pipeline YAML validation: every class of mistake gets a message naming file, stage, field."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from eegpi.exc import ConfigError
from eegpi.pipeline.spec import MAX_STAGES, load_pipeline_file, parse_pipeline
from eegpi.safe_yaml import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

REPO = Path(__file__).resolve().parents[2]

GOOD = """
name: demo
stages:
  - name: acquire
    type: ads1299_source
    params: {sample_rate: 250, gain: 24, input: normal}
  - name: to_voltage
    type: to_voltage
    inputs: [acquire]
  - name: filter
    type: bandpass
    params: {low_hz: 1.0, high_hz: 40.0, order: 4}
    inputs: [to_voltage]
  - name: sink
    type: websocket_sink
    params: {topic: demo_topic}
    inputs: [filter]
"""


def _doc() -> dict:  # type: ignore[type-arg]
    doc = yaml.safe_load(GOOD)
    assert isinstance(doc, dict)
    return doc


def _error(doc: object, tmp_path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(doc, "demo.yaml")
    return str(info.value)


def test_shipped_pipelines_load() -> None:
    files = sorted((REPO / "pipelines").glob("*.yaml"))
    assert files, "no shipped pipelines"
    for path in files:
        spec = load_pipeline_file(path)
        assert spec.source.type_name == "ads1299_source"


def test_default_pipeline_is_the_spec_one() -> None:
    spec = load_pipeline_file(REPO / "pipelines" / "default.yaml")
    assert spec.name == "default"
    assert spec.topics == ("eeg_voltage", "eeg_filtered") or set(spec.topics) == {
        "eeg_voltage",
        "eeg_filtered",
    }
    order = [s.name for s in spec.stages]
    assert order[0] == "acquire"
    assert order.index("filter") < order.index("notch") < order.index("filtered_sink")
    assert spec.claims_device


def test_good_pipeline_resolves_default_ports() -> None:
    spec = parse_pipeline(_doc(), "demo.yaml")
    sink = spec.stages[-1]
    assert [str(i) for i in sink.inputs] == ["filter.out"]


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\nstages:\n  - name: a\n    type: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline_file(bad)
    msg = str(info.value)
    assert msg.startswith(f"{bad}:5: invalid YAML") and "column" in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such pipeline file"):
        load_pipeline_file(tmp_path / "nope.yaml")


def test_not_a_mapping() -> None:
    assert "must be a mapping" in _error(["a", "b"])


def test_unknown_top_level_key() -> None:
    doc = _doc()
    doc["stagez"] = []
    assert "unknown key(s) 'stagez'" in _error(doc)


def test_unknown_stage_type_lists_known_types() -> None:
    doc = _doc()
    doc["stages"][2]["type"] = "bandpazz"
    msg = _error(doc)
    assert "stage 'filter'" in msg and "field 'type'" in msg and "'bandpazz'" in msg
    assert "bandpass" in msg  # the known types are listed


def test_unknown_input() -> None:
    doc = _doc()
    doc["stages"][2]["inputs"] = ["to_voltag"]
    msg = _error(doc)
    assert "stage 'filter'" in msg and "unknown input stage 'to_voltag'" in msg


def test_unknown_output_port() -> None:
    doc = _doc()
    doc["stages"][2]["inputs"] = ["to_voltage.nope"]
    assert "has no output port 'nope'" in _error(doc)


def test_wrong_number_of_inputs() -> None:
    doc = _doc()
    doc["stages"][2]["inputs"] = []
    assert "needs 1 input(s)" in _error(doc)
    doc = _doc()
    doc["stages"][0]["inputs"] = ["filter"]
    assert "source stage takes no inputs" in _error(doc)


def test_cycle_is_named() -> None:
    doc = _doc()
    doc["stages"][1]["inputs"] = ["filter"]
    msg = _error(doc)
    assert "cycle" in msg and "filter" in msg and "to_voltage" in msg


def test_duplicate_stage_names() -> None:
    doc = _doc()
    doc["stages"][3]["name"] = "filter"
    assert "stage 'filter': duplicate stage name" in _error(doc)


def test_duplicate_topics() -> None:
    doc = _doc()
    doc["stages"].append(
        {
            "name": "sink2",
            "type": "websocket_sink",
            "params": {"topic": "demo_topic"},
            "inputs": ["to_voltage"],
        }
    )
    msg = _error(doc)
    assert "topic 'demo_topic' is already published by stage 'sink'" in msg


def test_unknown_param_lists_allowed() -> None:
    doc = _doc()
    doc["stages"][2]["params"]["hi_hz"] = 30
    msg = _error(doc)
    assert "stage 'filter' (bandpass)" in msg and "'hi_hz'" in msg and "'high_hz'" in msg


def test_param_of_wrong_type() -> None:
    doc = _doc()
    doc["stages"][2]["params"]["low_hz"] = "one"
    msg = _error(doc)
    assert "param 'low_hz'" in msg and "'one'" in msg


def test_bad_param_value_names_field() -> None:
    doc = _doc()
    doc["stages"][0]["params"]["sample_rate"] = 300
    msg = _error(doc)
    assert "stage 'acquire' (ads1299_source)" in msg and "sample_rate" in msg and "300" in msg


def test_missing_required_param() -> None:
    doc = _doc()
    del doc["stages"][3]["params"]
    assert "missing required param(s) 'topic'" in _error(doc)


def test_needs_exactly_one_source() -> None:
    doc = _doc()
    doc["stages"].append({"name": "acquire2", "type": "ads1299_source"})
    assert "exactly one source" in _error(doc)


def test_bad_names() -> None:
    doc = _doc()
    doc["name"] = "has space"
    assert "'name' must be a word" in _error(doc)
    doc = _doc()
    doc["stages"] = []
    assert "non-empty list" in _error(doc)


# -- what YAML means, and what a hostile file cannot do ----------------------------------------

SOURCE_ONLY = (
    "name: demo\nstages:\n  - name: acquire\n    type: ads1299_source\n    params: {PARAMS}\n"
)


def _load(tmp_path: Path, text: str, name: str = "demo.yaml") -> Any:
    path = tmp_path / name
    path.write_text(text)
    return load_pipeline_file(path)


def _load_error(tmp_path: Path, text: str, name: str = "demo.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text, name)
    return str(info.value)


@pytest.mark.parametrize("word", ["off", "Off", "OFF"])
def test_documented_off_input_is_the_off_input(tmp_path: Path, word: str) -> None:
    spec = _load(tmp_path, SOURCE_ONLY.replace("PARAMS", f"input: {word}".lower()))
    params = spec.source.params
    assert params.input == "off"
    chset = params.chain(8).channels[0].chset
    assert chset & 0x80, "CHnSET.PD must be set for the off input"


def test_off_in_a_per_channel_input_list(tmp_path: Path) -> None:
    inputs = "[normal, off, normal, off, normal, normal, normal, off]"
    spec = _load(tmp_path, SOURCE_ONLY.replace("PARAMS", f"input: {inputs}"))
    assert spec.source.params.input[1] == "off" and spec.source.params.input[7] == "off"


@pytest.mark.parametrize("word", ["on", "On", "ON", "yes", "Yes", "no", "NO", "y", "n", "Y", "N"])
def test_yaml11_booleans_are_strings_not_booleans(tmp_path: Path, word: str) -> None:
    """A bool param given a YAML 1.1 word is refused, not silently read as true/false."""
    msg = _load_error(tmp_path, SOURCE_ONLY.replace("PARAMS", f"srb1: {word}"))
    assert "srb1" in msg and repr(word) in msg


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
    ],
)
def test_every_bool_param_takes_true_and_false(tmp_path: Path, word: str, value: bool) -> None:
    text = SOURCE_ONLY.replace(
        "PARAMS", f"srb1: {word}, srb2: {word}, bias: {word}, lead_off: {word}"
    )
    params = _load(tmp_path, text).source.params
    assert params.srb1 is value and params.srb2 is value and params.bias is value
    assert params.lead_off is value
    per_channel = _load(tmp_path, SOURCE_ONLY.replace("PARAMS", f"srb2: [{', '.join([word] * 8)}]"))
    assert per_channel.source.params.srb2 == [value] * 8


def test_duplicate_key_names_file_and_line(tmp_path: Path) -> None:
    text = "name: demo\nstages:\n  - name: acquire\n    type: ads1299_source\n    name: other\n"
    msg = _load_error(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'demo.yaml'}:5: key 'name' appears twice")
    assert "line 3" in msg


def test_duplicate_param_is_refused(tmp_path: Path) -> None:
    msg = _load_error(tmp_path, SOURCE_ONLY.replace("PARAMS", "gain: 24, gain: 1"))
    assert ":5: key 'gain' appears twice" in msg


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    text = GOOD + "#" + "x" * MAX_FILE_BYTES + "\n"
    msg = _load_error(tmp_path, text)
    assert "too large for a pipeline file" in msg and "1 MiB" in msg and len(msg) < 300


def test_too_many_stages(tmp_path: Path) -> None:
    stages = "".join(
        f"  - {{name: v{i}, type: to_voltage, inputs: [acquire]}}\n" for i in range(MAX_STAGES)
    )
    text = "name: demo\nstages:\n  - {name: acquire, type: ads1299_source}\n" + stages
    msg = _load_error(tmp_path, text)
    assert f"{MAX_STAGES + 1} stages" in msg and f"at most {MAX_STAGES}" in msg
    _load(tmp_path, text.rsplit("  - ", 1)[0])  # exactly MAX_STAGES is fine


def test_too_many_nodes(tmp_path: Path) -> None:
    text = GOOD + "description: [" + ", ".join(["1"] * MAX_NODES) + "]\n"
    msg = _load_error(tmp_path, text)
    assert f"more than {MAX_NODES} values" in msg and len(msg) < 300


def billion_laughs(levels: int = 9) -> str:
    """Under 1 KB of YAML whose ``name`` expands to 9**levels strings when walked or printed."""
    lists = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lists += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return f"stages: []\ndescription: [{', '.join(lists)}]\nname: *l{levels - 1}\n"


def test_billion_laughs_is_refused_quickly_with_little_memory(tmp_path: Path) -> None:
    text = billion_laughs(8)  # 43 million strings: hundreds of MB as an error message
    assert len(text) < 1000
    tracemalloc.start()
    try:
        msg = _load_error(tmp_path, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert "aliases count as what they repeat" in msg and len(msg) < 300


def test_alias_expansion_reaching_validation_is_quoted_short(tmp_path: Path) -> None:
    """Below the node cap an alias-heavy value still reaches errors only as a short quote."""
    text = "x: &x [" + ", ".join(["abcdefghij"] * 50) + "]\ny: &y [" + ", ".join(["*x"] * 50)
    text += "]\nname: [*y, *y, *y, *y]\nstages: []\n"
    msg = _load_error(tmp_path, text)
    assert "'name'" in msg and len(msg) < 500


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    msg = _load_error(tmp_path, GOOD + "description: " + "[" * 200 + "]" * 200 + "\n")
    assert f"nested more than {MAX_DEPTH} levels" in msg


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    msg = _load_error(tmp_path, GOOD + "description: &d [*d]\n")
    assert "refers to a node that contains it" in msg


def test_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_pipeline_file(fifo)


def test_long_values_are_quoted_short(tmp_path: Path) -> None:
    long_name = "x" * 100_000
    msg = _load_error(tmp_path, SOURCE_ONLY.replace("PARAMS", f"input: {long_name}"))
    assert "param 'input'" in msg and len(msg) < 600, len(msg)
    msg = _load_error(tmp_path, f"name: {long_name}!\nstages: []\n")
    assert len(msg) < 600, len(msg)
