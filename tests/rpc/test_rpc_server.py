"""The server's own promises: binding rules, limits, streaming and shutdown."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2

from eegpi.exc import ConfigError
from eegpi.rpc.server import GrpcServer, is_loopback, start_grpc_server
from eegpi.rpc.servicer import ERROR_KIND_KEY
from eegpi.v1 import control_pb2 as pb
from eegpi.v1 import control_pb2_grpc
from tests.rpc.grpcurl_tool import TOKEN
from tests.rpc.rpc_fakes import FakeControlPlane


def stub(channel: grpc.aio.Channel) -> control_pb2_grpc.PipelineControlStub:
    return control_pb2_grpc.PipelineControlStub(channel)


async def test_refuses_lan_without_auth(control: FakeControlPlane) -> None:
    with pytest.raises(ConfigError) as err:
        await start_grpc_server(control, "0.0.0.0:50051")
    assert str(err.value).startswith("refusing to listen on 0.0.0.0:50051 without auth")
    assert "insecure: true" in str(err.value)
    with pytest.raises(ConfigError, match=r"refusing to listen on \[::\]:50051"):
        await start_grpc_server(control, "[::]:50051")


@pytest.mark.parametrize("kw", [{"insecure": True}, {"token": TOKEN}])
async def test_lan_allowed_with_token_or_insecure(control: FakeControlPlane, kw: dict) -> None:
    srv = await start_grpc_server(control, "0.0.0.0:0", **kw)
    try:
        assert srv.port > 0
    finally:
        await srv.stop(grace=0)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("eegpi.local")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:http", ":50051", "127.0.0.1:70000"])
async def test_malformed_address(control: FakeControlPlane, address: str) -> None:
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        await start_grpc_server(control, address)


async def test_port_in_use_is_a_clear_error(server: GrpcServer, control: FakeControlPlane) -> None:
    with pytest.raises(ConfigError, match=r"cannot listen for gRPC on 127\.0\.0\.1:\d+: the port"):
        await start_grpc_server(control, f"127.0.0.1:{server.port}")


async def test_errors_name_their_kind(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub(ch).StartPipeline(pb.StartPipelineRequest(name="nochip"), timeout=5)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE
    assert (ERROR_KIND_KEY, "HardwareError") in tuple(err.value.trailing_metadata() or ())


async def test_oversize_request_is_refused(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub(ch).StartPipeline(pb.StartPipelineRequest(name="x" * 100_000), timeout=5)
    assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_watch_follows_changes_until_cancelled(
    server: GrpcServer, control: FakeControlPlane
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        call = stub(ch).WatchStatus(pb.WatchStatusRequest(name="default"), timeout=10)
        updates = call.__aiter__()
        first = await updates.__anext__()
        assert (first.name, first.state) == ("default", pb.PIPELINE_STATE_STOPPED)
        await control.start("default")
        second = await updates.__anext__()
        assert second.state == pb.PIPELINE_STATE_RUNNING
        assert second.samples_acquired == 931_250
        await control.stop("default")
        assert (await updates.__anext__()).state == pb.PIPELINE_STATE_STOPPED
        call.cancel()
    await asyncio.wait_for(control.watch_closed.wait(), timeout=5)
    assert control.watchers == 0


async def test_watch_unknown_pipeline_is_not_found(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        call = stub(ch).WatchStatus(pb.WatchStatusRequest(name="nope"), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.__aiter__().__anext__()
    assert err.value.code() is grpc.StatusCode.NOT_FOUND


async def test_stop_reports_not_serving_and_closes(control: FakeControlPlane) -> None:
    srv = await start_grpc_server(control, "127.0.0.1:0")
    request = health_pb2.HealthCheckRequest(service="")
    assert (await srv.health.Check(request, None)).status == health_pb2.HealthCheckResponse.SERVING
    await srv.stop(grace=0.5)
    assert (
        await srv.health.Check(request, None)
    ).status == health_pb2.HealthCheckResponse.NOT_SERVING
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub(ch).GetStatus(pb.GetStatusRequest(), timeout=2)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE
