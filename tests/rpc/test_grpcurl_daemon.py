"""Acceptance: the real grpcurl binary against `eegpi serve --mock` as a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eegpi.v1 import control_pb2 as pb
from eegpi.v1 import control_pb2_grpc
from tests.conftest import start_daemon

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
PC = "eegpi.v1.PipelineControl"


def grpcurl(target: str, *method: str, data: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [GRPCURL, "-plaintext", "-max-time", "10", *(["-d", data] if data else []), target]
    return subprocess.run([*cmd, *method], capture_output=True, text=True, timeout=30)


def test_grpcurl_drives_the_daemon() -> None:
    d = start_daemon(autostart=())
    try:
        with grpc.insecure_channel(d.grpc_target) as channel:
            # Wait for the daemon to answer SERVING; wait_for_ready blocks until it connects.
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=30, wait_for_ready=True)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

            r = grpcurl(d.grpc_target, "list")
            assert r.returncode == 0, r.stderr
            for service in ("eegpi.v1.PipelineControl", "eegpi.v1.Device", "grpc.health.v1.Health"):
                assert service in r.stdout.split()
            r = grpcurl(d.grpc_target, "describe", PC)
            assert r.returncode == 0 and "rpc WatchStatus" in r.stdout, r.stderr

            r = grpcurl(d.grpc_target, f"{PC}/StartPipeline", data='{"name": "default"}')
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["state"] == "PIPELINE_STATE_RUNNING"

            # Counters arrive on WatchStatus about once a second: wait for samples to grow.
            control = control_pb2_grpc.PipelineControlStub(channel)
            watch = control.WatchStatus(pb.WatchStatusRequest(name="default"), timeout=20)
            first = next(watch).samples_acquired
            grown = next(s.samples_acquired for s in watch if s.samples_acquired > first)
            watch.cancel()
            r = grpcurl(d.grpc_target, f"{PC}/GetStatus", data='{"name": "default"}')
            assert r.returncode == 0, r.stderr
            (status,) = json.loads(r.stdout)["pipelines"]
            assert status["state"] == "PIPELINE_STATE_RUNNING"
            assert int(status["samples_acquired"]) >= grown > first
            assert {t["name"] for t in status["topics"]} >= {"eeg_voltage", "eeg_filtered"}

            r = grpcurl(d.grpc_target, f"{PC}/StopPipeline", data='{"name": "default"}')
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["state"] == "PIPELINE_STATE_STOPPED"

            r = grpcurl(d.grpc_target, f"{PC}/StartPipeline", data='{"name": "no_such"}')
            assert r.returncode != 0
            assert "Code: NotFound" in r.stderr and "no_such" in r.stderr

        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=20) == 0
    finally:
        d.kill()
