"""The ``impedance`` stage on the emulated chip (virtual time, in this process): one event per
window with every electrode's kOhm, lead-off and railed flags; clear refusals."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from eegpi.exc import ConfigError
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.pipeline.stage import NullPublisher, StageContext
from eegpi.pipeline.stages.impedance import ImpedanceParams, ImpedanceStage
from eegpi.pipeline.stages.source import Ads1299Source, Ads1299SourceParams
from eegpi.stream import Block, StreamMeta

AC = {"frequency": "ac_fdr/4", "current": "6nA"}
Z = [5.0, 20.0, 100.0, 500.0, 1000.0, 8.0, 10.0, 100_000.0]
"""Channel 7's electrode is off (``leads_off``); channel 8's 100 MOhm rails the channel."""


class Collector(NullPublisher):
    def __init__(self) -> None:
        self.declared: dict[str, StreamMeta] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.retracted: list[str] = []

    def declare(self, topic: str, meta: StreamMeta) -> None:
        self.declared[topic] = meta

    def publish_event(self, topic: str, event: Mapping[str, Any]) -> None:
        self.events.append((topic, dict(event)))

    def retract(self, topic: str) -> None:
        self.retracted.append(topic)


def _cfg(**emulator: Any) -> DeviceConfig:
    return DeviceConfig(
        backend="mock",
        acquisition="thread",
        emulator=EmulatorConfig(realtime=False, **emulator),
    )


@pytest.fixture
def opened() -> Iterator[list[Any]]:
    items: list[Any] = []
    try:
        yield items
    finally:
        for item in reversed(items):
            item.close()


def _open(
    opened: list[Any], cfg: DeviceConfig, source: dict[str, Any], **params: Any
) -> tuple[Ads1299Source, ImpedanceStage, Collector]:
    publisher = Collector()
    ctx = StageContext(pipeline="bench", device=cfg, publisher=publisher)
    src = Ads1299Source("acquire", Ads1299SourceParams(**source))
    opened.append(src)
    meta = src.open({}, ctx)["out"]
    stage = ImpedanceStage("impedance", ImpedanceParams(**params))
    opened.append(stage)
    stage.open({"in": meta}, ctx)
    return src, stage, publisher


def _run(src: Ads1299Source, stage: ImpedanceStage, publisher: Collector, events: int) -> None:
    src.start()
    while len(publisher.events) < events:
        block = src.read(10.0)
        assert block is not None, "no data from the emulator"
        stage.process({"in": block})


def test_each_window_publishes_every_electrode(opened: list[Any]) -> None:
    cfg = _cfg(electrode_impedance_kohm=Z, leads_off=(7,))
    names = ["Fp1", "Fp2", "C3", "C4", "P3", "P4", "O1", "O2"]
    src, stage, publisher = _open(
        opened, cfg, {"lead_off": AC, "channel_names": names}, window_s=0.5
    )
    topic_meta = publisher.declared["impedance"]
    assert topic_meta.channels == tuple(names) and topic_meta.extra["kind"] == "impedance"
    _run(src, stage, publisher, 3)
    for topic, event in publisher.events:
        assert topic == "impedance"
        assert event["kind"] == "impedance" and event["pipeline"] == "bench"
        assert event["frequency_hz"] == 62.5 and event["current_na"] == 6.0
        assert event["window_s"] == 0.496  # 124 samples: whole cycles of the tone
        assert event["series_kohm"] == 2.2
        by = {c["name"]: c for c in event["channels"]}
        for name, z in zip(names[:6], Z[:6], strict=True):
            assert by[name]["kohm"] == pytest.approx(z, rel=0.02), (name, by[name])
            assert not by[name]["lead_off"] and not by[name]["railed"]
        assert [by[n]["grade"] for n in names[:6]] == [
            "good",
            "fair",
            "poor",
            "poor",
            "poor",
            "good",
        ]
        assert by["O1"]["lead_off"] and by["O1"]["grade"] == "lead_off"
        assert by["O2"] == {
            "name": "O2",
            "kohm": None,
            "grade": "railed",
            "lead_off": False,
            "railed": True,
        }
    seqs = [event["seq"] for _, event in publisher.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stage.close()
    assert publisher.retracted == ["impedance"]


def test_only_normal_inputs_are_measured_and_thresholds_apply(opened: list[Any]) -> None:
    cfg = _cfg(electrode_impedance_kohm=30.0)
    inputs = ["normal"] * 6 + ["shorted", "test"]
    src, stage, publisher = _open(
        opened, cfg, {"lead_off": AC, "input": inputs}, good_kohm=40, fair_kohm=80
    )
    assert publisher.declared["impedance"].channels == tuple(f"ch{k}" for k in range(1, 7))
    _run(src, stage, publisher, 1)
    channels = publisher.events[0][1]["channels"]
    assert [c["name"] for c in channels] == [f"ch{k}" for k in range(1, 7)]
    assert all(c["grade"] == "good" for c in channels)
    assert publisher.events[0][1]["thresholds_kohm"] == {"good": 40.0, "fair": 80.0}


def test_a_gap_starts_the_window_again(opened: list[Any]) -> None:
    src, stage, publisher = _open(opened, _cfg(), {"lead_off": AC})
    meta = src._meta
    assert meta is not None
    zeros = np.zeros((100, 8), dtype=np.int32)
    stage.process({"in": Block(zeros, 0, 0.0, meta)})
    stage.process({"in": Block(zeros, 101, 0.4, meta)})  # slot 100 was lost
    stage.process({"in": Block(zeros, 201, 0.8, meta)})
    assert publisher.events == []  # 200 contiguous samples, a window needs 248
    stage.process({"in": Block(zeros, 301, 1.2, meta)})
    assert [event["seq"] for _, event in publisher.events] == [101]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({}, "the source 'acquire' drives no lead-off current; an impedance check needs the AC"),
        (
            {"lead_off": {"frequency": "dc"}},
            "the source 'acquire' drives lead-off current at dc; an impedance check needs it at "
            "fDR/4",
        ),
    ],
)
def test_a_source_without_the_fdr4_excitation_is_refused(
    opened: list[Any], source: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _open(opened, _cfg(), source)


def test_voltage_input_is_refused() -> None:
    meta = StreamMeta(250.0, ("ch1",), "uV", {"gain": (24,), "vref_v": 4.5})
    ctx = StageContext(pipeline="p", device=_cfg(), publisher=NullPublisher())
    with pytest.raises(ConfigError, match="its input is in uV; connect it to the ads1299_source"):
        ImpedanceStage("impedance", ImpedanceParams()).open({"in": meta}, ctx)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window_s": 0.05}, "window_s: 0.05 is not a number of seconds, 0.1 to 10"),
        ({"window_s": "1s"}, "window_s: '1s' is not a number of seconds"),
        ({"topic": "bad topic"}, "topic: 'bad topic' is not a valid topic name"),
        ({"good_kohm": 60}, r"fair_kohm \(50\) must be above good_kohm \(60\)"),
        ({"series_kohm": -1}, "series_kohm: -1 is not a number of kOhm >= 0"),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImpedanceParams(**params)
