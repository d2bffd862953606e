"""Fixtures for the rpc tests: the real aio server over FakeControlPlane, and grpcurl."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from eegpi.rpc.server import GrpcServer, start_grpc_server
from tests.rpc.grpcurl_tool import TOKEN
from tests.rpc.rpc_fakes import FakeControlPlane


@pytest.fixture
def control() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
async def server(control: FakeControlPlane) -> AsyncIterator[GrpcServer]:
    srv = await start_grpc_server(control, "127.0.0.1:0")
    try:
        yield srv
    finally:
        await srv.stop(grace=0)


@pytest.fixture
async def token_server(control: FakeControlPlane) -> AsyncIterator[GrpcServer]:
    srv = await start_grpc_server(control, "127.0.0.1:0", token=TOKEN)
    try:
        yield srv
    finally:
        await srv.stop(grace=0)
