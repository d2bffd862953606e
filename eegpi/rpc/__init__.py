"""The gRPC control API: servicers over the ControlPlane, bearer-token auth, the aio server."""

from __future__ import annotations

from eegpi.rpc.server import GrpcServer, start_grpc_server

__all__ = ["GrpcServer", "start_grpc_server"]
