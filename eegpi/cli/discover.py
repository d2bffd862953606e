"""``eegpi discover``: the appliances announcing themselves with mDNS, and whether they answer.

Listens for ``_eegpi._tcp`` and ``_http._tcp`` announcements for ``--timeout`` seconds (default
3) on every
IPv4 interface (loopback included, so a daemon that listens on 127.0.0.1 is found from the same
machine), then asks each appliance's gRPC health service how it is.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from eegpi.cli.errors import EXIT_FAILED, EXIT_OK, CliError
from eegpi.cli.output import print_json, table
from eegpi.daemon.discovery import GRPC_SERVICE, HTTP_SERVICE
from eegpi.daemon.interfaces import ipv4_addresses

__all__ = ["Appliance", "browse", "cmd_discover"]

DEFAULT_LISTEN_S = 3.0
"""mDNS responders answer a query within about a second; three leave room for a busy LAN."""
_RESOLVE_S = 1.5
_HEALTH_S = 5.0


@dataclass
class Appliance:
    """One daemon, as its announcements and its health service describe it."""

    name: str
    host: str = ""
    addresses: list[str] = field(default_factory=list)
    grpc_port: int | None = None
    ws_port: int | None = None
    viewer: str = ""
    version: str = ""
    state: str = ""
    running: list[str] = field(default_factory=list)
    channels: int = 0
    sample_rate: int = 0
    token_required: bool = False
    health: str = ""
    """SERVING, NOT_SERVING, "token needed", "unreachable", or empty when not asked."""

    @property
    def grpc_target(self) -> str:
        return f"{self.addresses[0]}:{self.grpc_port}" if self.addresses and self.grpc_port else ""


def _instance(name: str, type_: str) -> str:
    return name[: -len(type_) - 1] if name.endswith("." + type_) else name


def _merge(found: dict[str, Appliance], type_: str, info: Any) -> None:
    props = {
        (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): (
            v.decode("utf-8", "replace") if isinstance(v, bytes) else ""
        )
        for k, v in (info.properties or {}).items()
    }
    name = _instance(info.name, type_)
    app = found.setdefault(name, Appliance(name))
    app.host = str(info.server or "").rstrip(".")
    for address in info.parsed_addresses():
        if address not in app.addresses:
            app.addresses.append(address)
    app.version = props.get("version", app.version)
    app.state = props.get("state", app.state)
    app.running = [n for n in props.get("running", "").split(",") if n] or app.running
    app.channels = _int(props.get("channels")) or app.channels
    app.sample_rate = _int(props.get("rate")) or app.sample_rate
    app.token_required = app.token_required or props.get("token") == "yes"
    if type_ == GRPC_SERVICE:
        app.grpc_port = info.port
        app.ws_port = _int(props.get("ws_port")) or app.ws_port
    else:
        app.ws_port = info.port
        app.grpc_port = app.grpc_port or _int(props.get("grpc_port"))
    if app.addresses and app.ws_port and props.get("path") and type_ == HTTP_SERVICE:
        app.viewer = f"http://{app.addresses[0]}:{app.ws_port}{props['path']}"


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


async def browse(listen_s: float, interfaces: list[str]) -> list[Appliance]:
    """Listen for announcements for ``listen_s`` seconds; the appliances heard, by name."""
    from zeroconf import IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    aiozc = AsyncZeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only)
    infos: dict[tuple[str, str], AsyncServiceInfo] = {}
    pending: set[asyncio.Task[None]] = set()

    async def resolve(type_: str, name: str) -> None:
        info = AsyncServiceInfo(type_, name)
        if await info.async_request(aiozc.zeroconf, int(_RESOLVE_S * 1000)):
            infos[(type_, name)] = info

    def on_change(
        zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            infos.pop((service_type, name), None)
            return
        task = asyncio.get_running_loop().create_task(resolve(service_type, name))
        pending.add(task)
        task.add_done_callback(pending.discard)

    browser = AsyncServiceBrowser(
        aiozc.zeroconf, [GRPC_SERVICE, HTTP_SERVICE], handlers=[on_change]
    )
    try:
        await asyncio.sleep(listen_s)  # the listening window the user asked for
        if pending:
            await asyncio.wait(list(pending), timeout=_RESOLVE_S)
    finally:
        await browser.async_cancel()
        await aiozc.async_close()
        for task in pending:
            task.cancel()
    found: dict[str, Appliance] = {}
    for (type_, _), info in sorted(infos.items(), key=lambda kv: kv[0][0]):
        _merge(found, type_, info)
    return [found[name] for name in sorted(found)]


def check_health(app: Appliance, token: str | None) -> str:
    """The appliance's overall gRPC health, or why it could not be asked."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from eegpi.rpc.auth import bearer_metadata

    if not app.grpc_target:
        return ""
    with grpc.insecure_channel(app.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=_HEALTH_S,
                metadata=bearer_metadata(token) if token else (),
            )
        except grpc.RpcError as err:
            if err.code() is grpc.StatusCode.UNAUTHENTICATED:
                return "token needed"
            return "unreachable"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def cmd_discover(args: argparse.Namespace) -> int:
    listen_s = args.timeout if "timeout" in getattr(args, "given", ()) else DEFAULT_LISTEN_S
    interfaces = list(args.interface or ())
    if not interfaces:
        try:
            interfaces = ipv4_addresses(loopback=True)
        except OSError as exc:
            raise CliError(f"cannot list the network interfaces: {exc}", EXIT_FAILED) from None
    for address in interfaces:
        try:
            socket.inet_aton(address)
        except OSError:
            raise CliError(f"--interface {address!r} is not an IPv4 address", 2) from None
    try:
        appliances = asyncio.run(browse(listen_s, interfaces))
    except OSError as exc:
        raise CliError(
            f"cannot listen for mDNS on {', '.join(interfaces)}: {exc} "
            "(is UDP port 5353 blocked, or the interface gone?)",
            EXIT_FAILED,
        ) from None
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for app, health in zip(
            appliances, pool.map(lambda a: check_health(a, args.token), appliances), strict=True
        ):
            app.health = health
    if args.json:
        print_json([asdict(a) for a in appliances])
        return EXIT_OK
    if not appliances:
        print(
            f"no eegpi appliance answered within {listen_s:g} s on {', '.join(interfaces)} "
            "(--timeout to listen longer; a daemon listening on 127.0.0.1 is found only from "
            "its own machine)"
        )
        return EXIT_OK
    rows = [
        (
            a.name,
            ", ".join(a.addresses) or "-",
            a.grpc_port or "-",
            a.ws_port or "-",
            a.version or "-",
            a.channels or "-",
            a.sample_rate or "-",
            "yes" if a.token_required else "no",
            a.health or "-",
            ",".join(a.running) or a.state or "-",
        )
        for a in appliances
    ]
    headers = ("NAME", "ADDRESS", "GRPC", "WS", "VERSION", "CH", "SPS", "TOKEN", "HEALTH")
    print(table((*headers, "RUNNING"), rows))
    return EXIT_OK
