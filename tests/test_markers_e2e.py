"""Markers end to end: posted by grpcurl and by a WebSocket client, or made by hardware (an
emulated trigger pulse, a change of the chip's GPIO inputs), placed on the right sample, and
found on the ``markers`` topic, in the BDF+ recording and on the LSL marker stream.

A real `eegpi serve --mock`; the emulator stamps each conversion's index into channel 1, so a
data message says which conversion each sample is and the recording's rows can be matched to
sample slots exactly. A marker is posted with the time of a chosen sample (taken from a data
message), so the sample it must land on is known in advance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
import yaml

from tests.conftest import Daemon, start_daemon
from tests.recording.helpers import LSB_UV, read_mne
from tests.rpc.grpcurl_tool import grpcurl

pylsl = pytest.importorskip("pylsl")

RATE = 250
NAMES = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]


def _pipeline(stream: str, **source: Any) -> dict[str, Any]:
    return {
        "name": "marks",
        "stages": [
            {
                "name": "acquire",
                "type": "ads1299_source",
                "params": {"sample_rate": RATE, "channel_names": NAMES, **source},
            },
            {"name": "to_voltage", "type": "to_voltage", "inputs": ["acquire"]},
            {
                "name": "voltage_sink",
                "type": "websocket_sink",
                "params": {"topic": "eeg_voltage"},
                "inputs": ["to_voltage"],
            },
            {"name": "raw", "type": "recorder", "inputs": ["acquire"]},
            {
                "name": "outlet",
                "type": "lsl_outlet",
                "params": {"name": stream, "source_id": f"test/{stream}"},
                "inputs": ["to_voltage"],
            },
        ],
    }


@pytest.fixture
def lsl_machine_scope(tmp_path: Path) -> Iterator[str]:
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text("[multicast]\nResolveScope = machine\n[log]\nlevel = -2\n")
    old = os.environ.get("LSLAPICFG")
    os.environ["LSLAPICFG"] = str(cfg)
    try:
        yield str(cfg)
    finally:
        if old is None:
            os.environ.pop("LSLAPICFG", None)
        else:
            os.environ["LSLAPICFG"] = old


@pytest.fixture
def marks_daemon(tmp_path: Path, lsl_machine_scope: str) -> Iterator[tuple[Daemon, Path, str]]:
    stream = f"eegpi-marks-{uuid.uuid4().hex[:8]}"
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "marks.yaml").write_text(yaml.safe_dump(_pipeline(stream)))
    cfg = tmp_path / "eegpi.yaml"
    device = {"backend": "mock", "emulator": {"stamp_index": True}}
    cfg.write_text(yaml.safe_dump({"device": device, "data_dir": str(tmp_path / "data")}))
    d = start_daemon(
        "--config",
        str(cfg),
        pipelines=pipelines,
        autostart=("marks",),
        env={"LSLAPICFG": lsl_machine_scope},
    )
    try:
        yield d, tmp_path / "data", stream
    finally:
        d.kill()


def _rfc3339(unix: float) -> str:
    whole = dt.datetime.fromtimestamp(int(unix), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{round((unix % 1) * 1e9):09d}Z"


async def _sample_times(ws: Any, want: int) -> dict[int, float]:
    """Conversion index -> the sample's time, from data messages of eeg_voltage."""
    times: dict[int, float] = {}
    while len(times) < want:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        if msg.get("topic") != "eeg_voltage":
            continue
        for k, row in enumerate(msg["data"]):
            times[round(row[0] / LSB_UV)] = msg["timestamp"] + k / RATE
    return times


