"""The daemon announces itself with mDNS/DNS-SD so that ``eegpi discover`` finds it.

Two services under one instance name (the hostname unless ``discovery.name`` says otherwise):
``_eegpi._tcp`` on the gRPC port and ``_http._tcp`` on the viewer's port. Their TXT records
carry the version, the channels and sample rate of the running acquisition, the WebSocket path
and whether a token is needed; they are refreshed as pipelines start and stop.

Each service is announced only where its server can be reached: a wildcard listen address on
every non-loopback IPv4 interface (with those addresses), a LAN address on that interface, a
loopback address on loopback alone (programs on the same machine find it, the LAN hears
nothing). IPv6-only listen addresses are not announced. Interfaces are looked at again every
few seconds, so a Pi whose network comes up after the daemon is announced once it does.

Announcing is best effort: a failure (port 5353 taken, no multicast route) is logged once and
never stops the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eegpi.daemon.config import AppConfig, split_hostport
from eegpi.daemon.interfaces import ipv4_addresses, is_loopback_host, is_wildcard_host
from eegpi.exc import ConfigError
from eegpi.status import PipelineState, PipelineStatus

if TYPE_CHECKING:
    from zeroconf import ServiceInfo
    from zeroconf.asyncio import AsyncZeroconf

__all__ = [
    "GRPC_SERVICE",
    "HTTP_SERVICE",
    "WS_PATH",
    "Advertiser",
    "Service",
    "announced_addresses",
    "plan",
    "start_advertiser",
    "txt_properties",
]

log = logging.getLogger("eegpi.discovery")

GRPC_SERVICE = "_eegpi._tcp.local."
HTTP_SERVICE = "_http._tcp.local."
WS_PATH = "/ws/data"
TXT_VERSION = "1"
_POLL_S = 2.0
"""How often interfaces and pipeline states are looked at again."""
_CLOSE_TIMEOUT_S = 2.0
"""Goodbye packets at shutdown are worth waiting for this long, no longer."""
_MAX_RUNNING_TXT = 200
"""A TXT string holds 255 bytes; the list of running pipelines is cut to fit."""


def announced_addresses(listen_host: str, interfaces: Callable[[], list[str]]) -> tuple[str, ...]:
    """IPv4 addresses a server listening on ``listen_host`` is reached at; () = not announced.

    ``interfaces`` lists the host's non-loopback IPv4 addresses (called only when needed).
    """
    if is_wildcard_host(listen_host):
        return tuple(interfaces())
    if listen_host in ("localhost", "127.0.0.1"):
        return ("127.0.0.1",)
    if is_loopback_host(listen_host):
        # 127.0.0.2 or ::1: an announcement over 127.0.0.1 would name an address it does not
        # listen on
        return (listen_host,) if listen_host.startswith("127.") else ()
    if listen_host in interfaces():
        return (listen_host,)
    return ()  # IPv6, a name, or an address not (yet) on this host


def txt_properties(
    statuses: Sequence[PipelineStatus],
    *,
    version: str,
    token_required: bool,
    ports: Mapping[str, int],
) -> dict[str, str]:
    """The TXT record: what a client needs before it connects, and what the appliance does."""
    running = [s for s in statuses if s.state is PipelineState.RUNNING]
    device = next((s.device for s in running if s.device is not None), None)
    names = ",".join(s.name for s in running)
    if len(names) > _MAX_RUNNING_TXT:
        names = names[:_MAX_RUNNING_TXT].rsplit(",", 1)[0] + ",..."
    if running:
        state = "running"
    elif any(s.state is PipelineState.FAILED for s in statuses):
        state = "failed"
    else:
        state = "idle"
    props = {
        "txtvers": TXT_VERSION,
        "version": version,
        "state": state,
        "running": names,
        "channels": str(device.channels if device else 0),
        "rate": str(device.sample_rate if device else 0),
        "token": "yes" if token_required else "no",
        "ws_path": WS_PATH,
        "path": "/",
    }
    props.update({f"{name}_port": str(port) for name, port in ports.items()})
    return props


@dataclass(frozen=True)
class Service:
    """One DNS-SD service to announce, and where."""

    type_: str
    port: int
    addresses: tuple[str, ...]
    ports: tuple[tuple[str, int], ...]
    """Ports of the other servers reached at the same addresses (told in the TXT record)."""


def plan(
    grpc_listen: tuple[str, int],
    ws_listen: tuple[str, int],
    interfaces: Callable[[], list[str]],
) -> tuple[Service, ...]:
    """The services to announce for these listen addresses: each only where it is reached."""
    cache: list[list[str]] = []

    def listed() -> list[str]:
        if not cache:
            cache.append(interfaces())
        return cache[0]

    grpc_at = announced_addresses(grpc_listen[0], listed)
    ws_at = announced_addresses(ws_listen[0], listed)

    def within(here: tuple[str, ...], there: tuple[str, ...]) -> bool:
        return bool(here) and set(here) <= set(there)

    services = []
    if grpc_at:
        ports = (("ws", ws_listen[1]),) if within(grpc_at, ws_at) else ()
        services.append(Service(GRPC_SERVICE, grpc_listen[1], grpc_at, ports))
    if ws_at:
        ports = (("grpc", grpc_listen[1]),) if within(ws_at, grpc_at) else ()
        services.append(Service(HTTP_SERVICE, ws_listen[1], ws_at, ports))
    return tuple(services)


class Advertiser:
    """Keeps the daemon's services announced until :meth:`close`."""

    def __init__(
        self,
        *,
        name: str,
        grpc_listen: tuple[str, int],
        ws_listen: tuple[str, int],
        token_required: bool,
        status: Callable[[], Sequence[PipelineStatus]],
        interfaces: Callable[[], list[str]] = ipv4_addresses,
        poll_s: float = _POLL_S,
    ) -> None:
        from eegpi import __version__

        self.name = name
        self._grpc = grpc_listen
        self._ws = ws_listen
        self._token_required = token_required
        self._status = status
        self._interfaces = interfaces
        self._poll_s = poll_s
        self._version = __version__
        self._task: asyncio.Task[None] | None = None
        self._zeroconfs: dict[tuple[str, ...], AsyncZeroconf] = {}
        self._infos: dict[str, ServiceInfo] = {}
        self._services: tuple[Service, ...] = ()
        """What is announced now."""
        self._planned: tuple[Service, ...] | None = None
        """What was last meant to be announced (None: not looked yet)."""
        self._properties: dict[str, dict[str, str]] = {}
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mdns-advertiser")

    async def close(self) -> None:
        """Withdraw the announcements (goodbye packets, bounded in time) and stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._withdraw()

    async def _run(self) -> None:
        zeroconf = await asyncio.to_thread(importlib.import_module, "zeroconf")
        while True:
            try:
                await self._refresh(zeroconf)
            except Exception as exc:  # announcing is best effort: never stop the daemon
                if not self._failing:
                    log.warning(
                        "not announced on the network (mDNS): %s; the daemon serves on, "
                        "clients need its address (discovery.enabled: false stops trying)",
                        str(exc) or type(exc).__name__,
                    )
                self._failing = True
                await self._withdraw()
            await asyncio.sleep(self._poll_s)  # a periodic look, not a synchronisation

    async def _refresh(self, zeroconf: Any) -> None:
        services = plan(self._grpc, self._ws, self._interfaces)
        statuses = self._status()
        properties = {
            s.type_: txt_properties(
                statuses,
                version=self._version,
                token_required=self._token_required,
                ports={("grpc" if s.type_ == GRPC_SERVICE else "ws"): s.port, **dict(s.ports)},
            )
            for s in services
        }
        if services != self._services or self._planned is None:
            await self._withdraw()
            if services:
                await self._announce(zeroconf, services, properties)
                where = sorted({a for s in services for a in s.addresses})
                log.info("announced as %r on %s (mDNS)", self.name, ", ".join(where))
            elif services != self._planned:
                log.info(
                    "not announced on the network (mDNS): no IPv4 address to announce for "
                    "gRPC on %s or WebSocket on %s (yet)",
                    self._grpc[0] or "*",
                    self._ws[0] or "*",
                )
            self._services = self._planned = services
        elif properties != self._properties:
            for service in services:
                await self._update(zeroconf, service, properties[service.type_])
        self._properties = properties
        if self._failing and services:
            log.info("announced on the network (mDNS) again")
        self._failing = False

    def _info(self, zeroconf: Any, service: Service, props: dict[str, str]) -> ServiceInfo:
        known = self._infos.get(service.type_)
        instance = known.name if known is not None else f"{self.name}.{service.type_}"
        info: ServiceInfo = zeroconf.ServiceInfo(
            service.type_,
            instance,
            port=service.port,
            addresses=[socket.inet_aton(a) for a in service.addresses],
            properties=props,
            server=f"{_label(socket.gethostname())}.local.",
        )
        return info

    async def _announce(
        self, zeroconf: Any, services: tuple[Service, ...], properties: dict[str, dict[str, str]]
    ) -> None:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncZeroconf

        for service in services:
            zc = self._zeroconfs.get(service.addresses)
            if zc is None:
                zc = AsyncZeroconf(interfaces=list(service.addresses), ip_version=IPVersion.V4Only)
                self._zeroconfs[service.addresses] = zc
            info = self._info(zeroconf, service, properties[service.type_])
            # a second appliance of the same name becomes "name (2)" rather than a conflict
            await (await zc.async_register_service(info, allow_name_change=True))
            self._infos[service.type_] = info

    async def _update(self, zeroconf: Any, service: Service, props: dict[str, str]) -> None:
        zc = self._zeroconfs.get(service.addresses)
        if zc is None or service.type_ not in self._infos:
            return
        info = self._info(zeroconf, service, props)
        await (await zc.async_update_service(info))
        self._infos[service.type_] = info

    async def _withdraw(self) -> None:
        zeroconfs = list(self._zeroconfs.values())
        self._zeroconfs.clear()
        self._infos.clear()
        self._services = ()
        self._properties = {}
        if not zeroconfs:
            return

        async def close(zc: AsyncZeroconf) -> None:
            try:
                await asyncio.wait_for(zc.async_close(), _CLOSE_TIMEOUT_S)
            except Exception as exc:
                log.debug("mDNS: closing: %s", exc)

        await asyncio.gather(*(close(zc) for zc in zeroconfs))


class _Disabled:
    """What ``start_advertiser`` returns when nothing is announced."""

    async def close(self) -> None:
        return None


def start_advertiser(
    cfg: AppConfig,
    *,
    grpc_port: int,
    ws_port: int,
    token_required: bool,
    status: Callable[[], Sequence[PipelineStatus]],
) -> Advertiser | _Disabled:
    """Start announcing the daemon in the background, as ``cfg.discovery`` says; never raises."""
    if not cfg.discovery.enabled:
        log.info("not announced on the network (mDNS): discovery.enabled is false")
        return _Disabled()
    try:
        grpc_host, _ = split_hostport(cfg.grpc.listen, "grpc.listen")
        ws_host, _ = split_hostport(cfg.websocket.listen, "websocket.listen")
        advertiser = Advertiser(
            name=cfg.discovery.name or socket.gethostname(),
            grpc_listen=(grpc_host, grpc_port),
            ws_listen=(ws_host, ws_port),
            token_required=token_required,
            status=status,
        )
        advertiser.start()
    except (ConfigError, OSError, RuntimeError) as exc:
        log.warning("not announced on the network (mDNS): %s", exc)
        return _Disabled()
    return advertiser


def _label(hostname: str) -> str:
    """The first label of the hostname, fit for ``<label>.local.``."""
    label = hostname.split(".", 1)[0].strip() or "eegpi"
    return label[:63]
