"""The shipped unit is valid for systemd and keeps its hardening."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "eegpi.service"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def _unit_with_existing_binary(tmp_path: Path) -> Path:
    # verify also checks that ExecStart exists; point it at a binary this machine has
    text = UNIT.read_text().replace("/opt/eegpi/bin/eegpi", "/bin/true")
    out = tmp_path / "eegpi.service"
    out.write_text(text)
    return out


def test_unit_verifies_clean(tmp_path: Path) -> None:
    unit = _unit_with_existing_binary(tmp_path)
    res = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in (res.stdout + res.stderr).splitlines()
        if "eegpi.service" in line and "network-online.target" not in line
    ]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr


def test_unit_exposure_at_most_2(tmp_path: Path) -> None:
    unit = _unit_with_existing_binary(tmp_path)
    res = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    m = re.search(r"Overall exposure level for eegpi.service: ([\d.]+)", res.stdout)
    assert m is not None, res.stdout + res.stderr
    assert float(m.group(1)) <= 2.0 and res.returncode == 0, res.stdout


def test_unit_declares_the_contract() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "SupplementaryGroups=spi gpio",
        "ProtectSystem=strict",
        "DeviceAllow=char-spi rw",
        "LimitRTPRIO=50",
        "LimitMEMLOCK=infinity",
    ):
        assert line in text
