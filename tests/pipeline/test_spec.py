"""Pipeline YAML validation: every class of mistake gets a message naming file, stage, field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eegpi.exc import ConfigError
from eegpi.pipeline.spec import load_pipeline_file, parse_pipeline

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
    assert str(bad) in msg and "invalid YAML" in msg and "line" in msg


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
