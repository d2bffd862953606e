"""mDNS/DNS-SD: a real daemon found by a real zeroconf browser on loopback, and `eegpi discover`.

A daemon that listens on 127.0.0.1 announces itself on loopback only, which is what lets these
tests find it without a LAN. Each daemon gets a unique instance name, so other daemons on the
machine (announcing the hostname) never match.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from eegpi.daemon.config import ConfigError, DiscoveryConfig, load_config
from eegpi.daemon.discovery import (
    GRPC_SERVICE,
    HTTP_SERVICE,
    Advertiser,
    announced_addresses,
    plan,
    txt_properties,
)
from eegpi.status import DeviceInfo, PipelineState, PipelineStatus
from tests.conftest import REPO, Daemon, start_daemon

WAIT_S = 60.0


def _config(tmp: Path, text: str) -> Path:
    path = tmp / f"eegpi-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text)
    return path


def _unique_name() -> str:
    return f"eegpi-test-{uuid.uuid4().hex[:10]}"


def _text(props: dict[Any, Any]) -> dict[str, str]:
    return {k.decode(): (v or b"").decode() for k, v in props.items()}


class LoopbackBrowser:
    """A zeroconf browser on 127.0.0.1 that reports what happens to one instance name."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.events: asyncio.Queue[tuple[str, ServiceStateChange]] = asyncio.Queue()

    async def __aenter__(self) -> LoopbackBrowser:
        self.aiozc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)

        def on_change(
            zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
        ) -> None:
            if name == f"{self.instance}.{service_type}":
                self.events.put_nowait((service_type, state_change))

        self.browser = AsyncServiceBrowser(
            self.aiozc.zeroconf, [GRPC_SERVICE, HTTP_SERVICE], handlers=[on_change]
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.browser.async_cancel()
        await self.aiozc.async_close()

    async def resolve(self, type_: str) -> AsyncServiceInfo:
        info = AsyncServiceInfo(type_, f"{self.instance}.{type_}")
        assert await info.async_request(self.aiozc.zeroconf, 5000), f"{type_} did not resolve"
        return info

    async def wait_for(self, change: ServiceStateChange, *types: str) -> None:
        """Until every type in ``types`` saw ``change``."""
        left = set(types)
        while left:
            type_, seen = await self.events.get()
            if seen is change:
                left.discard(type_)


@pytest.fixture(scope="module")
def announced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str, Path]]:
    """A daemon with a token, a unique instance name and the default pipeline running."""
    tmp = tmp_path_factory.mktemp("discovery")
    token = tmp / "token"
    token.write_text("s3cret-discovery-token\n")
    token.chmod(0o600)
    name = _unique_name()
    cfg = _config(tmp, f"discovery:\n  name: {name}\n")
    d = start_daemon("--config", str(cfg), "--token-file", str(token))
    try:
        d.wait_for_line(rf"announced as '{name}' on 127\.0\.0\.1 \(mDNS\)", timeout=WAIT_S)
        yield d, name, token
    finally:
        d.kill()


async def test_a_zeroconf_browser_on_loopback_finds_both_services_and_their_txt(
    announced: tuple[Daemon, str, Path],
) -> None:
    d, name, _ = announced
    async with LoopbackBrowser(name) as b:
        await asyncio.wait_for(b.wait_for(ServiceStateChange.Added, GRPC_SERVICE), WAIT_S)
        grpc = await b.resolve(GRPC_SERVICE)
        # the first announcement may predate the autostart pipeline: its TXT is then refreshed
        while _text(grpc.properties)["state"] != "running":
            await asyncio.wait_for(b.wait_for(ServiceStateChange.Updated, GRPC_SERVICE), WAIT_S)
            grpc = await b.resolve(GRPC_SERVICE)
        http = await b.resolve(HTTP_SERVICE)
    assert grpc.port == d.grpc_port
    assert grpc.parsed_addresses() == ["127.0.0.1"]  # loopback listen: loopback address only
    txt = _text(grpc.properties)
    assert txt["version"] == "0.1.0"
    assert txt["channels"] == "8"
    assert txt["rate"] == "250"
    assert txt["token"] == "yes"
    assert txt["running"] == "default"
    assert txt["ws_path"] == "/ws/data"
    assert txt["ws_port"] == str(d.ws_port)
    assert http.port == d.ws_port
    assert http.parsed_addresses() == ["127.0.0.1"]
    http_txt = _text(http.properties)
    assert http_txt["path"] == "/"
    assert http_txt["grpc_port"] == str(d.grpc_port)
    assert http_txt["token"] == "yes"


def _discover(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "eegpi", "discover", "--json", "--interface", "127.0.0.1", *args],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def test_eegpi_discover_lists_the_appliance_with_its_status(
    announced: tuple[Daemon, str, Path],
) -> None:
    d, name, token = announced
    [mine] = [a for a in _discover("--timeout", "5") if a["name"] == name]
    assert mine["addresses"] == ["127.0.0.1"]
    assert mine["grpc_port"] == d.grpc_port
    assert mine["ws_port"] == d.ws_port
    assert mine["version"] == "0.1.0"
    assert mine["channels"] == 8
    assert mine["sample_rate"] == 250
    assert mine["token_required"] is True
    assert mine["health"] == "token needed"  # health was asked, and refused without the token
    assert mine["viewer"] == f"http://127.0.0.1:{d.ws_port}/"
    [mine] = [
        a for a in _discover("--timeout", "5", "--token-file", str(token)) if a["name"] == name
    ]
    assert mine["health"] == "SERVING"
    assert mine["running"] == ["default"]


