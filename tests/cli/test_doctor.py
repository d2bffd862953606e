"""`eegpi doctor`: the real command on this machine and against a real daemon, and each check's
reading of the files and tools it looks at (laid out under a temporary root)."""

from __future__ import annotations

import glob
import grp
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eegpi.cli.doctor_check import Check
from eegpi.cli.doctor_daemon import acquisition_verdict
from eegpi.cli.doctor_host import (
    GROUPS,
    check_clock,
    check_governor,
    check_gpio,
    check_groups,
    check_power,
    check_spi,
    decode_throttled,
    spi_enabled_in,
)
from eegpi.daemon.config import load_config
from eegpi.hardware.config import DeviceConfig
from eegpi.status import DeviceInfo
from tests.conftest import Daemon

ENABLE_SPI = "enable SPI: dtparam=spi=on in /boot/firmware/config.txt, reboot"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(tmp: Path, text: str = "", *, grpc: str = "") -> Path:
    """A config on free ports, so no daemon of the machine is asked by mistake."""
    path = tmp / f"eegpi-{len(list(tmp.iterdir()))}.yaml"
    path.write_text(
        f"grpc:\n  listen: 127.0.0.1:{_free_port()}\n{grpc}"
        f"websocket:\n  listen: 127.0.0.1:{_free_port()}\n{text}"
    )
    return path


def _doctor(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "eegpi", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("EEGPI_")},
    )
    assert not done.stderr.strip() or "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in report["checks"]}


@pytest.mark.skipif(bool(glob.glob("/dev/spidev*")), reason="this machine has SPI")
def test_a_machine_without_spi_is_told_how_to_enable_it(tmp_path: Path) -> None:
    code, out = _doctor("--json", "--config", str(_config(tmp_path)))
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    spi = _by_name(report)["spi"]
    assert spi["status"] == "fail"
    assert "no /dev/spidev0.0" in spi["detail"]
    boot_old = Path("/boot/config.txt").is_file() and not Path("/boot/firmware").is_dir()
    if not boot_old:
        assert spi["fix"] == ENABLE_SPI
    assert _by_name(report)["chip"]["status"] == "skip"  # nothing to ask, and it says so
    code, table = _doctor("--config", str(_config(tmp_path)))
    assert code == 1
    lines = table.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("FAIL  spi "))
    assert lines[at + 1].strip() == f"fix: {spi['fix']}"
    assert "failed" in lines[-1]


