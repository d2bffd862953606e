"""Impedance end to end: a real ``eegpi serve --mock`` whose emulated electrodes have known
impedances, measured through ``Device.MeasureImpedance`` (the real grpcurl binary), through
``eegpi impedance --json``, and on the ``impedance`` topic by a websockets client; on the idle
device and on the running pipeline's stream.

The emulator runs in virtual time (as fast as read, never a lost conversion), so a window is
never restarted by a loss a busy host caused.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.cli.cli_runner import run_eegpi
from tests.conftest import Daemon, start_daemon
from tests.rpc.grpcurl_tool import grpcurl

ELECTRODES_KOHM = [5, 10, 20, 50, 100, 200, 500, 1000]
"""Channels 1-8; channel 9's electrode is off, channel 10's 100 MOhm rails it at gain 24."""
CHAIN_KOHM = [*ELECTRODES_KOHM, 10, 100_000, 10, 10, 10, 10, 10, 10]
LEAD_OFF, RAILED = "ch9", "ch10"

IMPEDANCE_PIPELINE = """\
name: impedance
stages:
  - name: acquire
    type: ads1299_source
    params:
      chips: 2
      lead_off: {frequency: ac_fdr/4, current: 6nA}
  - name: impedance
    type: impedance
    params: {window_s: 1.0}
    inputs: [acquire]
"""
PLAIN_PIPELINE = """\
name: plain
stages:
  - name: acquire
    type: ads1299_source
    params: {chips: 2}
  - name: to_voltage
    type: to_voltage
    inputs: [acquire]
  - name: sink
    type: websocket_sink
    params: {topic: eeg_voltage}
    inputs: [to_voltage]
"""


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The daemon, idle, on a two-chip emulated chain with known electrodes."""
    root = tmp_path_factory.mktemp("impedance")
    pipelines = root / "pipelines"
    pipelines.mkdir()
    (pipelines / "impedance.yaml").write_text(IMPEDANCE_PIPELINE)
    (pipelines / "plain.yaml").write_text(PLAIN_PIPELINE)
    cfg = root / "eegpi.yaml"
    cfg.write_text(
        "device:\n"
        "  backend: mock\n"
        "  emulator:\n"
        "    realtime: false\n"
        "    chips: 2\n"
        f"    electrode_impedance_kohm: {json.dumps(CHAIN_KOHM)}\n"
        "    leads_off: [9]\n"
    )
    d = start_daemon("--config", str(cfg), pipelines=pipelines, autostart=())
    try:
        yield d
    finally:
        d.kill()


def _check_values(channels: list[dict[str, Any]]) -> None:
    """Every electrode within 10 %, the lead-off and the railed channel flagged."""
    by = {c["name"]: c for c in channels}
    assert len(by) == 16, sorted(by)
    for k, z in enumerate(ELECTRODES_KOHM):
        c = by[f"ch{k + 1}"]
        assert c["kohm"] == pytest.approx(z, rel=0.10), c
        assert not c.get("lead_off") and not c.get("railed"), c
    assert by[LEAD_OFF]["lead_off"] is True and by[LEAD_OFF]["grade"] == "lead_off"
    assert by[RAILED]["railed"] is True and by[RAILED]["grade"] == "railed"
    assert by[RAILED].get("kohm") is None  # absent (protobuf JSON) or null (the topic)
    assert [by[f"ch{k}"]["grade"] for k in (1, 3, 5, 8)] == ["good", "fair", "poor", "poor"]


def _grpcurl(d: Daemon, method: str, data: dict[str, Any], max_time: float = 30) -> Any:
    result = asyncio.run(grpcurl(d.grpc_target, method, data=json.dumps(data), max_time=max_time))
    return result


def _start(d: Daemon, name: str) -> None:
    out = _grpcurl(d, "eegpi.v1.PipelineControl/StartPipeline", {"name": name})
    assert out.code == 0, out.err
    assert out.json()["state"] == "PIPELINE_STATE_RUNNING"


def _stop(d: Daemon, name: str) -> None:
    out = _grpcurl(d, "eegpi.v1.PipelineControl/StopPipeline", {"name": name})
    assert out.code == 0, out.err


def test_idle_device_measured_through_grpcurl_and_the_cli(bench: Daemon) -> None:
    out = _grpcurl(bench, "eegpi.v1.Device/MeasureImpedance", {"duration_s": 1})
    assert out.code == 0, out.err
    reply = out.json()
    _check_values(reply["channels"])
    assert reply.get("pipeline", "") == ""  # the device opened for the check
    assert (reply["frequency_hz"], reply["current_na"], reply["series_kohm"]) == (62.5, 6, 2.2)

    cli = run_eegpi("--grpc", bench.grpc_target, "impedance", "--json")
    assert cli.code == 0, cli.err
    data = cli.json()
    _check_values(data["channels"])
    assert data["pipeline"] == "" and data["thresholds_kohm"] == {"good": 10.0, "fair": 50.0}

    table = run_eegpi("--grpc", bench.grpc_target, "impedance", "--channel", "ch3")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert "idle device" in lines[0] and "6 nA at 62.5 Hz" in lines[0]
    assert lines[1].split() == ["ELECTRODE", "KOHM", "GRADE"]
    assert lines[2].split()[0] == "ch3" and lines[2].split()[2] == "fair"
    assert "\x1b[" not in table.out  # no colour when stdout is not a terminal


