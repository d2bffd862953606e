"""The unit's companions make it work on a fresh image, and ship where the unit says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from eegpi.install_files import FILES
from eegpi.pipeline.stages.source import _EMULATOR_NICE
from tests.conftest import REPO, VENV_BIN

SYSTEMD = REPO / "systemd"
UNIT = SYSTEMD / "eegpi.service"
ROLE = REPO / "ansible" / "roles" / "eegpi"


def _unit_values(key: str) -> list[str]:
    return [
        line.split("=", 1)[1].strip()
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_sysusers_creates_the_identity_the_unit_runs_as(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    conf = SYSTEMD / "eegpi.sysusers"
    first = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(conf)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Creating user 'eegpi'" in first.stdout + first.stderr
    users = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").open()}
    groups = {
        line.split(":")[0]: line.strip().split(":") for line in (tmp_path / "etc/group").open()
    }
    (user,) = _unit_values("User")
    (group,) = _unit_values("Group")
    assert user in users and users[user][6].strip() == "/usr/sbin/nologin"
    assert group in groups
    for supplementary in _unit_values("SupplementaryGroups")[0].split():
        assert supplementary in groups
        assert user in groups[supplementary][3].split(","), "operators' tools see the groups"
    again = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(conf)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Creating" not in again.stdout + again.stderr


def test_udev_rules_give_the_devices_to_the_unit_groups() -> None:
    rules = [
        line
        for line in (SYSTEMD / "60-eegpi.rules").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    wanted = {'KERNEL=="spidev*"': "spi", 'KERNEL=="gpiochip*"': "gpio"}
    groups = set(_unit_values("SupplementaryGroups")[0].split())
    for match, group in wanted.items():
        (rule,) = [r for r in rules if match in r]
        assert f'GROUP="{group}"' in rule and 'MODE="0660"' in rule
        assert group in groups


def test_limit_nice_grants_the_priority_the_emulator_asks_for() -> None:
    (limit,) = _unit_values("LimitNICE")
    assert limit.startswith(("-", "+")), "a signed value is a nice level, unsigned is raw"
    assert int(limit) <= _EMULATOR_NICE


def test_documentation_and_companions_ship_in_the_wheel(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("eegpi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for item in FILES:
        assert f"eegpi/systemd/{item.source}" in names
    # pip installs <name>.data/data/X under the venv's prefix: /opt/eegpi/X for the unit
    docs = [d for d in _unit_values("Documentation") if d.startswith("file:///opt/eegpi/")]
    assert docs
    for url in docs:
        inside = url.removeprefix("file:///opt/eegpi/")
        assert any(re.fullmatch(rf"eegpi-[^/]+\.data/data/{re.escape(inside)}", n) for n in names)


def test_install_files_installs_each_file_once(tmp_path: Path) -> None:
    eegpi = str(VENV_BIN / "eegpi")

    def install(*extra: str) -> str:
        res = subprocess.run(
            [eegpi, "install-files", "--prefix", str(tmp_path), *extra],
            capture_output=True,
            text=True,
            check=True,
        )
        return res.stdout

    assert install("--dry-run").count("would install") == len(FILES)
    assert not list(tmp_path.iterdir())
    assert install().count("installed:") == len(FILES)
    for item in FILES:
        assert (tmp_path / item.target.lstrip("/")).is_file()
    unit = (tmp_path / "etc/systemd/system/eegpi.service").read_text()
    assert f"ExecStart={eegpi} serve" in unit, "the unit runs the eegpi it was installed with"
    assert install().count("unchanged:") == len(FILES)


def test_the_role_installs_the_files_where_install_files_does() -> None:
    copies = {}
    for name in ("identity.yml", "service.yml"):
        for task in yaml.safe_load((ROLE / "tasks" / name).read_text()):
            copy = task.get("ansible.builtin.copy")
            if copy and "src" in copy:
                copies[Path(copy["src"]).name] = copy["dest"]
    assert {item.source: item.target for item in FILES} == copies


def test_the_unit_runs_the_venv_the_role_installs() -> None:
    prefix = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["eegpi_prefix"]
    (exec_start,) = _unit_values("ExecStart")
    assert exec_start.startswith(f"{prefix}/bin/eegpi ")
