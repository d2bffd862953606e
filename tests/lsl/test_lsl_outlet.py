"""``lsl_outlet`` end to end: a real daemon's outlet read by a real LSL inlet in the test.

The emulator stamps each conversion's index into channel 1, so the inlet knows which
conversion every sample is: values, labels and per-sample timestamps are checked against it.
LSL resolution is kept on this machine (``ResolveScope = machine``) so a test run never
announces streams to the LAN.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from eegpi.pipeline.spec import parse_pipeline
from eegpi.pipeline.stages.lsl import LslOutletParams
from tests.conftest import Daemon, start_daemon

pylsl = pytest.importorskip("pylsl")

RATE = 250
NAMES = [f"ch{i + 1}" for i in range(8)]


@pytest.fixture(scope="module", autouse=True)
def _machine_scope(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cfg = tmp_path_factory.mktemp("lsl") / "lsl_api.cfg"
    cfg.write_text("[multicast]\nResolveScope = machine\n[log]\nlevel = -2\n")
    old = os.environ.get("LSLAPICFG")
    os.environ["LSLAPICFG"] = str(cfg)
    try:
        yield cfg
    finally:
        if old is None:
            os.environ.pop("LSLAPICFG", None)
        else:
            os.environ["LSLAPICFG"] = old


REPO = Path(__file__).resolve().parents[2]
LSB_UV = 4.5e6 / (24 * 2**23)
"""Microvolts per count at gain 24: channel 1 carries the conversion index."""


def _daemon(tmp_path: Path, stream: str, cfg: Path) -> Daemon:
    """The shipped pipelines/lsl.yaml, with a stream name no other run uses."""
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    spec = yaml.safe_load((REPO / "pipelines" / "lsl.yaml").read_text())
    (outlet,) = (st for st in spec["stages"] if st["type"] == "lsl_outlet")
    outlet["params"].update(name=stream, source_id=f"test/{stream}")
    (pipelines / "lsl.yaml").write_text(yaml.safe_dump(spec))
    config = tmp_path / "eegpi.yaml"
    config.write_text(
        yaml.safe_dump({"device": {"backend": "mock", "emulator": {"stamp_index": True}}})
    )
    return start_daemon(
        "--config",
        str(config),
        pipelines=pipelines,
        autostart=("lsl",),
        env={"LSLAPICFG": os.environ["LSLAPICFG"]},
    )


def test_an_inlet_gets_every_sample_with_labels_and_sample_clock_times(
    tmp_path: Path, _machine_scope: Path
) -> None:
    stream = f"eegpi-test-{uuid.uuid4().hex[:8]}"
    d = _daemon(tmp_path, stream, _machine_scope)
    try:
        found = pylsl.resolve_byprop("name", stream, 1, 30.0)
        assert found, "the outlet was not found on this machine within 30 s"
        info = found[0]
        assert info.type() == "EEG" and info.channel_count() == 8
        assert info.nominal_srate() == RATE and info.source_id() == f"test/{stream}"
        inlet = pylsl.StreamInlet(info, max_buflen=60)
        full = inlet.info(timeout=10.0)
        ch = full.desc().child("channels").child("channel")
        labels = []
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        assert labels == NAMES
        assert (
            ch.empty()
            and full.desc().child("channels").child("channel").child_value("unit") == "microvolts"
        )
        samples: list[list[float]] = []
        stamps: list[float] = []
        while len(samples) < 2 * RATE:
            chunk, ts = inlet.pull_chunk(timeout=10.0)
            assert chunk, "no samples within 10 s"
            samples.extend(chunk)
            stamps.extend(ts)
        received_at = pylsl.local_clock()
    finally:
        d.proc.terminate()
        d.proc.wait(30)
    counts = np.array(samples)[:, 0] / LSB_UV
    index = np.round(counts)
    assert np.max(np.abs(counts - index)) < 0.01, "values are not the microvolts of the counts"
    t = np.array(stamps)
    # channel 1 is the conversion number: in order, none twice (a busy host may lose a few in
    # real time: those are counted by the daemon and simply absent here)
    assert np.all(np.diff(index) >= 1), "samples repeated or reordered"
    assert len(index) >= 0.9 * (index[-1] - index[0] + 1)
    # each sample's time is its conversion's place on the sample clock, not the push time
    expected = t[0] + (index - index[0]) / RATE
    assert np.max(np.abs(t - expected)) < 0.002
    # and it is on LSL's clock: the newest sample is from the last seconds, not the future
    assert received_at - 10.0 < t[-1] <= received_at


def test_bad_params_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="name: "):
        LslOutletParams(name="bad name!")
    spec = {
        "name": "p",
        "stages": [
            {"name": "acquire", "type": "ads1299_source"},
            {"name": "o", "type": "lsl_outlet", "params": {"markers": 1}, "inputs": ["acquire"]},
        ],
    }
    with pytest.raises(Exception, match="markers"):
        parse_pipeline(spec)
