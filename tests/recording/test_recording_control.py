"""Recording control on a real daemon: grpcurl's Start/Stop/ListRecordings, the CLI, HTTP download.

The daemon requires a token, so every door is checked with and without it.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from eegpi.recording.catalog import read_header
from tests.conftest import VENV_BIN, Daemon, start_daemon
from tests.recording.helpers import read_mne
from tests.recording.test_recording_e2e import _wait

TOKEN = "recording-token-1234"
GRPCURL = str(VENV_BIN / "grpcurl")
PC = "eegpi.v1.PipelineControl"
RECORDINGS = ("recordings", "--json")
MANUAL = """
name: manual
stages:
  - {name: acquire, type: ads1299_source, params: {sample_rate: 250, gain: 24}}
  - {name: to_voltage, type: to_voltage, inputs: [acquire]}
  - {name: sink, type: websocket_sink, params: {topic: eeg_voltage}, inputs: [to_voltage]}
  - {name: raw, type: recorder, params: {autostart: false, subject: S01}, inputs: [acquire]}
"""


@pytest.fixture
def manual(tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "manual.yaml").write_text(MANUAL)
    cfg = tmp_path / "eegpi.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "device": {"backend": "mock"},
                "data_dir": str(tmp_path / "data"),
                "grpc": {"token": TOKEN},
            }
        )
    )
    d = start_daemon("--config", str(cfg), pipelines=pipelines, autostart=("manual",))
    try:
        yield d, tmp_path / "data"
    finally:
        d.kill()


def _grpcurl(d: Daemon, method: str, data: str = "{}", token: bool = True) -> Any:
    auth = ["-H", f"authorization: Bearer {TOKEN}"] if token else []
    cmd = [GRPCURL, "-plaintext", "-max-time", "20", *auth, "-d", data, d.grpc_target]
    return subprocess.run([*cmd, f"{PC}/{method}"], capture_output=True, text=True, timeout=60)


def _ok(d: Daemon, method: str, data: str = "{}") -> Any:
    r = _grpcurl(d, method, data)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _cli(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "eegpi", "--grpc", d.grpc_target, "--token", TOKEN, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _get(d: Daemon, path: str, **headers: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", d.ws_port, timeout=30)
    conn.request("GET", path, headers=headers)
    return conn.getresponse()


def test_start_stop_list_download(manual: tuple[Daemon, Path]) -> None:
    d, data = manual
    assert _ok(d, "ListRecordings").get("recordings", []) == []
    assert _grpcurl(d, "ListRecordings", token=False).returncode != 0  # the token is required

    started = _ok(d, "StartRecording", '{"pipeline": "manual"}')["recordings"]
    assert [r["stage"] for r in started] == ["raw"] and started[0]["active"]
    name = started[0]["file"]
    assert name.startswith("manual/") and name.endswith("-raw.bdf")

    def long_enough() -> bool:
        status = _ok(d, "GetStatus", '{"name": "manual"}')["pipelines"][0]
        return status["recordings"][0].get("duration_s", 0) >= 2.0

    _wait("two seconds of recording", long_enough)
    stopped = _ok(d, "StopRecording", '{"pipeline": "manual", "stage": "raw"}')["recordings"][0]
    assert not stopped.get("active", False) and stopped["file"] == name
    assert read_header(data / name).n_records >= 2

    # The pipeline runs on; a second recording is a second file.
    again = _ok(d, "StartRecording", '{"pipeline": "manual"}')["recordings"][0]
    assert again["active"] and again["file"] != name

    cli = _cli(d, *RECORDINGS)
    assert cli.returncode == 0, cli.stderr
    listed = {r["name"]: r for r in json.loads(cli.stdout)}
    assert listed[name]["complete"] is True and listed[name]["duration_s"] >= 2.0
    assert listed[again["file"]]["complete"] is False  # still being written
    shown = _cli(d, "status", "manual")
    assert f"manual/raw: recording {again['file']}" in shown.stdout, shown.stdout
    ended = _cli(d, "record", "stop", "manual")
    assert ended.returncode == 0 and f"manual/raw: not recording {again['file']}" in ended.stdout

    # Download from the web port: the same bytes, behind the same token and Origin rules.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert _get(d, f"/recordings/{name}").status == 401
    evil = _get(d, f"/recordings/{name}", Origin="http://evil.example", **auth)
    assert evil.status == 403
    reply = _get(d, f"/recordings/{name}", **auth)
    assert reply.status == 200
    assert reply.read() == (data / name).read_bytes()
    part = _get(d, f"/recordings/{name}", Range="bytes=0-255", **auth)
    assert part.status == 206 and part.read() == (data / name).read_bytes()[:256]
    index = json.loads(_get(d, "/recordings/", **auth).read())
    assert {r["name"] for r in index["recordings"]} == set(listed)
    assert _get(d, "/recordings/../eegpi.yaml", **auth).status == 400
    assert _get(d, "/recordings/manual/nope.bdf", **auth).status == 404
    assert read_mne(data / name).channels[0] == "ch1"


def test_refusals_name_the_problem(manual: tuple[Daemon, Path]) -> None:
    d, _ = manual
    r = _grpcurl(d, "StartRecording", '{"pipeline": "manual", "stage": "nope"}')
    assert r.returncode != 0 and "NotFound" in r.stderr and "recorders: raw" in r.stderr
    r = _grpcurl(d, "StartRecording", '{"pipeline": "absent"}')
    assert r.returncode != 0 and "NotFound" in r.stderr
    assert _ok(d, "StopPipeline", '{"name": "manual"}')
    r = _grpcurl(d, "StartRecording", '{"pipeline": "manual"}')
    assert r.returncode != 0 and "FailedPrecondition" in r.stderr and "eegpi start" in r.stderr
