"""The server's own promises: binding rules, limits, streaming and shutdown."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2

from eegpi.exc import ConfigError
from eegpi.rpc.limits import (
    CONTROL_CALLS,
    HEALTH_CHECK_HEADROOM,
    HEALTH_WATCHES,
    REFLECTION_STREAMS,
    SERVER_LIMIT,
    WATCH_STREAMS,
)
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


async def test_out_of_range_counters_never_answer_unknown(
    server: GrpcServer, control: FakeControlPlane
) -> None:
    control._status["default"] = replace(
        control._status["default"], samples_acquired=-12, samples_dropped=2**65
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        (st,) = (await stub(ch).GetStatus(pb.GetStatusRequest(name="default"), timeout=5)).pipelines
        stopped = await stub(ch).StopPipeline(pb.StopPipelineRequest(name="default"), timeout=5)
    assert (st.samples_acquired, st.samples_dropped) == (0, 2**64 - 1)
    assert stopped.samples_acquired == 0


async def test_watch_streams_have_their_own_cap(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        calls = [
            stub(ch).WatchStatus(pb.WatchStatusRequest(name="default"), timeout=30)
            for _ in range(WATCH_STREAMS.limit)
        ]
        for call in calls:
            await call.read()  # the current status: the stream holds its slot
        extra = stub(ch).WatchStatus(pb.WatchStatusRequest(name="default"), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await extra.read()
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"too many WatchStatus streams ({WATCH_STREAMS.limit})" in (
            err.value.details() or ""
        )
        reply = await stub(ch).GetStatus(pb.GetStatusRequest(), timeout=5)
        assert len(reply.pipelines) == 4
        calls.pop().cancel()
        # the cancelled stream's slot comes back once the server has seen the cancel
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            again = stub(ch).WatchStatus(pb.WatchStatusRequest(name="default"), timeout=30)
            try:
                await again.read()
            except grpc.aio.AioRpcError as exc:
                assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                await asyncio.sleep(0)  # let the server run its side of the cancel
                continue
            calls.append(again)
            break
        assert len(calls) == WATCH_STREAMS.limit
        for call in calls:
            call.cancel()


async def test_the_server_limit_leaves_room_for_health_checks() -> None:
    assert (
        sum(cap.limit for cap in (WATCH_STREAMS, HEALTH_WATCHES, REFLECTION_STREAMS, CONTROL_CALLS))
        == SERVER_LIMIT - HEALTH_CHECK_HEADROOM
    )


@pytest.mark.parametrize(
    "method", ["/eegpi.v1.PipelineControl/GetStatus", "/grpc.health.v1.Health/Check"]
)
async def test_garbage_bytes_are_invalid_argument(server: GrpcServer, method: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        call = ch.unary_unary(method)  # no serializers: raw bytes go out as they are
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"\xff\xff\xff\xff\x0fgarbage", timeout=5)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in (err.value.details() or "")


async def test_a_huge_name_is_not_echoed(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub(ch).GetStatus(pb.GetStatusRequest(name="y" * 60_000), timeout=5)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == ("name is 60000 characters long; pipeline names have at most 128")
