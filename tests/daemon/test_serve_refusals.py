"""`eegpi serve` refuses unsafe or impossible setups with a clear message and a non-zero exit."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def _serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "eegpi",
            "serve",
            "--mock",
            "--ws",
            "127.0.0.1:0",
            "--pipelines",
            str(REPO / "pipelines"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_lan_grpc_without_token_is_refused() -> None:
    res = _serve("--grpc", "0.0.0.0:0")
    assert res.returncode != 0
    assert "refusing to listen on 0.0.0.0:0 without auth" in res.stderr


def test_lan_grpc_with_insecure_config_is_allowed_to_bind(tmp_path: Path) -> None:
    # the explicit opt-out is honoured: the refusal message must not appear; the port clash
    # below makes the daemon exit instead of serving forever
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = tmp_path / "eegpi.yaml"
        cfg.write_text("grpc: {insecure: true}\n")
        res = _serve("--config", str(cfg), "--grpc", f"0.0.0.0:{port}")
    assert res.returncode != 0
    assert "refusing" not in res.stderr
    assert "cannot listen for gRPC" in res.stderr


def test_bad_config_file_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "eegpi.yaml"
    cfg.write_text("devise: {}\n")
    res = _serve("--config", str(cfg))
    assert res.returncode == 2
    assert "unknown key(s) devise" in res.stderr


def test_autostart_of_unknown_pipeline_is_a_configuration_error() -> None:
    # READY would promise a pipeline that cannot run: refuse at once, exit 2 (no restart loop)
    res = _serve("--grpc", "127.0.0.1:0", "--autostart", "nope")
    assert res.returncode == 2, res.stderr
    assert "autostart names 'nope', not among the pipelines loaded from" in res.stderr
    shipped = ", ".join(sorted(p.stem for p in (REPO / "pipelines").glob("*.yaml")))
    assert f"({shipped})" in res.stderr
    assert "Traceback" not in res.stderr


def test_websocket_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        # the later --ws wins over the helper's port 0
        res = _serve("--grpc", "127.0.0.1:0", "--ws", f"127.0.0.1:{port}")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == [
        f"ERROR eegpi.daemon: cannot listen for WebSocket on 127.0.0.1:{port}: the port is in "
        "use (another eegpi running? change --ws or websocket.listen)"
    ], res.stderr