def test_running_pipeline_measured_on_its_stream_and_published_on_the_topic(
    bench: Daemon,
) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        async with websockets.connect(bench.ws_url) as ws:
            await ws.send(json.dumps({"subscribe": "impedance"}))
            pending = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            await asyncio.to_thread(_start, bench, "impedance")
            ack: dict[str, Any] = {}
            events: list[dict[str, Any]] = []
            while len(events) < 2:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=20))
                if msg.get("subscribed") == "impedance" and msg.get("meta"):
                    ack = msg
                elif msg.get("topic") == "impedance" and "event" in msg:
                    events.append(msg)
            return pending, ack, events

    try:
        pending, ack, events = asyncio.run(scenario())
        assert pending["subscribed"] == "impedance" and pending["pending"] is True
        assert ack["meta"]["units"] == "kOhm" and ack["meta"]["kind"] == "impedance"
        for msg in events:
            event = msg["event"]
            assert msg["seq"] == event["seq"] and msg["timestamp"] == event["timestamp"]
            assert event["kind"] == "impedance" and event["pipeline"] == "impedance"
            assert event["frequency_hz"] == 62.5 and event["window_s"] == 0.992
            _check_values(event["channels"])
        assert events[1]["seq"] > events[0]["seq"]

        out = _grpcurl(bench, "eegpi.v1.Device/MeasureImpedance", {"duration_s": 0.5})
        assert out.code == 0, out.err
        assert out.json()["pipeline"] == "impedance"
        _check_values(out.json()["channels"])
        cli = run_eegpi("--grpc", bench.grpc_target, "impedance", "--json")
        assert cli.code == 0, cli.err
        assert cli.json()["pipeline"] == "impedance"
        _check_values(cli.json()["channels"])

        other = _grpcurl(
            bench, "eegpi.v1.Device/MeasureImpedance", {"current": "24nA", "duration_s": 0.5}
        )
        assert other.code != 0 and "FailedPrecondition" in other.err
        assert "pipeline 'impedance' drives 6 nA, not 24nA" in other.err
    finally:
        _stop(bench, "impedance")


def test_a_running_source_without_the_excitation_is_refused_with_what_to_do(
    bench: Daemon,
) -> None:
    _start(bench, "plain")
    try:
        out = _grpcurl(bench, "eegpi.v1.Device/MeasureImpedance", {})
        assert out.code != 0 and "FailedPrecondition" in out.err, out.err
        assert "the source of pipeline 'plain' drives no lead-off current" in out.err
        assert "eegpi stop plain" in out.err and "ac_fdr/4" in out.err
        cli = run_eegpi("--grpc", bench.grpc_target, "impedance")
        assert cli.code == 1 and "FAILED_PRECONDITION" in cli.err
        status = _grpcurl(bench, "eegpi.v1.PipelineControl/GetStatus", {"name": "plain"})
        assert status.json()["pipelines"][0]["state"] == "PIPELINE_STATE_RUNNING"  # untouched
    finally:
        _stop(bench, "plain")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"duration_s": 20}, "duration_s: 20.0 is not a number of seconds from 0.1 to 10"),
        ({"current": "1mA"}, "current: '1mA' is not one of 6nA, 24nA, 6uA, 24uA"),
        ({"good_kohm": 80}, r"fair_kohm \(50\) must be above good_kohm \(80\)"),
        ({"channels": ["Cz"]}, "channels: no channel named 'Cz'; this device has ch1, ch2"),
    ],
)
def test_bad_requests_are_refused_and_leave_the_daemon_serving(
    bench: Daemon, request_: dict[str, Any], message: str
) -> None:
    out = _grpcurl(bench, "eegpi.v1.Device/MeasureImpedance", request_)
    assert out.code != 0 and "InvalidArgument" in out.err, out.err
    assert re.search(message, out.err), out.err
    again = _grpcurl(bench, "eegpi.v1.Device/MeasureImpedance", {"duration_s": 0.2})
    assert again.code == 0, again.err


def test_a_deadline_shorter_than_the_window_is_refused_at_once(bench: Daemon) -> None:
    out = _grpcurl(bench, "eegpi.v1.Device/MeasureImpedance", {"duration_s": 5}, max_time=3)
    assert out.code != 0 and "DeadlineExceeded" in out.err, out.err
    assert "an impedance check of 5 s needs about 6 s" in out.err


def test_watch_redraws_until_ctrl_c_and_exits_0(bench: Daemon) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EEGPI_")}
    cmd = [sys.executable, "-m", "eegpi", "--grpc", bench.grpc_target, "impedance"]
    proc = subprocess.Popen(
        [*cmd, "--watch", "--json", "--duration", "0.2", "--channel", "ch2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]  # one per measurement
        assert all([c["name"] for c in line["channels"]] == ["ch2"] for line in lines)
        assert all(line["window_s"] == 0.192 for line in lines)  # 48 samples: whole cycles
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
