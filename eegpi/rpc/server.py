"""The grpc.aio server: PipelineControl, Device, health and reflection on one port.

Reflection lets ``grpcurl -plaintext HOST:PORT list`` and ``describe`` work with no .proto file;
``eegpi/v1/eegpi.protoset`` is shipped too for tools that cannot use Python's v1alpha reflection.
"""

from __future__ import annotations

import ipaddress
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import SERVICE_NAME as HEALTH_SERVICE
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from eegpi.exc import ConfigError
from eegpi.rpc.auth import BearerTokenInterceptor
from eegpi.rpc.limits import SERVER_LIMIT, CallLimitInterceptor
from eegpi.rpc.malformed import MalformedRequestInterceptor
from eegpi.rpc.servicer import DeviceServicer, PipelineControlServicer
from eegpi.status import ControlPlane
from eegpi.v1 import control_pb2, control_pb2_grpc, device_pb2, device_pb2_grpc

__all__ = ["SERVICE_NAMES", "GrpcServer", "is_loopback", "start_grpc_server"]

log = logging.getLogger("eegpi.rpc")

PIPELINE_CONTROL = control_pb2.DESCRIPTOR.services_by_name["PipelineControl"].full_name
DEVICE = device_pb2.DESCRIPTOR.services_by_name["Device"].full_name
SERVICE_NAMES: tuple[str, ...] = (PIPELINE_CONTROL, DEVICE, HEALTH_SERVICE)
"""The services this server offers (reflection adds its own)."""

_OPTIONS: tuple[tuple[str, int], ...] = (
    # SO_REUSEPORT would let a second daemon bind the same port silently and steal clients.
    ("grpc.so_reuseport", 0),
    # Control messages are small; anything large is a mistake or an attack.
    ("grpc.max_receive_message_length", 64 * 1024),
    # Keep long WatchStatus streams alive across LAN idle timeouts; reap dead peers in ~40 s.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    # Abandoned CLI connections with no call in flight are closed after 5 minutes.
    ("grpc.max_connection_idle_ms", 300_000),
)


class GrpcServer:
    """A running gRPC server; ``stop`` it once."""

    def __init__(self, server: grpc.aio.Server, port: int, health: health_aio.HealthServicer):
        self._server = server
        self.port = port
        """The bound port (an address ending in ``:0`` picks a free one)."""
        self.health = health
        """The grpc.health.v1 servicer; overall ("") and per-service status."""

    async def set_serving(self, serving: bool) -> None:
        """Report every service (and the server as a whole) SERVING or NOT_SERVING."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", *SERVICE_NAMES):
            await self.health.set(service, status)

    async def stop(self, grace: float) -> None:
        """Health NOT_SERVING for good; refuse new calls; give calls in flight ``grace`` s."""
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP literal or name) is only reachable from this machine."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname we would have to resolve: treat it as reachable from the LAN


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(
            f"gRPC listen address {address!r} is not HOST:PORT "
            "(e.g. 127.0.0.1:50051, [::1]:50051 or 0.0.0.0:50051)"
        )
    return host, int(port_text)


async def start_grpc_server(
    control: ControlPlane, address: str, *, token: str | None = None, insecure: bool = False
) -> GrpcServer:
    """Bind ``address``, start serving ``control`` and report SERVING.

    Raises:
        ConfigError: malformed address, a non-loopback address with neither a token nor
            ``insecure=True``, or the address cannot be bound (in use, not on this host).
    """
    host, _ = _split_address(address)
    if not is_loopback(host) and not token:
        if not insecure:
            raise ConfigError(
                f"refusing to listen on {address} without auth: set a token "
                "(grpc.token or grpc.token_file in the config) or insecure: true"
            )
        log.warning(
            "gRPC listens on %s without auth (insecure: true): anyone who can reach it may "
            "start and stop pipelines",
            address,
        )

    # Outermost first: a caller without the token is refused before it takes a slot.
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if token:
        interceptors.append(BearerTokenInterceptor(token))
    interceptors += [CallLimitInterceptor(), MalformedRequestInterceptor()]
    server = grpc.aio.server(
        interceptors=interceptors,
        options=_OPTIONS,
        # Above the sum of the per-method caps, so Health/Check always finds a slot.
        maximum_concurrent_rpcs=SERVER_LIMIT,
    )
    # The generated *_pb2_grpc modules carry no annotations.
    add_control = control_pb2_grpc.add_PipelineControlServicer_to_server
    add_control(PipelineControlServicer(control), server)  # type: ignore[no-untyped-call]
    add_device = device_pb2_grpc.add_DeviceServicer_to_server
    add_device(DeviceServicer(control), server)  # type: ignore[no-untyped-call]
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, reflection.SERVICE_NAME), server)

    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(
            f"cannot listen for gRPC on {address}: the port is in use or the address is not on "
            "this host (another eegpi running? change --grpc or grpc.listen)"
        ) from exc
    if port == 0:  # older grpcio reports a failed bind this way
        raise ConfigError(f"cannot listen for gRPC on {address}: bind failed")
    await server.start()
    grpc_server = GrpcServer(server, port, health)
    await grpc_server.set_serving(True)
    log.info("gRPC listening on %s (port %d%s)", address, port, ", token required" if token else "")
    return grpc_server
