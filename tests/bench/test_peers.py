"""bench.peers: pieeg-server measured like eegpi when it is installed, a clear skip when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import peers
from bench.tree import measure


def test_without_pieeg_server_it_says_how_to_install_and_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(peers, "PIEEG_VENV", tmp_path / "nothing")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert peers.main(["--clients", "0", "--seconds", "1", "--repeat", "1"]) == []
    out = capsys.readouterr().out
    assert "pieeg-server is not installed; skipped" in out
    assert "python -m bench.peers --install" in out


@pytest.mark.skipif(peers.find_pieeg() is None, reason="pieeg-server is not installed")
def test_pieeg_server_is_measured_like_eegpi() -> None:
    exe = peers.find_pieeg()
    assert exe is not None
    r = measure(peers.PieegServer(exe), clients=2, seconds=1.0, warmup=0.2)
    assert "daemon" in r.labels.values()
    assert r.report["clients"] == 2 and r.report["messages"] > 0
    assert r.report["samples"] == r.report["messages"]  # one sample per message
    assert r.first_data_s > 0
