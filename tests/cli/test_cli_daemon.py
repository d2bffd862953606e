"""`eegpi` against `eegpi serve --mock --autostart default`: gRPC and WebSocket commands."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.cli_runner import run_eegpi
from tests.conftest import Daemon, start_daemon


def test_cli_against_the_daemon(daemon: Daemon) -> None:
    grpc = ("--grpc", daemon.grpc_target)
    ws = ("--ws", f"127.0.0.1:{daemon.ws_port}")

    r = run_eegpi("status", "default", *grpc)
    assert r.code == 0, r.err
    assert r.out.splitlines()[1].split()[:2] == ["default", "RUNNING"]

    r = run_eegpi("tail", "eeg_filtered", "--count", "3", *ws)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == 3 and all(line.startswith("seq=") for line in lines)
    assert "subscribed to eeg_filtered: 250" in r.err

    r = run_eegpi("tail", "eeg_filtered", "--count", "2", "--json", *ws)
    assert r.code == 0, r.err
    assert all('"topic": "eeg_filtered"' in line for line in r.out.splitlines())

    r = run_eegpi("tail", "bad topic!", "--count", "1", *ws)
    assert r.code == 1 and "is not a valid name" in r.err

    r = run_eegpi("topics", "--json", *grpc, *ws)
    assert r.code == 0, r.err
    topics = {t["name"]: t for t in json.loads(r.out)}
    assert topics["eeg_filtered"]["meta"]["units"] == "uV"

    r = run_eegpi("device", *grpc)
    assert r.code == 0, r.err
    assert "ADS1299" in r.out


def test_tail_and_topics_send_the_token_the_daemon_requires(tmp_path: Path) -> None:
    token = "s3cret-token-for-tail"
    config = tmp_path / "eegpi.yaml"
    config.write_text(f"grpc:\n  token: {token}\n")
    d = start_daemon("--config", str(config))
    try:
        grpc = ("--grpc", d.grpc_target)
        ws = ("--ws", f"127.0.0.1:{d.ws_port}")

        r = run_eegpi("tail", "eeg_voltage", "--count", "1", *ws)
        assert r.code == 1 and "requires the daemon's bearer token" in r.err, r.err

        r = run_eegpi("tail", "eeg_voltage", "--count", "2", *ws, env={"EEGPI_TOKEN": token})
        assert r.code == 0, r.err
        assert len(r.out.splitlines()) == 2

        r = run_eegpi("topics", "--json", *grpc, *ws, env={"EEGPI_TOKEN": token})
        assert r.code == 0, r.err
        topics = {t["name"]: t for t in json.loads(r.out)}
        assert topics["eeg_voltage"]["meta"]["units"] == "uV"
        assert token not in "\n".join(d.lines)
    finally:
        d.proc.kill()
        d.proc.wait()
