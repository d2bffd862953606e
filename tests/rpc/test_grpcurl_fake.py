"""The real grpcurl binary against the real aio server over an in-memory ControlPlane."""

from __future__ import annotations

import json

from eegpi.rpc.server import GrpcServer
from tests.rpc.grpcurl_tool import TOKEN, grpcurl
from tests.rpc.rpc_fakes import NO_CHIP, FakeControlPlane

PC = "eegpi.v1.PipelineControl"


def target(server: GrpcServer) -> str:
    return f"127.0.0.1:{server.port}"


async def test_list_shows_every_service(server: GrpcServer) -> None:
    r = await grpcurl(target(server), "list")
    assert r.code == 0, r.err
    services = r.out.split()
    for name in ("eegpi.v1.PipelineControl", "eegpi.v1.Device", "grpc.health.v1.Health"):
        assert name in services


async def test_describe_needs_no_proto(server: GrpcServer) -> None:
    r = await grpcurl(target(server), "describe", PC)
    assert r.code == 0, r.err
    for rpc in (
        "ListPipelines",
        "StartPipeline",
        "StopPipeline",
        "GetStatus",
        "WatchStatus",
        "ReloadPipelines",
    ):
        assert f"rpc {rpc} " in r.out
    assert "returns ( stream .eegpi.v1.PipelineStatus )" in r.out
    r = await grpcurl(target(server), "describe", "eegpi.v1.PipelineStatus")
    assert r.code == 0, r.err
    assert "uint64 samples_acquired" in r.out


async def test_pipeline_lifecycle(server: GrpcServer) -> None:
    t = target(server)
    r = await grpcurl(t, f"{PC}/ListPipelines")
    assert r.code == 0, r.err
    listed = r.json()
    assert [p["name"] for p in listed["pipelines"]] == ["alpha", "crash", "default", "nochip"]
    default = next(p for p in listed["pipelines"] if p["name"] == "default")
    assert default["topics"] == ["eeg_voltage", "eeg_filtered"]
    assert default["state"] == "PIPELINE_STATE_STOPPED"
    assert listed["errors"][0]["path"] == "pipelines/broken.yaml"

    r = await grpcurl(t, f"{PC}/StartPipeline", data='{"name": "default"}')
    assert r.code == 0, r.err
    started = r.json()
    assert started["state"] == "PIPELINE_STATE_RUNNING"
    assert started["samples_acquired"] == "931250"  # uint64 is a string in proto JSON
    assert started["device"]["chip"] == "ADS1299"
    assert {"name": "eeg_filtered", "subscribers": 1} in started["topics"]
    assert "start_time" in started

    r = await grpcurl(t, f"{PC}/GetStatus", data='{"name": "default"}')
    assert r.code == 0, r.err
    assert [p["state"] for p in r.json()["pipelines"]] == ["PIPELINE_STATE_RUNNING"]

    r = await grpcurl(t, f"{PC}/GetStatus")
    assert r.code == 0, r.err
    assert len(r.json()["pipelines"]) == 4

    r = await grpcurl(t, f"{PC}/StopPipeline", data='{"name": "default"}')
    assert r.code == 0, r.err
    assert r.json()["state"] == "PIPELINE_STATE_STOPPED"


async def test_reload(server: GrpcServer, control: FakeControlPlane) -> None:
    r = await grpcurl(target(server), f"{PC}/ReloadPipelines")
    assert r.code == 0, r.err
    assert r.json()["loaded"] == ["alpha", "crash", "default", "nochip"]
    assert control.reloads == 1


async def test_watch_status_streams(server: GrpcServer) -> None:
    # grpcurl ends the stream at -max-time; the first message is the current status.
    r = await grpcurl(target(server), f"{PC}/WatchStatus", data='{"name": "alpha"}', max_time=1)
    assert "DeadlineExceeded" in r.err
    assert json.loads(r.out)["name"] == "alpha"


