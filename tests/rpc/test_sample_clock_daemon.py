"""A real daemon on an emulator with 50 us of DRDY stamp jitter and a crystal 100 ppm fast
(virtual time): the samples a WebSocket client gets carry sample-clock times without the
jitter, GetStatus (through grpcurl) reports the clock, and the electrode names the source
gives, picked and renamed by ``select``, reach the client with their own gains."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import websockets
import yaml

from eegpi.v1 import control_pb2, control_pb2_grpc
from tests.conftest import Daemon, start_daemon

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
GET_STATUS = "eegpi.v1.PipelineControl/GetStatus"
RATE = 250
PPM = 100.0
JITTER_US = 50.0
NAMES = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]
GAINS = [24, 12, 24, 24, 24, 24, 24, 6]
TRUE_PERIOD_S = 1 / (RATE * (1 + PPM * 1e-6))
PIPELINE = {
    "name": "clock",
    "stages": [
        {
            "name": "acquire",
            "type": "ads1299_source",
            "params": {"sample_rate": RATE, "gain": GAINS, "channel_names": NAMES},
        },
        {
            "name": "pick",
            "type": "select",
            "params": {"channels": ["Fp1", 8, "Fp2"], "rename": {"O2": "Oz"}},
            "inputs": ["acquire"],
        },
        {"name": "uv", "type": "to_voltage", "inputs": ["pick"]},
        {"name": "sink", "type": "websocket_sink", "params": {"topic": "picked"}, "inputs": ["uv"]},
    ],
}
LSB_UV = 4.5e6 / (24 * 2**23)
"""Microvolts per count of Fp1 (gain 24): it carries the conversion's index."""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "clock.yaml").write_text(yaml.safe_dump(PIPELINE))
    emulator = {
        "realtime": False,
        "stamp_index": True,
        "drdy_jitter_us": JITTER_US,
        "clock_ppm": PPM,
    }
    cfg = tmp_path / "eegpi.yaml"
    cfg.write_text(yaml.safe_dump({"device": {"backend": "mock", "emulator": emulator}}))
    d = start_daemon("--config", str(cfg), pipelines=pipelines, autostart=())
    try:
        yield d
    finally:
        d.kill()


async def _stream(url: str, stub: Any, until_seq: int) -> tuple[dict[str, Any], list[Any]]:
    """Subscribe, start the pipeline, read data messages until ``until_seq`` arrived."""
    messages: list[Any] = []
    async with websockets.connect(url, max_size=2**24) as ws:
        # Every block as its own message: a batched message split inside a block would start
        # at the block's time plus its offset at the nominal rate, not on the sample clock.
        await ws.send(json.dumps({"subscribe": "picked", "max_latency_ms": 0}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        assert ack.get("subscribed") == "picked", ack
        reply = await asyncio.to_thread(
            stub.StartPipeline, control_pb2.StartPipelineRequest(name="clock"), timeout=60
        )
        assert reply.state == control_pb2.PIPELINE_STATE_RUNNING
        meta: dict[str, Any] = ack.get("meta") or {}
        while not messages or messages[-1]["seq"] < until_seq:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            if "topic" in msg:
                messages.append(msg)
            elif msg.get("subscribed") == "picked" and msg.get("meta"):
                meta = msg["meta"]
    return meta, messages


def grpcurl_status(target: str) -> dict[str, Any]:
    r = subprocess.run(
        [GRPCURL, "-plaintext", "-max-time", "10", "-d", '{"name": "clock"}', target, GET_STATUS],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    (status,) = json.loads(r.stdout)["pipelines"]
    return dict(status)


def test_sample_clock_times_and_status_with_a_jittery_drdy_and_a_fast_crystal(
    daemon: Daemon,
) -> None:
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        stub = control_pb2_grpc.PipelineControlStub(channel)
        meta, messages = asyncio.run(_stream(daemon.ws_url, stub, 40 * RATE))
        status = grpcurl_status(daemon.grpc_target)

    # Names and gains: picked, ordered and renamed; the gain of each still its own.
    assert meta["channels"] == ["Fp1", "Oz", "Fp2"]
    assert meta["gain"] == [24, 6, 12] and meta["units"] == "uV"

    # Each message's time against the true time of its first conversion (Fp1 carries the
    # conversion's index), after 10 s of fit; one constant (start, mean lateness) aside.
    settled = [m for m in messages if m["seq"] >= 10 * RATE]
    assert len(settled) > 100
    k = np.array([round(m["data"][0][0] / LSB_UV) for m in settled])
    assert np.array_equal(k, [m["seq"] for m in settled])  # virtual time: slot = conversion
    t = np.array([m["timestamp"] for m in settled])
    err_us = ((t - t[0]) - (k - k[0]) * TRUE_PERIOD_S) * 1e6
    assert np.abs(err_us - err_us.mean()).max() < 5.0

    assert status["state"] == "PIPELINE_STATE_RUNNING"
    assert status["clock_ppm"] == pytest.approx(PPM, abs=1.0)
    assert status["sample_rate_measured_hz"] == pytest.approx(RATE * (1 + PPM * 1e-6), abs=3e-4)
    assert status["timestamp_residual_us"] == pytest.approx(JITTER_US / np.sqrt(12), rel=0.15)