async def test_a_stopping_daemon_says_goodbye(tmp_path: Path) -> None:
    name = _unique_name()
    cfg = _config(tmp_path, f"discovery:\n  name: {name}\n")
    async with LoopbackBrowser(name) as b:
        d = start_daemon("--config", str(cfg), autostart=())
        try:
            await asyncio.wait_for(
                b.wait_for(ServiceStateChange.Added, GRPC_SERVICE, HTTP_SERVICE), WAIT_S
            )
            idle = _text((await b.resolve(GRPC_SERVICE)).properties)
            assert (idle["state"], idle["channels"], idle["rate"]) == ("idle", "0", "0")
            assert idle["token"] == "no"
            assert d.terminate(timeout=WAIT_S) == 0
            await asyncio.wait_for(
                b.wait_for(ServiceStateChange.Removed, GRPC_SERVICE, HTTP_SERVICE), WAIT_S
            )
        finally:
            d.kill()


def test_discovery_off_on_request(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "discovery:\n  enabled: false\n")
    d = start_daemon("--config", str(cfg), autostart=())
    try:
        d.wait_for_line(r"not announced on the network \(mDNS\): discovery.enabled is false")
        assert d.terminate(timeout=WAIT_S) == 0
        assert not [line for line in d.lines if "announced as" in line]
    finally:
        d.kill()


# -- where each service is announced ------------------------------------------------------------


def _lan() -> list[str]:
    return ["192.168.1.20", "10.0.0.5"]


def test_announced_addresses_follow_the_listen_address() -> None:
    assert announced_addresses("0.0.0.0", _lan) == ("192.168.1.20", "10.0.0.5")
    assert announced_addresses("::", _lan) == ("192.168.1.20", "10.0.0.5")
    assert announced_addresses("127.0.0.1", _lan) == ("127.0.0.1",)
    assert announced_addresses("localhost", _lan) == ("127.0.0.1",)
    assert announced_addresses("10.0.0.5", _lan) == ("10.0.0.5",)
    # never announce what no one can reach: IPv6 loopback, a foreign address, a name
    assert announced_addresses("::1", _lan) == ()
    assert announced_addresses("10.9.9.9", _lan) == ()
    assert announced_addresses("pi.example", _lan) == ()
    assert announced_addresses("0.0.0.0", lambda: []) == ()  # network not up yet


def test_a_loopback_viewer_is_not_offered_to_the_lan() -> None:
    services = plan(("0.0.0.0", 50051), ("127.0.0.1", 9001), _lan)
    grpc, http = services
    assert (grpc.type_, grpc.addresses, grpc.ports) == (
        GRPC_SERVICE,
        ("192.168.1.20", "10.0.0.5"),
        (),
    )
    assert (http.type_, http.addresses, http.ports) == (HTTP_SERVICE, ("127.0.0.1",), ())
    both = plan(("0.0.0.0", 50051), ("0.0.0.0", 9001), _lan)
    assert [s.ports for s in both] == [(("ws", 9001),), (("grpc", 50051),)]


def test_txt_properties_say_what_runs() -> None:
    device = DeviceInfo("mock", "emulator", "ADS1299", 0x3E, 2, 16, 500)
    statuses = [
        PipelineStatus("a" * 150, PipelineState.RUNNING, device=device),
        PipelineStatus("b" * 150, PipelineState.RUNNING),
        PipelineStatus("c", PipelineState.FAILED),
    ]
    props = txt_properties(statuses, version="9.9", token_required=False, ports={"grpc": 1})
    assert (props["channels"], props["rate"], props["state"]) == ("16", "500", "running")
    assert props["running"] == "a" * 150 + ",..."  # a TXT string holds 255 bytes
    assert props["token"] == "no"
    assert props["grpc_port"] == "1"
    assert all(len(f"{k}={v}".encode()) <= 255 for k, v in props.items())
    failed = txt_properties(
        [PipelineStatus("c", PipelineState.FAILED)], version="9.9", token_required=True, ports={}
    )
    assert (failed["state"], failed["channels"], failed["token"]) == ("failed", "0", "yes")


async def test_a_failure_to_announce_is_logged_once_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    looks = 0
    third_look = asyncio.Event()

    def broken_interfaces() -> list[str]:
        nonlocal looks
        looks += 1
        if looks >= 3:
            third_look.set()
        raise OSError("no interfaces for you")

    advertiser = Advertiser(
        name=_unique_name(),
        grpc_listen=("0.0.0.0", 50051),
        ws_listen=("0.0.0.0", 9001),
        token_required=False,
        status=list,
        interfaces=broken_interfaces,
        poll_s=0.01,
    )
    with caplog.at_level(logging.INFO, logger="eegpi.discovery"):
        advertiser.start()
        await asyncio.wait_for(third_look.wait(), WAIT_S)
        await advertiser.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "no interfaces for you" in warnings[0].getMessage()


# -- config -------------------------------------------------------------------------------------


def test_the_shipped_example_config_shows_every_discovery_key() -> None:
    path = REPO / "systemd" / "eegpi.yaml"
    shown = yaml.safe_load(path.read_text())["discovery"]
    assert set(shown) == {f.name for f in dataclasses.fields(DiscoveryConfig)}
    assert load_config(path).discovery == DiscoveryConfig(enabled=True, name="")


def test_discovery_config_refuses_typos_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) enable in discovery"):
        load_config(_config(tmp_path, "discovery:\n  enable: false\n"))
    with pytest.raises(ConfigError, match=r"discovery.name: at most 63 bytes"):
        load_config(_config(tmp_path, f"discovery:\n  name: {'x' * 64}\n"))
    with pytest.raises(ConfigError, match=r"discovery.enabled: expected true or false"):
        load_config(_config(tmp_path, "discovery:\n  enabled: 'no'\n"))