def test_markers_land_on_their_sample_everywhere(marks_daemon: tuple[Daemon, Path, str]) -> None:
    d, data_dir, stream = marks_daemon
    found = pylsl.resolve_byprop("name", f"{stream}-markers", 1, 30.0)
    assert found, "the LSL marker outlet was not found on this machine"
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(10.0)

    async def scenario() -> tuple[dict[str, int], dict[str, dict[str, Any]], dict[str, Any]]:
        async with websockets.connect(d.ws_url) as ws:
            for topic in ("eeg_voltage", "markers"):
                await ws.send(json.dumps({"subscribe": topic}))
            times = await _sample_times(ws, 3 * RATE)
            # samples well inside what was seen: their times are known, not extrapolated
            index = sorted(times)
            grpc_seq, ws_seq = index[RATE // 2], index[RATE]
            data = json.dumps(
                {"pipeline": "marks", "label": "grpc-stim", "time": _rfc3339(times[grpc_seq])}
            )
            result = await grpcurl(d.grpc_target, "eegpi.v1.PipelineControl/PostMarker", data=data)
            assert result.code == 0, result.err
            reply = result.json()
            await ws.send(json.dumps({"marker": "ws-stim", "time": times[ws_seq]}))
            ack: dict[str, Any] = {}
            seen = {}
            while not ack or set(seen) != {"grpc-stim", "ws-stim"}:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                if "marker" in msg:
                    ack = msg["marker"]
                elif msg.get("topic") == "markers":
                    seen[msg["event"]["label"]] = msg
            expected = {"grpc-stim": grpc_seq, "ws-stim": ws_seq}
            assert int(reply["seq"]) == grpc_seq and reply["source"] == "grpc"
            assert ack["seq"] == ws_seq and ack["source"] == "websocket"
            assert ack["pipeline"] == "marks"
            stop = await grpcurl(
                d.grpc_target, "eegpi.v1.PipelineControl/StopPipeline", data='{"name": "marks"}'
            )
            assert stop.code == 0, stop.err
            return expected, seen, reply

    expected, seen, _ = asyncio.run(scenario())
    for label, seq in expected.items():
        event = seen[label]
        assert event["seq"] == seq and event["event"]["seq"] == seq
        assert event["event"]["pipeline"] == "marks"

    # the LSL marker stream has both, each at its own time on LSL's clock
    got = _lsl_marker_times(inlet, 2)
    lsl_gap = got["ws-stim"] - got["grpc-stim"]
    event_gap = seen["ws-stim"]["timestamp"] - seen["grpc-stim"]["timestamp"]
    assert abs(lsl_gap - event_gap) < 1e-3

    # the recording has each as an annotation at the row of its sample
    _assert_annotated_at_their_rows(data_dir, expected)


def test_refused_markers_say_why(marks_daemon: tuple[Daemon, Path, str]) -> None:
    d, _, _ = marks_daemon

    async def scenario() -> None:
        bad = await grpcurl(
            d.grpc_target,
            "eegpi.v1.PipelineControl/PostMarker",
            data=json.dumps({"pipeline": "marks", "label": ""}),
        )
        assert bad.code != 0 and "InvalidArgument" in bad.err and "label" in bad.err
        unknown = await grpcurl(
            d.grpc_target,
            "eegpi.v1.PipelineControl/PostMarker",
            data=json.dumps({"pipeline": "nope", "label": "x"}),
        )
        assert unknown.code != 0 and "NotFound" in unknown.err
        async with websockets.connect(d.ws_url) as ws:
            await ws.send(json.dumps({"marker": "x\u0007"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            assert reply["error"]["code"] == "marker_refused"
            assert "control characters" in reply["error"]["message"]
            await ws.send(json.dumps({"marker": 5}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            assert reply["error"]["code"] == "bad_request"

    asyncio.run(scenario())


def test_eegpi_mark_places_a_marker_and_says_where(marks_daemon: tuple[Daemon, Path, str]) -> None:
    d, _, _ = marks_daemon
    eegpi = str(Path(sys.executable).parent / "eegpi")

    async def scenario() -> None:
        async with websockets.connect(d.ws_url) as ws:
            await ws.send(json.dumps({"subscribe": "eeg_voltage"}))
            times = await _sample_times(ws, RATE)
            seq = sorted(times)[RATE // 2]
            proc = await asyncio.create_subprocess_exec(
                eegpi,
                "--grpc",
                d.grpc_target,
                "mark",
                "button",
                "--at",
                repr(times[seq]),
                "--json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
            assert proc.returncode == 0, err.decode()
            reply = json.loads(out)
            assert reply["seq"] == seq and reply["pipeline"] == "marks"
            assert reply["label"] == "button" and reply["source"] == "grpc"

    asyncio.run(scenario())


# --- markers from hardware: the trigger input and the chip's GPIO bits -------------------------

TRIGGER_AT = 8 * RATE
"""The emulated stimulus pulses at this conversion: late enough that the LSL inlet, opened
after the pipeline starts, is listening by then (checked, not assumed)."""
GPIO_AT = TRIGGER_AT + RATE // 2


@pytest.fixture
def hw_daemon(tmp_path: Path, lsl_machine_scope: str) -> Iterator[tuple[Daemon, Path, str]]:
    """A daemon whose pipeline (not started) has a trigger input on GPIO5 and GPIO markers,
    on an emulator that pulses GPIO5 at conversion TRIGGER_AT and raises GPIO1 and GPIO3 of
    the chip at GPIO_AT."""
    stream = f"eegpi-hw-{uuid.uuid4().hex[:8]}"
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    spec = _pipeline(stream, trigger={"pin": 5, "label": "flash"}, gpio_markers=True)
    (pipelines / "marks.yaml").write_text(yaml.safe_dump(spec))
    emulator = {
        "stamp_index": True,
        "trigger_at": [TRIGGER_AT],
        "gpio_at": {GPIO_AT: 0b0101},
        "drdy_jitter_us": 50,
    }
    cfg = tmp_path / "eegpi.yaml"
    device = {"backend": "mock", "emulator": emulator}
    cfg.write_text(yaml.safe_dump({"device": device, "data_dir": str(tmp_path / "data")}))
    d = start_daemon(
        "--config",
        str(cfg),
        pipelines=pipelines,
        autostart=(),
        env={"LSLAPICFG": lsl_machine_scope},
    )
    try:
        yield d, tmp_path / "data", stream
    finally:
        d.kill()


def test_trigger_and_gpio_markers_land_on_their_sample_everywhere(
    hw_daemon: tuple[Daemon, Path, str],
) -> None:
    d, data_dir, stream = hw_daemon
    expected = {"flash": (TRIGGER_AT, "trigger"), "gpio:0101": (GPIO_AT, "chip_gpio")}

    async def scenario() -> tuple[dict[str, dict[str, Any]], Any]:
        async with websockets.connect(d.ws_url) as ws:
            for topic in ("eeg_voltage", "markers"):
                await ws.send(json.dumps({"subscribe": topic}))
            start = await grpcurl(
                d.grpc_target, "eegpi.v1.PipelineControl/StartPipeline", data='{"name": "marks"}'
            )
            assert start.code == 0, start.err
            found = await asyncio.to_thread(
                pylsl.resolve_byprop, "name", f"{stream}-markers", 1, 30.0
            )
            assert found, "the LSL marker outlet was not found on this machine"
            inlet = pylsl.StreamInlet(found[0])
            await asyncio.to_thread(inlet.open_stream, 10.0)
            listening = time.time()
            n, t = next(iter((await _sample_times(ws, 1)).items()))
            due = t + (TRIGGER_AT - n) / RATE
            assert listening < due - 0.25, (
                f"the LSL inlet opened {listening - due:+.2f} s from the trigger pulse at "
                f"conversion {TRIGGER_AT}, too late to be sure it listened"
            )
            seen: dict[str, dict[str, Any]] = {}
            while set(seen) != set(expected):
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                if msg.get("topic") == "markers":
                    seen[msg["event"]["label"]] = msg
            stop = await grpcurl(
                d.grpc_target, "eegpi.v1.PipelineControl/StopPipeline", data='{"name": "marks"}'
            )
            assert stop.code == 0, stop.err
            status = await grpcurl(
                d.grpc_target, "eegpi.v1.PipelineControl/GetStatus", data='{"name": "marks"}'
            )
            assert status.code == 0, status.err
            (marks,) = json.loads(status.out)["pipelines"]
            # the run's hardware-marker counters outlive it (uint64: JSON strings, 0 omitted)
            counted = {k: int(marks.get(k, 0)) for k in ("trigger_markers", "trigger_lost")}
            assert counted == {"trigger_markers": 1, "trigger_lost": 0}, marks
            assert int(marks.get("gpio_markers", 0)) == 1, marks
            return seen, inlet

    seen, inlet = asyncio.run(scenario())
    for label, (seq, source) in expected.items():
        event = seen[label]
        assert event["seq"] == seq and event["event"]["seq"] == seq, (label, event)
        assert event["event"]["source"] == source and event["event"]["pipeline"] == "marks"

    # the LSL marker stream has both, as far apart as their event times
    got = _lsl_marker_times(inlet, 2)
    lsl_gap = got["gpio:0101"] - got["flash"]
    event_gap = seen["gpio:0101"]["timestamp"] - seen["flash"]["timestamp"]
    assert abs(lsl_gap - event_gap) < 1e-3

    # the recording has each as an annotation at the row of its sample
    _assert_annotated_at_their_rows(data_dir, {label: seq for label, (seq, _) in expected.items()})


def _lsl_marker_times(inlet: Any, count: int) -> dict[str, float]:
    """The first ``count`` markers of the LSL inlet: label -> LSL time."""
    got: dict[str, float] = {}
    while len(got) < count:
        sample, stamp = inlet.pull_sample(timeout=10.0)
        assert sample is not None, f"LSL markers: only {sorted(got)} arrived"
        got[sample[0]] = stamp
    return got


def _assert_annotated_at_their_rows(data_dir: Path, expected: dict[str, int]) -> None:
    """The recording holds each label as an annotation at the row of its sample (the emulator
    stamps each conversion's index in channel 1)."""
    (path,) = sorted(data_dir.rglob("*.bdf"))
    read = read_mne(path)
    rows = np.round(read.uv[:, 0] / LSB_UV).astype(int)
    for label, seq in expected.items():
        (onset,) = [o for o, _, text in read.annotations if text == label]
        (row,) = np.flatnonzero(rows == seq)
        assert round(onset * RATE) == row, (label, onset, row)
