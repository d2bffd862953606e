"""A real `eegpi serve --mock` records pipelines/record.yaml; MNE and pyedflib read the files.

The emulator stamps each conversion's index into channel 1 (``stamp_index``), so every sample
in a file says which conversion it is: the file's time axis, its gaps and their annotations are
checked sample by sample. The emulator loses chosen conversions (``drop_conversions``); a busy
host may lose more, each counted and annotated, so the chosen ones must be among the gaps and
every gap must be annotated, exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import websockets
import yaml

from eegpi.recording.catalog import RECOVERED, read_header
from eegpi.v1 import control_pb2 as pb
from eegpi.v1 import control_pb2_grpc
from tests.conftest import REPO, Daemon, start_daemon
from tests.recording.helpers import LSB_UV, Read, is_gap, onsets, read_mne, read_pyedflib

NAMES = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]
DROPPED = (300, 301, 777)


def _config(tmp_path: Path, **emulator: Any) -> Path:
    cfg = tmp_path / "eegpi.yaml"
    device = {"backend": "mock", "emulator": {"stamp_index": True, **emulator}}
    cfg.write_text(yaml.safe_dump({"device": device, "data_dir": str(tmp_path / "data")}))
    return cfg


def _pipelines(tmp_path: Path, *names: str) -> Path:
    d = tmp_path / "pipelines"
    d.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(REPO / "pipelines" / f"{name}.yaml", d / f"{name}.yaml")
    return d


def _kill(d: Daemon) -> None:
    d.kill()


@pytest.fixture
def recording_daemon(tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    """The record pipeline running from start-up; yields the daemon and its data_dir."""
    cfg = _config(tmp_path, drop_conversions=list(DROPPED))
    d = start_daemon(
        "--config", str(cfg), pipelines=_pipelines(tmp_path, "record"), autostart=("record",)
    )
    try:
        yield d, tmp_path / "data"
    finally:
        _kill(d)


def _stub(d: Daemon) -> Any:
    return control_pb2_grpc.PipelineControlStub(grpc.insecure_channel(d.grpc_target))


def _recordings(stub: Any, pipeline: str = "record") -> dict[str, Any]:
    status = stub.GetStatus(pb.GetStatusRequest(name=pipeline), timeout=10).pipelines[0]
    return {r.stage: r for r in status.recordings}


def _wait(what: str, check: Any, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something true (the daemon's pace, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


async def _collect(url: str, topics: tuple[str, ...], until_seq: int) -> dict[str, list[Any]]:
    got: dict[str, list[Any]] = {t: [] for t in topics}
    async with websockets.connect(url, max_size=2**24) as ws:
        for t in topics:
            await ws.send(json.dumps({"subscribe": t}))
        while min((m[-1]["seq"] if m else -1) for m in got.values()) < until_seq:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            if "topic" in msg:
                got[msg["topic"]].append(msg)
    return got


def _by_seq(messages: list[Any]) -> dict[int, np.ndarray]:
    return {
        m["seq"] + i: np.asarray(row, dtype=np.float64)
        for m in messages
        for i, row in enumerate(m["data"])
    }


def _slots(read: Read) -> tuple[int, np.ndarray]:
    """The first sample's conversion index, and which rows are real samples (not gap fill)."""
    real = ~is_gap(read.uv)
    first_row = int(np.argmax(real))
    first = round(read.uv[first_row, 0] / LSB_UV) - first_row
    return first, real


def _check_time_axis(read: Read, end_row: int) -> tuple[int, list[tuple[int, int]]]:
    """Every real sample sits at its conversion's row; returns the first index and the gaps."""
    first, real = _slots(read)
    rows = np.flatnonzero(real[:end_row])
    assert np.max(np.abs(read.uv[rows, 0] - (first + rows) * LSB_UV)) <= LSB_UV
    gaps = []
    missing = np.flatnonzero(~real[:end_row])
    if len(missing):
        for run in np.split(missing, np.where(np.diff(missing) != 1)[0] + 1):
            gaps.append((int(run[0]), len(run)))
    return first, gaps


def test_a_recording_reads_back_with_values_names_gaps_and_stops(
    recording_daemon: tuple[Daemon, Path],
) -> None:
    d, data = recording_daemon
    stub = _stub(d)
    got = asyncio.run(_collect(d.ws_url, ("eeg_voltage", "eeg_filtered"), max(DROPPED) + 300))
    stopped = stub.StopPipeline(pb.StopPipelineRequest(name="record"), timeout=30)
    finals = {r.stage: r for r in stopped.recordings}
    assert set(finals) == {"raw", "filtered"}
    assert not any(r.active or r.last_error for r in finals.values()), finals
    paths = {stage: data / r.file for stage, r in finals.items()}
    for path in paths.values():
        assert path.parent.name == "record" and path.suffix == ".bdf"
        assert read_header(path).n_records >= 0  # finalised by the stop

    for reader in (read_mne, read_pyedflib):
        raw, filtered = reader(paths["raw"]), reader(paths["filtered"])
        for read in (raw, filtered):
            assert read.channels == NAMES
            assert read.sample_rate == 250.0
            assert onsets(read, "recording start") == [0.0]
        [stop] = onsets(raw, "recording stop")
        end_row = round(stop * 250)
        assert is_gap(raw.uv[end_row:]).all()  # the last record's padding, after the stop

        # Every real sample sits at its conversion's row: the time axis is true.
        first, gaps = _check_time_axis(raw, end_row)
        # Each gap is annotated where it starts, with its length, and nothing else is.
        annotated = sorted(
            (round(o * 250), int(t.split()[1]))
            for o, _, t in raw.annotations
            if t.startswith("gap:")
        )
        assert annotated == gaps
        lost_rows = {r + i for r, n in gaps for i in range(n)}
        assert {k - first for k in DROPPED if k >= first} <= lost_rows
        # Both files hold what WebSocket subscribers got, sample by sample (within one LSB).
        assert _compare(raw, first, _by_seq(got["eeg_voltage"]), end_row) > 250
        assert _compare(filtered, first, _by_seq(got["eeg_filtered"]), end_row) > 250