@pytest.fixture
def token_daemon(tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    from tests.conftest import start_daemon

    token = tmp_path / "token"
    token.write_text("doctor-token\n")
    token.chmod(0o600)
    d = start_daemon("--token-file", str(token))
    try:
        yield d, token
    finally:
        d.kill()


def test_doctor_finds_the_running_daemon_and_asks_it_for_the_chip(
    daemon: Daemon, tmp_path: Path
) -> None:
    cfg = _config(tmp_path)
    code, out = _doctor("--json", "--mock", "--config", str(cfg))
    report = _by_name(json.loads(out))
    assert report["daemon"]["status"] == "warn"  # nothing on the config's free port
    configured = load_config(cfg).grpc.listen
    assert report["daemon"]["detail"] == f"no eegpi answers at {configured}"
    assert report["ports"]["status"] == "ok"
    assert report["chip"]["detail"].endswith("mock emulator")  # probed the emulator itself
    code, out = _doctor(
        "--json", "--mock", "--config", str(_config(tmp_path)), "--grpc", daemon.grpc_target
    )
    result = json.loads(out)
    report = _by_name(result)
    assert report["daemon"] == {
        "name": "daemon",
        "status": "ok",
        "detail": f"eegpi at {daemon.grpc_target} is SERVING",
        "fix": "",
    }
    assert report["ports"]["status"] == "ok"
    assert report["chip"]["status"] == "ok"
    assert "held by default" in report["chip"]["detail"]  # asked the daemon, not the device
    # how the daemon's acquisition is served, as its own status reports it
    acquisition = report["acquisition"]
    assert acquisition["detail"].startswith("default: python reader at "), acquisition
    if os.geteuid() == 0:  # root: SCHED_FIFO and the memory lock are granted
        assert acquisition["status"] == "ok", acquisition
        assert acquisition["detail"].endswith("SCHED_FIFO priority, memory locked")
    for name in ("spi", "spi access", "gpio", "drdy line"):
        assert report[name]["status"] == "skip"
    assert code == (1 if result["failed"] else 0)
    assert result["failed"] == sum(c["status"] == "fail" for c in result["checks"])


def test_doctor_reads_the_token_from_the_config(
    token_daemon: tuple[Daemon, Path], tmp_path: Path
) -> None:
    d, token = token_daemon
    bare = _config(tmp_path)
    code, out = _doctor("--json", "--mock", "--config", str(bare), "--grpc", d.grpc_target)
    daemon = _by_name(json.loads(out))["daemon"]
    assert (daemon["status"], code) == ("fail", 1)
    assert "wants a token" in daemon["detail"]
    with_token = _config(tmp_path, grpc=f"  token_file: {token}\n")
    code, out = _doctor("--json", "--mock", "--config", str(with_token), "--grpc", d.grpc_target)
    assert _by_name(json.loads(out))["daemon"]["status"] == "ok"


def test_a_port_held_by_another_program_is_named_with_the_fix(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cfg = tmp_path / "eegpi.yaml"
        cfg.write_text(
            f"grpc:\n  listen: 127.0.0.1:{port}\nwebsocket:\n  listen: 127.0.0.1:{_free_port()}\n"
        )
        code, out = _doctor("--json", "--mock", "--config", str(cfg))
    report = _by_name(json.loads(out))
    assert report["daemon"]["status"] == "warn"
    assert report["ports"]["status"] == "fail"
    assert "in use by another program" in report["ports"]["detail"]
    assert f"sport = :{port}" in report["ports"]["fix"]
    assert code == 1


def test_a_bad_config_fails_with_the_readers_message(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "discovery:\n  enable: false\n")
    code, out = _doctor("--json", "--mock", "--config", str(cfg))
    config = _by_name(json.loads(out))["config"]
    assert config["status"] == "fail"
    assert "unknown key(s) enable in discovery" in config["detail"]
    assert code == 1


# -- each check on a laid-out root ----------------------------------------------------------------


def test_spi_enabled_but_not_rebooted(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "boot/firmware").mkdir(parents=True)
    (tmp_path / "boot/firmware/config.txt").write_text("[all]\ndtparam=i2c_arm=on,spi=on\n")
    spi, access = check_spi(DeviceConfig(), root=tmp_path)
    assert spi.status == "fail" and spi.fix.startswith("reboot")
    assert access.status == "skip"


def test_an_older_image_is_told_its_own_boot_file(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/config.txt").write_text("#dtparam=spi=on\n")
    spi, _ = check_spi(DeviceConfig(), root=tmp_path)
    assert spi.fix == "enable SPI: dtparam=spi=on in /boot/config.txt, reboot"


def test_spi_on_another_bus_and_present(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/spidev1.0").touch()
    spi, _ = check_spi(DeviceConfig(), root=tmp_path)
    assert spi.status == "fail" and "/dev/spidev1.0" in spi.detail
    spi, access = check_spi(DeviceConfig(spi_bus=1), root=tmp_path)
    assert spi.status == "ok"
    assert access.status == ("ok" if os.access(tmp_path / "dev/spidev1.0", os.W_OK) else "fail")


def test_spi_enabled_in_reads_config_txt_lines() -> None:
    assert spi_enabled_in("dtparam=spi=on\n")
    assert spi_enabled_in("dtparam=audio=on,spi=on  # comment\n")
    assert not spi_enabled_in("#dtparam=spi=on\n")
    assert not spi_enabled_in("dtparam=spi=off\n")
    assert not spi_enabled_in("dtoverlay=spi1-1cs\n")


def _gpio_root(tmp_path: Path) -> Path:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/gpiochip0").touch()
    return tmp_path


@pytest.mark.parametrize(
    ("used", "consumer", "daemon_running", "status"),
    [
        (False, "", False, "ok"),
        (True, "eegpi-drdy", True, "ok"),
        (True, "eegpi-drdy", False, "warn"),
        (True, "spi0 CS1", False, "fail"),
    ],
)
def test_the_drdy_line(
    tmp_path: Path, used: bool, consumer: str, daemon_running: bool, status: str
) -> None:
    _, drdy = check_gpio(
        DeviceConfig(),
        daemon_running=daemon_running,
        root=_gpio_root(tmp_path),
        line_info=lambda cfg: ("/dev/gpiochip0", used, consumer),
    )
    assert drdy.status == status, drdy
    assert "GPIO26" in drdy.detail
    assert (drdy.fix != "") == (status != "ok")


def test_no_gpiochip_fails(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    gpio, drdy = check_gpio(DeviceConfig(), daemon_running=False, root=tmp_path)
    assert (gpio.status, drdy.status) == ("fail", "skip")


def test_throttled_bits_are_decoded() -> None:
    assert decode_throttled(0x50005) == [
        "under-voltage now",
        "throttled now",
        "under-voltage since boot",
        "throttled since boot",
    ]
    assert decode_throttled(0) == []


def _tool(answers: dict[str, str | None]) -> Any:
    def run(*argv: str, timeout: float = 5.0) -> str | None:
        return answers.get(argv[0])

    return run


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ("throttled=0x0\n", "ok"),
        ("throttled=0x50000\n", "warn"),
        ("throttled=0x50005\n", "fail"),
        (None, "skip"),
    ],
)
def test_power(answer: str | None, status: str) -> None:
    check: Check = check_power(_tool({"vcgencmd": answer}))
    assert check.status == status
    if status in ("warn", "fail"):
        assert "supply" in check.fix


@pytest.mark.parametrize(
    ("answers", "status"),
    [
        ({"timedatectl": "yes\n"}, "ok"),
        ({"timedatectl": "no\n"}, "warn"),
        ({"chronyc": "Reference ID : 1\nLeap status     : Normal\n"}, "ok"),
        ({"chronyc": "Leap status     : Not synchronised\n"}, "warn"),
        ({}, "skip"),
    ],
)
def test_clock(answers: dict[str, str | None], status: str) -> None:
    check = check_clock(_tool(answers))
    assert check.status == status
    if status == "warn":
        assert "set-ntp true" in check.fix


@pytest.mark.parametrize(
    ("governor", "status"),
    [("performance", "ok"), ("ondemand", "ok"), ("powersave", "warn"), (None, "skip")],
)
def test_cpu_governor(tmp_path: Path, governor: str | None, status: str) -> None:
    folder = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
    folder.mkdir(parents=True)
    if governor is not None:
        (folder / "scaling_governor").write_text(governor + "\n")
    check = check_governor(root=tmp_path)
    assert check.status == status
    if status == "warn":
        assert "performance" in check.fix


def test_the_service_user_and_its_groups() -> None:
    missing = {c.name: c for c in check_groups(service_user="no-such-user-eegpi")}
    assert missing["service user"].status == "warn"
    assert "217/USER" in missing["service user"].detail
    assert "systemd-sysusers" in missing["service user"].fix
    present = {c.name: c for c in check_groups(service_user="root")}["service user"]
    assert present.status == "ok"  # the unit adds spi and gpio itself
    has_both = all(g in {g.gr_name for g in grp.getgrall() if "root" in g.gr_mem} for g in GROUPS)
    assert ("not in" in present.detail) is not has_both


def _device(scheduling: str, locked: bool, acquisition: str = "process") -> DeviceInfo:
    return DeviceInfo(
        "pi",
        "/dev/spidev0.0",
        "ADS1299",
        0x3E,
        1,
        8,
        250,
        "native",
        scheduling,
        locked,
        acquisition,
    )


def test_an_acquisition_that_cannot_keep_its_deadline_is_told_what_to_set() -> None:
    ok = acquisition_verdict("default", _device("SCHED_FIFO", True))
    assert ok == Check(
        "acquisition", "ok", "default: native reader at SCHED_FIFO priority, memory locked"
    )
    assert acquisition_verdict("default", _device("nice", True)).status == "ok"
    worst = acquisition_verdict("default", _device("normal", False))
    assert worst.status == "warn"
    assert worst.detail == (
        "default: native reader at normal priority, memory not locked: work beside it or "
        "memory pressure can cost conversions"
    )
    assert "LimitRTPRIO=50" in worst.fix and "rtprio 50" in worst.fix
    assert "LimitMEMLOCK=infinity" in worst.fix and "ulimit -l unlimited" in worst.fix
    unlocked = acquisition_verdict("default", _device("SCHED_FIFO", False))
    assert unlocked.status == "warn" and "rtprio" not in unlocked.fix
    assert "LimitMEMLOCK=infinity" in unlocked.fix
    # a reader in the daemon's thread is never locked, whatever the limit: the fix is the mode
    in_thread = acquisition_verdict("default", _device("SCHED_FIFO", False, "thread"))
    assert in_thread.status == "warn" and "LimitMEMLOCK" not in in_thread.fix
    assert "device.acquisition: process" in in_thread.fix
