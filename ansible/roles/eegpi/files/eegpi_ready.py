"""Exit 0 once eegpi's gRPC health says SERVING and the named pipelines are RUNNING.

Run by the Ansible role with the venv's Python after a start; prints what it saw last when it
gives up, so a failed rollout says why.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eegpi.v1 import control_pb2, control_pb2_grpc


def check(channel: grpc.Channel, metadata: list[tuple[str, str]], names: list[str]) -> str:
    """'' when ready, else what is missing."""
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), metadata=metadata, timeout=5)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"health: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    control = control_pb2_grpc.PipelineControlStub(channel)  # type: ignore[no-untyped-call]
    status = control.GetStatus(control_pb2.GetStatusRequest(), metadata=metadata, timeout=5)
    states = {p.name: control_pb2.PipelineState.Name(p.state) for p in status.pipelines}
    errors = {p.name: p.last_error for p in status.pipelines}
    waiting = [
        f"{n}: {states.get(n, 'not loaded')}" + (f" ({errors[n]})" if errors.get(n) else "")
        for n in names
        if states.get(n) != "PIPELINE_STATE_RUNNING"
    ]
    return "; ".join(waiting)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--token-file")
    parser.add_argument("--pipeline", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    metadata = []
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            metadata.append(("authorization", "Bearer " + f.readline().strip()))
    deadline = time.monotonic() + args.timeout
    last = "no answer yet"
    with grpc.insecure_channel(args.grpc) as channel:
        while True:
            try:
                last = check(channel, metadata, args.pipeline)
            except grpc.RpcError as exc:
                last = f"{exc.code().name}: {exc.details()}"
            if not last:
                print(f"eegpi at {args.grpc}: SERVING; running: {', '.join(args.pipeline)}")
                return 0
            if time.monotonic() > deadline:
                print(f"eegpi at {args.grpc} not ready after {args.timeout:g} s: {last}")
                return 1
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
