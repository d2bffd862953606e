"""`eegpi status|start|stop|pipelines|topics|device` against a real gRPC server."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.cli.cli_runner import TOKEN, FakeDaemon, run_eegpi


def test_status_table_lists_every_pipeline(fake: FakeDaemon) -> None:
    r = fake.run("status")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "STATE",
        "UPTIME",
        "ACQUIRED",
        "DROPPED",
        "TOPICS(SUBSCRIBERS)",
    ]
    assert [line.split()[0] for line in lines[1:5]] == ["alpha", "crash", "default", "nochip"]
    # Columns are aligned: every row starts its STATE where the header does.
    col = lines[0].index("STATE")
    assert all(line[col:].startswith("STOPPED") for line in lines[1:5])


def test_start_status_stop(fake: FakeDaemon) -> None:
    r = fake.run("start", "default")
    assert (r.code, r.out) == (0, "default: RUNNING\n"), r.err

    r = fake.run("status", "default")
    assert r.code == 0, r.err
    row = r.out.splitlines()[1].split()
    # The fake started 3725 s before the call; a busy host may take seconds to get there.
    assert row[:2] == ["default", "RUNNING"] and row[3:5] == ["931250", "3"]
    assert re.fullmatch(r"1h0[23]m\d\ds", row[2]), row[2]
    assert "eeg_filtered(1)" in r.out
    assert "ADS1299 x1 via mock (emulator), 8 channels at 250 SPS" in r.out
    assert "default: hardware markers: 12 trigger (1 lost), 4 GPIO" in r.out

    r = fake.run("status", "default", "--json")
    assert r.code == 0, r.err
    (status,) = r.json()
    assert status["state"] == "RUNNING"
    assert status["samples_acquired"] == 931250
    assert (status["trigger_markers"], status["trigger_lost"], status["gpio_markers"]) == (12, 1, 4)
    assert status["topics"] == [
        {"name": "eeg_voltage", "subscribers": 0},
        {"name": "eeg_filtered", "subscribers": 1},
    ]
    assert 3724 < status["uptime_s"] < 3800

    r = fake.run("--json", "stop", "default")
    assert r.code == 0, r.err
    assert r.json()["state"] == "STOPPED" and r.json()["uptime_s"] is None


def test_rpc_errors_are_one_line_and_exit_1(fake: FakeDaemon) -> None:
    r = fake.run("start", "nope")
    assert r.code == 1
    assert r.out == ""
    assert r.err == (
        "eegpi: no pipeline named 'nope'; known: alpha, crash, default, nochip (NOT_FOUND)\n"
    )
    assert fake.run("start", "default").code == 0
    r = fake.run("start", "alpha")
    assert r.code == 1
    assert "held by running pipeline 'default'" in r.err and "FAILED_PRECONDITION" in r.err
    assert "Traceback" not in r.err


def test_daemon_reported_unavailable_is_not_unreachable(fake: FakeDaemon) -> None:
    r = fake.run("start", "nochip")
    assert r.code == 1
    assert "no ADS1299 on /dev/spidev0.0" in r.err and "(UNAVAILABLE)" in r.err


def test_pipelines(fake: FakeDaemon) -> None:
    r = fake.run("pipelines")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].split() == ["NAME", "STATE", "STAGES", "TOPICS", "PATH"]
    assert "eeg_voltage, eeg_filtered" in r.out
    assert (
        "1 file(s) did not load:\n  pipelines/broken.yaml: stage 'f': unknown type 'fft'" in r.out
    )
    r = fake.run("pipelines", "--json")
    data = r.json()
    assert [p["name"] for p in data["pipelines"]] == ["alpha", "crash", "default", "nochip"]
    assert data["errors"][0]["path"] == "pipelines/broken.yaml"


def test_topics_without_websocket(fake: FakeDaemon) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        ws = f"127.0.0.1:{s.getsockname()[1]}"
        assert fake.run("start", "default").code == 0
        r = fake.run("topics", "--ws", ws, "--json")
        assert r.code == 0, r.err
        topics = {t["name"]: t for t in r.json()}
        assert topics["eeg_filtered"]["subscribers"] == 1
        assert topics["eeg_filtered"]["pipeline"] == "default"
        assert topics["alpha_power"]["state"] == "STOPPED"
        r = fake.run("topics", "--ws", ws)
        assert r.code == 0
        assert "eeg_filtered  default   RUNNING  1" in r.out
        assert f"WebSocket at {ws} not reachable" in r.err


def test_device(fake: FakeDaemon) -> None:
    r = fake.run("device")
    assert r.code == 0, r.err
    assert "ADS1299 (ID 0x3E, revision 0)" in r.out
    assert "0x01  CONFIG1  0x96   10010110" in r.out
    assert "ch3      yes     OFF  ok" in r.out
    r = fake.run("device", "--json")
    data = r.json()
    assert data["identity"]["held_by"] == ""
    assert data["registers"][0] == {"address": 0, "name": "ID", "value": 0x3E}
    assert data["lead_off"]["channels"][2]["p_off"] is True


def test_unreachable_daemon_exit_3() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{s.getsockname()[1]}"
        r = run_eegpi("--grpc", target, "status")
    assert r.code == 3
    assert r.err == (
        f"eegpi: cannot reach eegpi at {target}: is the daemon running? (systemctl status eegpi)\n"
    )


def test_address_from_environment(fake: FakeDaemon) -> None:
    r = run_eegpi("pipelines", "--json", env={"EEGPI_GRPC": fake.target})
    assert r.code == 0, r.err
    r = run_eegpi("status", env={"EEGPI_GRPC": "nonsense"})
    assert r.code == 2 and "EEGPI_GRPC" in r.err


def test_token(fake_with_token: FakeDaemon) -> None:
    r = fake_with_token.run("status")
    assert r.code == 1
    assert "requires a token" in r.err and "UNAUTHENTICATED" in r.err
    assert fake_with_token.run("status", "--token", TOKEN).code == 0
    r = run_eegpi("status", env={"EEGPI_GRPC": fake_with_token.target, "EEGPI_TOKEN": TOKEN})
    assert r.code == 0, r.err
    r = fake_with_token.run("status", "--token", "wrong")
    assert r.code == 1 and "invalid bearer token" in r.err


def test_token_from_a_file(fake_with_token: FakeDaemon, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    r = fake_with_token.run("status", "--token-file", str(token_file))
    assert r.code == 0, r.err
    # the file wins over the environment, which would be wrong here
    r = fake_with_token.run("status", "--token-file", str(token_file), env={"EEGPI_TOKEN": "no"})
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (None, (), "--token-file: cannot read"),
        ("\n", (), "holds no token"),
        (TOKEN, ("--token", TOKEN), "give --token or --token-file, not both"),
    ],
)
def test_token_file_problems_are_usage_errors(
    fake_with_token: FakeDaemon,
    tmp_path: Path,
    content: str | None,
    extra: tuple[str, ...],
    message: str,
) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    r = fake_with_token.run("status", "--token-file", str(token_file), *extra)
    assert r.code == 2 and message in r.err and r.out == "", r.err
    assert TOKEN not in r.err


def test_silent_peer_times_out_with_exit_3() -> None:
    # Accepts TCP connections (the kernel's backlog) but never speaks HTTP/2.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        target = f"127.0.0.1:{s.getsockname()[1]}"
        r = run_eegpi("--grpc", target, "--timeout", "0.5", "status")
    assert r.code == 3
    assert f"eegpi at {target} did not answer within 0.5 s" in r.err
