"""The playbook provisions a real systemd host, and systemd runs eegpi as designed.

A Debian bookworm image boots with systemd as PID 1 (tests/deploy/systemd_host.py); the
playbook reaches it over SSH, like a Pi on the lab network, with the emulated chip
(``device.backend: mock``). Everything is then checked from outside: systemctl, the real grpcurl
and a real WebSocket client. The tests run in file order on one host (``make test-deploy``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets

from tests.conftest import REPO, VENV_BIN
from tests.deploy.systemd_host import SystemdHost, free_port, missing_tools

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(900)]

ANSIBLE = REPO / "ansible"
GRPCURL = VENV_BIN / "grpcurl"
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.M,
)
WAIT_S = 120.0


@dataclass
class Run:
    rc: int
    output: str
    seconds: float

    def recap(self) -> dict[str, int]:
        m = RECAP.search(self.output)
        assert m is not None, self.output[-3000:]
        return {k: int(v) for k, v in m.groupdict().items() if k != "host"}


@dataclass
class Site:
    host: SystemdHost
    inventory: Path
    token: str
    grpc_port: int
    ws_port: int
    source: Path
    first: Run

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def playbook(self, *args: str) -> Run:
        env = dict(os.environ)
        env.update(
            ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        )
        started = time.monotonic()
        res = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), "site.yml", *args],
            cwd=ANSIBLE,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        return Run(res.returncode, res.stdout + res.stderr, time.monotonic() - started)

    def journal(self) -> str:
        """The daemon's last words, for failure messages."""
        return self.host.run("journalctl -u eegpi --no-pager -n 60 -o cat", check=False).stdout

    def grpcurl(self, method: str, data: str = "{}") -> dict[str, object]:
        res = subprocess.run(
            [
                str(GRPCURL),
                "-plaintext",
                "-max-time",
                "10",
                "-H",
                f"authorization: Bearer {self.token}",
                "-d",
                data,
                self.grpc,
                method,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        reply: dict[str, object] = json.loads(res.stdout)
        return reply

    def states(self) -> dict[str, str]:
        reply = self.grpcurl("eegpi.v1.PipelineControl/GetStatus")
        pipelines = reply.get("pipelines", [])
        assert isinstance(pipelines, list)
        return {p["name"]: p.get("state", "") for p in pipelines}

    def unit(self) -> dict[str, str]:
        props = "ActiveState,SubState,Result,MainPID,NRestarts,ExecMainStatus,StatusText"
        out = self.host.run(f"systemctl show eegpi.service -p {props}").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _until(what: str, check: object, timeout: float = WAIT_S) -> None:
    """Wait for a condition on the host (polled: systemd offers nothing to block on here)."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.2)  # polling a condition, not a synchronisation


def _snapshot(dest: Path) -> Path:
    """The checkout as it is now (tracked and new files): every run of the playbook builds the
    same wheel from it, whatever happens to the working tree meanwhile.

    ``EEGPI_DEPLOY_SOURCE=HEAD`` takes the last commit instead (a tree with work in progress).
    """
    if os.environ.get("EEGPI_DEPLOY_SOURCE") == "HEAD":
        dest.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", "HEAD"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return dest
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, names):
        src = REPO / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def _write_inventory(
    path: Path, host: SystemdHost, source: Path, token: str, grpc: int, ws: int
) -> None:
    inventory = {
        "eegpi": {
            "hosts": {
                "ci-host": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": host.ssh_port,
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(host.key),
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                    "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                }
            },
            "vars": {
                "eegpi_device_backend": "mock",
                # the native reader, compiled on the host, runs the daemon's acquisition
                "eegpi_native_reader": True,
                "eegpi_device": {"reader": "native"},
                # the container shares this machine's network: loopback ports of its own
                "eegpi_grpc_listen": f"127.0.0.1:{grpc}",
                "eegpi_websocket_listen": f"127.0.0.1:{ws}",
                "eegpi_token": token,
                # the test's venv has the build backend; no index round trip for it
                "eegpi_wheel_build_args": ["--no-build-isolation"],
                "eegpi_wheel_build_dir": str(path.parent / "dist"),
                "eegpi_source_dir": str(source),
            },
        }
    }
    path.write_text(json.dumps(inventory, indent=2))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if os.geteuid() != 0:
        pytest.skip("booting a systemd container needs root")
    missing = missing_tools()
    if missing or not GRPCURL.exists() or not (VENV_BIN / "ansible-playbook").exists():
        pytest.fail(
            f"missing {', '.join(missing) or 'grpcurl or ansible'}: "
            "run scripts/install-system-deps.sh --deploy and make test-deploy"
        )
    work = tmp_path_factory.mktemp("systemd-host")
    with SystemdHost(work) as host:
        token = secrets.token_hex(16)
        grpc, ws = free_port(), free_port()
        inventory = work / "hosts.json"
        source = _snapshot(work / "source")
        _write_inventory(inventory, host, source, token, grpc, ws)
        site = Site(host, inventory, token, grpc, ws, source, Run(0, "", 0.0))
        site.first = site.playbook()
        yield site
    assert not list(work.glob("rootfs/*")), "the image was not removed"


def test_the_playbook_provisions_a_fresh_host(site: Site) -> None:
    run = site.first
    assert run.rc == 0, run.output[-6000:] + site.journal()
    recap = run.recap()
    assert recap["failed"] == 0 and recap["changed"] > 0
    host = site.host
    assert host.run("systemctl is-active eegpi").stdout.strip() == "active"
    assert host.run("systemctl is-enabled eegpi").stdout.strip() == "enabled"
    # the sysusers.d file made the identity the unit names (217/USER, 216/GROUP otherwise)
    groups = host.run("id -nG eegpi").stdout.split()
    assert {"eegpi", "spi", "gpio"} <= set(groups)
    perms = host.run("stat -c '%a %U %G' /etc/eegpi/grpc-token /etc/eegpi/eegpi.yaml").stdout
    assert perms.split("\n")[:2] == ["640 root eegpi", "640 root eegpi"]
    # the daemon runs as eegpi and reads the token it needs
    user = host.run("ps -o user= -p $(systemctl show -p MainPID --value eegpi)").stdout
    assert user.strip() == "eegpi"
    # Documentation= names files that exist
    docs = host.run("systemctl show -p Documentation --value eegpi").stdout.split()
    assert docs, "the unit has no Documentation="
    for url in docs:
        if url.startswith("file://"):
            host.run(f"test -s {url.removeprefix('file://')}")
    assert "not a Raspberry Pi, SPI left alone" in " ".join(run.output.split())
    # The acquisition process locks its memory where the unit's LimitMEMLOCK=infinity is
    # granted; a container without CAP_SYS_RESOURCE clamps it, and the log says what to set.
    limit = host.run(
        "grep 'Max locked memory' /proc/$(systemctl show -p MainPID --value eegpi)/limits"
    ).stdout.split()
    journal = host.run("journalctl -u eegpi --no-pager -o cat").stdout
    if limit[3:5] == ["unlimited", "unlimited"]:
        assert "acquisition process memory locked in RAM" in journal, journal
    else:
        assert "LimitMEMLOCK=infinity" in journal, journal


def test_grpcurl_shows_the_default_pipeline_running(site: Site) -> None:
    assert site.states().get("default") == "PIPELINE_STATE_RUNNING"
    res = subprocess.run(
        [
            str(GRPCURL),
            "-plaintext",
            "-H",
            f"authorization: Bearer {site.token}",
            "-d",
            '{"service": ""}',
            site.grpc,
            "grpc.health.v1.Health/Check",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and '"SERVING"' in res.stdout, res.stdout + res.stderr


async def _first_filtered(url: str, token: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(url, additional_headers=headers, max_size=2**22) as ws:
        await ws.send(json.dumps({"subscribe": "eeg_filtered"}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if msg.get("topic") == "eeg_filtered":
                return msg  # type: ignore[no-any-return]


def test_a_websocket_client_receives_eeg_filtered(site: Site) -> None:
    msg = asyncio.run(_first_filtered(f"ws://127.0.0.1:{site.ws_port}/ws/data", site.token))
    data = msg["data"]
    assert isinstance(data, list) and data and len(data[0]) == 8


def test_a_second_run_changes_nothing(site: Site) -> None:
    run = site.playbook()
    assert run.rc == 0, run.output[-6000:] + site.journal()
    assert run.recap()["changed"] == 0, run.output[-6000:] + site.journal()


def test_check_diff_on_the_provisioned_host_reports_nothing(site: Site) -> None:
    run = site.playbook("--check", "--diff")
    assert run.rc == 0, run.output[-6000:] + site.journal()
    assert run.recap()["changed"] == 0, run.output[-6000:] + site.journal()


def test_the_pi_can_run_the_playbook_on_itself(site: Site) -> None:
    # the README's single-Pi path: a checkout and ansible-core on the Pi, `-c local`; on the
    # host provisioned over SSH it finds nothing to change (the release: the wheel it has)
    host = site.host
    shutil.copytree(site.source, host.root / "root/eegpi")
    host.run(
        "python3 -m venv /root/ansible && /root/ansible/bin/pip install -q ansible-core",
        timeout=300,
    )
    (wheel,) = (host.root / "opt/eegpi-wheels").glob("eegpi-*.whl")
    extra = {
        "eegpi_device_backend": "mock",
        "eegpi_grpc_listen": site.grpc,
        "eegpi_websocket_listen": f"127.0.0.1:{site.ws_port}",
        "eegpi_token": site.token,
        "eegpi_wheel": f"/opt/eegpi-wheels/{wheel.name}",
        "eegpi_native_reader": True,
        "eegpi_device": {"reader": "native"},
    }
    (host.root / "root/local.json").write_text(json.dumps(extra))
    res = host.run(
        "cd /root/eegpi && /root/ansible/bin/ansible-playbook -i ansible/inventory/single-pi.yml"
        " -c local ansible/site.yml -e @/root/local.json",
        check=False,
        timeout=600,
    )
    run = Run(res.returncode, res.stdout + res.stderr, 0.0)
    assert run.rc == 0, run.output[-6000:] + site.journal()
    assert run.recap()["changed"] == 0, run.output[-6000:]


def test_restart_comes_back_ready(site: Site) -> None:
    before = site.unit()["MainPID"]
    # Type=notify: restart returns once the new daemon said READY=1 (its autostart streams)
    site.host.run("systemctl restart eegpi", timeout=WAIT_S)
    after = site.unit()
    assert after["ActiveState"] == "active" and after["MainPID"] != before
    assert site.states().get("default") == "PIPELINE_STATE_RUNNING"


def test_reload_loads_a_new_pipeline_and_keeps_the_daemon(site: Site) -> None:
    pid = site.unit()["MainPID"]
    assert "reloaded" not in site.states()
    text = (REPO / "pipelines" / "spectrum.yaml").read_text()
    # the container's root is this directory: the file appears inside as it is written
    (site.host.root / "etc/eegpi/pipelines/reloaded.yaml").write_text(
        re.sub(r"^name: .*$", "name: reloaded", text, count=1, flags=re.M)
    )
    site.host.run("systemctl reload eegpi")
    _until("ListPipelines shows the new pipeline", lambda: "reloaded" in site.states())
    assert site.unit()["MainPID"] == pid and site.unit()["ActiveState"] == "active"
    assert site.states()["default"] == "PIPELINE_STATE_RUNNING"


def test_kill_9_of_the_daemon_is_restarted_by_systemd(site: Site) -> None:
    unit = site.unit()
    pid, restarts = unit["MainPID"], int(unit["NRestarts"])
    site.host.run(f"kill -9 {pid}")

    def back() -> bool:
        u = site.unit()
        return u["ActiveState"] == "active" and u["MainPID"] not in ("0", pid)

    _until("systemd restarted eegpi", back)
    assert int(site.unit()["NRestarts"]) == restarts + 1
    assert site.states().get("default") == "PIPELINE_STATE_RUNNING"


def test_a_chip_that_stops_answering_is_seen_by_systemd(site: Site, tmp_path: Path) -> None:
    # DRDY stops after 0.2 s of samples, in every run: the daemon gives up at the first
    # failure (max_attempts 1) and exits 1; systemd restarts it until the start limit, and the
    # unit ends failed, never "active" with a dead pipeline for good.
    fault = tmp_path / "fault.json"
    fault.write_text(
        json.dumps(
            {
                "eegpi_device": {"emulator": {"stuck_drdy_after": 50}},
                "eegpi_autostart_retry": {"max_attempts": 1, "stable_s": 600},
                "eegpi_wait_ready": False,
            }
        )
    )
    site.host.run("systemctl reset-failed eegpi")  # the start limit counts from here
    site.playbook("-e", f"@{fault}")  # a bad release: restarts the unit with the fault

    seen: list[dict[str, str]] = []

    def failed() -> bool:
        seen.append(site.unit())
        return seen[-1]["ActiveState"] == "failed"

    _until("the unit failed", failed, timeout=240)
    final = seen[-1]
    assert final["Result"] in ("start-limit-hit", "exit-code"), final
    assert final["ExecMainStatus"] == "1", final
    assert max(int(u["NRestarts"]) for u in seen) >= 1, seen
    journal = site.host.run("journalctl -u eegpi --no-pager -o cat").stdout
    assert "giving up: stopping with exit status 1" in journal

    # the fixed release brings it back, failed state and all
    run = site.playbook()
    assert run.rc == 0, run.output[-6000:] + site.journal()
    assert site.unit()["ActiveState"] == "active"
    assert site.states().get("default") == "PIPELINE_STATE_RUNNING"