def _compare(read: Read, first: int, received: dict[int, np.ndarray], end_row: int) -> int:
    """Rows of the file against the topic's samples of the same seq; how many were compared."""
    real = ~is_gap(read.uv)
    compared = 0
    for row in range(end_row):
        ws_row = received.get(first + row)
        if ws_row is not None and real[row]:
            assert np.max(np.abs(read.uv[row] - ws_row)) <= LSB_UV, row
            compared += 1
    return compared


def test_sigkill_leaves_a_file_readable_up_to_the_last_second(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    pipelines = _pipelines(tmp_path, "record")
    d = start_daemon("--config", str(cfg), pipelines=pipelines, autostart=("record",))
    try:
        stub = _stub(d)

        def recorded() -> Any:
            raw = _recordings(stub).get("raw")
            return raw if raw is not None and raw.duration_s >= 3.0 else None

        before = _wait("three seconds of recording", recorded)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
    finally:
        _kill(d)
    path = tmp_path / "data" / before.file
    assert read_header(path).n_records == -1  # never finalised
    read = read_mne(path)
    # Whole records reach the file as they fill: at most the last second is missing.
    n = len(read.uv)
    assert n >= (before.duration_s - 1.0) * 250
    _, gaps = _check_time_axis(read, n)  # contiguous: every sample at its own slot
    gap_texts = [(o, t) for o, _, t in read.annotations if t.startswith("gap:")]
    assert sorted((round(o * 250), int(t.split()[1])) for o, t in gap_texts) == gaps

    # The next start repairs the header, so readers that need the count open it too.
    d = start_daemon("--config", str(cfg), pipelines=pipelines, autostart=())
    try:
        d.wait_for_line(r"was not finalised \(unclean stop\): repaired")
    finally:
        _kill(d)
    assert read_header(path).n_records == n // 250
    repaired = read_pyedflib(path)
    assert np.max(np.abs(repaired.uv - read.uv)) <= LSB_UV
    assert onsets(repaired, RECOVERED) == [pytest.approx(n / 250)]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 96 KiB filesystem (tmpfs with a size limit) that the recording fills in seconds."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited filesystem needs root (CI runs as root)")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def _stream_while(url: str, done: Any) -> list[Any]:
    """eeg_voltage messages until ``done()`` says so, then one more second of them."""
    messages: list[Any] = []
    async with websockets.connect(url, max_size=2**24) as ws:
        await ws.send(json.dumps({"subscribe": "eeg_voltage"}))
        end_seq: int | None = None
        while end_seq is None or messages[-1]["seq"] < end_seq:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            if "topic" not in msg:
                continue
            messages.append(msg)
            if end_seq is None and await asyncio.to_thread(done):
                end_seq = msg["seq"] + 250
    return messages


def test_a_full_disk_ends_the_recording_cleanly_and_streaming_goes_on(
    tmp_path: Path, small_fs: Path
) -> None:
    cfg = tmp_path / "eegpi.yaml"
    device = {"backend": "mock", "emulator": {"stamp_index": True}}
    cfg.write_text(yaml.safe_dump({"device": device, "data_dir": str(small_fs)}))
    pipelines = _pipelines(tmp_path, "record")
    d = start_daemon("--config", str(cfg), pipelines=pipelines, autostart=("record",))
    try:
        stub = _stub(d)

        def both_failed() -> bool:
            recs = _recordings(stub)
            return all("disk full" in r.last_error for r in recs.values())

        messages = asyncio.run(_stream_while(d.ws_url, both_failed))
        status = stub.GetStatus(pb.GetStatusRequest(name="record"), timeout=10).pipelines[0]
    finally:
        _kill(d)
    assert status.state == pb.PIPELINE_STATE_RUNNING and not status.last_error
    for rec in status.recordings:
        assert not rec.active
        assert rec.last_error.startswith(f"disk full writing {rec.file}: recording stopped")
        path = small_fs / rec.file
        info = read_header(path)
        assert info.n_records >= 1  # finalised, whole records only
        assert path.stat().st_size == info.header_size + info.n_records * info.record_size
        read = read_mne(path)
        assert read.channels == NAMES
    # The subscriber kept receiving after both recorders gave up (a second of samples at least).
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(seqs) and seqs[-1] - seqs[0] >= 250
    raw = read_mne(small_fs / next(r.file for r in status.recordings if r.stage == "raw"))
    _check_time_axis(raw, len(raw.uv) - int(is_gap(raw.uv[::-1]).argmin()))


def test_sigterm_finalises_every_file(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    d = start_daemon(
        "--config", str(cfg), pipelines=_pipelines(tmp_path, "record"), autostart=("record",)
    )
    try:
        stub = _stub(d)

        def recorded() -> Any:
            recs = _recordings(stub)
            return recs if recs and all(r.duration_s >= 2.0 for r in recs.values()) else None

        recs = _wait("two seconds in both files", recorded)
        assert d.terminate() == 0
    finally:
        _kill(d)
    for rec in recs.values():
        path = tmp_path / "data" / rec.file
        assert read_header(path).n_records >= 2
        read = read_pyedflib(path)  # EDFlib refuses a file without the count
        assert read.channels == NAMES
        assert len(onsets(read, "recording stop")) == 1