async def test_device_service(server: GrpcServer, control: FakeControlPlane) -> None:
    t = target(server)
    await control.start("default")
    r = await grpcurl(t, "eegpi.v1.Device/GetIdentity")
    assert r.code == 0, r.err
    assert r.json()["held_by"] == "default"
    assert r.json()["id_register"] == 0x3E
    r = await grpcurl(t, "eegpi.v1.Device/GetRegisters")
    assert r.code == 0, r.err
    assert r.json()["registers"][1] == {"address": 1, "name": "CONFIG1", "value": 0x96}
    r = await grpcurl(t, "eegpi.v1.Device/GetLeadOff")
    assert r.code == 0, r.err
    channels = r.json()["channels"]
    assert len(channels) == 8
    assert channels[2] == {"channel": "ch3", "p_off": True, "sensed": True}


async def test_status_codes_carry_actionable_messages(
    server: GrpcServer, control: FakeControlPlane
) -> None:
    t = target(server)
    r = await grpcurl(t, f"{PC}/StartPipeline", data='{"name": "nope"}')
    assert r.code != 0
    assert "Code: NotFound" in r.err
    assert "no pipeline named 'nope'; known: alpha, crash, default, nochip" in r.err

    r = await grpcurl(t, f"{PC}/GetStatus", data='{"name": "nope"}')
    assert "Code: NotFound" in r.err

    r = await grpcurl(t, f"{PC}/StopPipeline", data="{}")
    assert "Code: InvalidArgument" in r.err
    assert "name is required; try ListPipelines" in r.err

    r = await grpcurl(t, f"{PC}/StartPipeline", data='{"name": "nochip"}')
    assert "Code: Unavailable" in r.err
    assert NO_CHIP in r.err

    r = await grpcurl(t, f"{PC}/StartPipeline", data='{"name": "crash"}')
    assert "Code: Internal" in r.err
    assert "RuntimeError: boom" in r.err

    await control.start("default")
    r = await grpcurl(t, f"{PC}/StartPipeline", data='{"name": "default"}')
    assert "Code: FailedPrecondition" in r.err
    assert "already running; stop it first" in r.err
    r = await grpcurl(t, f"{PC}/StartPipeline", data='{"name": "alpha"}')
    assert "Code: FailedPrecondition" in r.err
    assert "held by running pipeline 'default'" in r.err


async def test_unknown_field_is_rejected_by_grpcurl(server: GrpcServer) -> None:
    r = await grpcurl(target(server), f"{PC}/StartPipeline", data='{"nmae": "default"}')
    assert r.code != 0
    assert "nmae" in r.err


async def test_health_check(server: GrpcServer) -> None:
    t = target(server)
    r = await grpcurl(t, "grpc.health.v1.Health/Check")
    assert r.code == 0, r.err
    assert r.json() == {"status": "SERVING"}
    r = await grpcurl(t, "grpc.health.v1.Health/Check", data=f'{{"service": "{PC}"}}')
    assert r.json() == {"status": "SERVING"}
    await server.set_serving(False)
    r = await grpcurl(t, "grpc.health.v1.Health/Check")
    assert r.json() == {"status": "NOT_SERVING"}


async def test_token_required_for_everything(token_server: GrpcServer) -> None:
    t = target(token_server)
    for method in ("list", f"{PC}/ListPipelines", "grpc.health.v1.Health/Check"):
        r = await grpcurl(t, *method.split())
        assert r.code != 0, method
        assert "Code: Unauthenticated" in r.err or "Unauthenticated" in r.err, (method, r.err)
    r = await grpcurl(t, f"{PC}/ListPipelines", token="wrong")
    assert "invalid bearer token" in r.err

    r = await grpcurl(t, "list", token=TOKEN)
    assert r.code == 0, r.err
    assert "eegpi.v1.PipelineControl" in r.out
    r = await grpcurl(t, f"{PC}/StartPipeline", data='{"name": "default"}', token=TOKEN)
    assert r.code == 0, r.err
    assert r.json()["state"] == "PIPELINE_STATE_RUNNING"
    r = await grpcurl(t, "grpc.health.v1.Health/Check", token=TOKEN)
    assert r.json() == {"status": "SERVING"}
