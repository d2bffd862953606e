"""gRPC abuse from the LAN, on loopback: streams, garbage bytes, huge names, every error path.

Each case runs against a real ``eegpi serve --mock`` whose default pipeline streams to a healthy
WebSocket client (the ``abuse_daemon`` fixture checks at teardown that the abuse cost that client
nothing). Every loop is bounded; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from websockets.sync.client import connect

from eegpi.v1 import control_pb2 as pb
from eegpi.v1 import device_pb2 as dpb
from tests.abuse.conftest import grpc_metadata
from tests.conftest import REPO, Daemon

TOKEN = "abuse-s3cret"
WATCH_CAP = 32
"""The daemon's WatchStatus stream cap (eegpi.rpc.limits)."""
MAX_DETAILS = 1024
"""No error message the daemon sends may be longer than this, whatever the request held."""
PC = "/eegpi.v1.PipelineControl/"
DEV = "/eegpi.v1.Device/"
HEALTH = "/grpc.health.v1.Health/"
GARBAGE = b"\xff\xff\xff\xff\x0f\x00not a protobuf"

UNARY_METHODS = (
    PC + "ListPipelines",
    PC + "StartPipeline",
    PC + "StopPipeline",
    PC + "GetStatus",
    PC + "ReloadPipelines",
    DEV + "GetIdentity",
    DEV + "GetRegisters",
    DEV + "GetLeadOff",
    HEALTH + "Check",
)
STREAM_METHODS = (PC + "WatchStatus", HEALTH + "Watch")


def _identity(data: bytes) -> bytes:
    return data


def _start(name: str) -> bytes:
    return pb.StartPipelineRequest(name=name).SerializeToString()


def _stop(name: str) -> bytes:
    return pb.StopPipelineRequest(name=name).SerializeToString()


def _watch(name: str) -> bytes:
    return pb.WatchStatusRequest(name=name).SerializeToString()


def _pipelines(tmp_path: Path) -> Path:
    """The default pipeline and the spectrum one (which needs the device default holds)."""
    path = tmp_path / "pipelines"
    path.mkdir()
    for name in ("default", "spectrum"):
        shutil.copy(REPO / "pipelines" / f"{name}.yaml", path / f"{name}.yaml")
    return path


@pytest.fixture
def channel_to() -> Iterator[Callable[[Daemon], grpc.Channel]]:
    channels: list[grpc.Channel] = []

    def make(d: Daemon) -> grpc.Channel:
        channels.append(grpc.insecure_channel(d.grpc_target))
        return channels[-1]

    yield make
    for c in channels:
        c.close()


def _call(
    channel: grpc.Channel, method: str, body: bytes, token: str | None = None, stream: bool = False
) -> tuple[grpc.StatusCode, str]:
    """Send raw request bytes; the status code and details the daemon answered with."""
    try:
        if stream:
            call = channel.unary_stream(method, _identity, _identity)(
                body, metadata=grpc_metadata(token), timeout=30
            )
            next(iter(call))
            call.cancel()
            return grpc.StatusCode.OK, ""
        channel.unary_unary(method, _identity, _identity)(
            body, metadata=grpc_metadata(token), timeout=30
        )
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def _log_marker(d: Daemon, token: str | None = None) -> None:
    """Make the daemon log one known line, and wait for it: every earlier line is in d.lines."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with connect(d.ws_url, additional_headers=headers) as ws:
        port = ws.socket.getsockname()[1]
    d.wait_for_line(rf"client 127\.0\.0\.1:{port} ")


def _health(channel: grpc.Channel, token: str | None = None) -> Any:
    check = channel.unary_unary(
        HEALTH + "Check",
        health_pb2.HealthCheckRequest.SerializeToString,
        health_pb2.HealthCheckResponse.FromString,
    )
    return check(health_pb2.HealthCheckRequest(), metadata=grpc_metadata(token), timeout=30)


def test_watch_streams_cannot_lock_out_control_and_health(
    abuse_daemon: Callable[..., Daemon],
    channel_to: Callable[[Daemon], grpc.Channel],
    tmp_path: Path,
) -> None:
    d = abuse_daemon(pipelines=_pipelines(tmp_path))
    watcher = channel_to(d)
    watch = watcher.unary_stream(
        PC + "WatchStatus", pb.WatchStatusRequest.SerializeToString, pb.PipelineStatus.FromString
    )
    streams: list[Any] = []
    refused: list[grpc.RpcError] = []
    try:
        for _ in range(WATCH_CAP + 40):  # beyond the old server-wide limit of 64 calls
            call = watch(pb.WatchStatusRequest(name="default"), timeout=120)
            try:
                next(call)
            except grpc.RpcError as err:
                refused.append(err)
            else:
                streams.append(call)
        assert len(streams) == WATCH_CAP
        assert len(refused) == 40
        for refusal in refused:
            assert refusal.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "WatchStatus" in (refusal.details() or ""), refusal.details()

        # Control and health still answer on another connection while the streams are held.
        control = channel_to(d)
        status = control.unary_unary(
            PC + "GetStatus", pb.GetStatusRequest.SerializeToString, pb.GetStatusResponse.FromString
        )
        (st,) = status(pb.GetStatusRequest(name="default"), timeout=30).pipelines
        assert st.state == pb.PIPELINE_STATE_RUNNING
        stop = control.unary_unary(
            PC + "StopPipeline",
            pb.StopPipelineRequest.SerializeToString,
            pb.PipelineStatus.FromString,
        )
        assert stop(pb.StopPipelineRequest(name="spectrum"), timeout=30).state == (
            pb.PIPELINE_STATE_STOPPED
        )
        code, details = _call(
            control,
            PC + "StartPipeline",
            _start("spectrum"),
        )
        assert code is grpc.StatusCode.FAILED_PRECONDITION, details  # default holds the device
        assert _health(control).status == health_pb2.HealthCheckResponse.SERVING

        # A closed stream frees its slot.
        streams.pop().cancel()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            call = watch(pb.WatchStatusRequest(name="default"), timeout=120)
            try:
                next(call)
            except grpc.RpcError as err:
                assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                continue
            streams.append(call)
            break
        assert len(streams) == WATCH_CAP, "a cancelled WatchStatus stream never freed its slot"
    finally:
        for call in streams:
            call.cancel()


def test_garbage_bytes_are_invalid_argument_without_a_traceback_flood(
    abuse_daemon: Callable[..., Daemon], channel_to: Callable[[Daemon], grpc.Channel]
) -> None:
    d = abuse_daemon()
    channel = channel_to(d)
    for _ in range(5):
        for method in UNARY_METHODS:
            code, details = _call(channel, method, GARBAGE)
            assert code is grpc.StatusCode.INVALID_ARGUMENT, (method, code, details)
            assert "not a valid" in details and len(details) <= MAX_DETAILS, details
        for method in STREAM_METHODS:
            code, details = _call(channel, method, GARBAGE, stream=True)
            assert code is grpc.StatusCode.INVALID_ARGUMENT, (method, code, details)
    _log_marker(d)
    assert not [line for line in d.lines if "Traceback" in line], "\n".join(d.lines)
    malformed = [line for line in d.lines if "malformed" in line]
    assert 1 <= len(malformed) <= 3, malformed  # 55 bad calls, a line or two in the log


def test_a_huge_name_is_refused_with_a_short_message(
    abuse_daemon: Callable[..., Daemon], channel_to: Callable[[Daemon], grpc.Channel]
) -> None:
    d = abuse_daemon()
    channel = channel_to(d)
    huge = "x" * 60_000
    for method, request in (
        ("StartPipeline", pb.StartPipelineRequest(name=huge)),
        ("StopPipeline", pb.StopPipelineRequest(name=huge)),
        ("GetStatus", pb.GetStatusRequest(name=huge)),
    ):
        code, details = _call(channel, PC + method, request.SerializeToString())
        assert code is grpc.StatusCode.INVALID_ARGUMENT, (method, code, details[:200])
        assert "128" in details and len(details) <= 200, details[:300]
    code, details = _call(
        channel,
        PC + "WatchStatus",
        _watch(huge),
        stream=True,
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT and len(details) <= 200, details[:300]


@dataclass(frozen=True)
class Case:
    method: str
    request: bytes
    code: grpc.StatusCode
    token: str | None = TOKEN
    stream: bool = False

    def __str__(self) -> str:
        return f"{self.method.rsplit('/', 1)[1]}->{self.code.name}"


def _r8_cases() -> list[Case]:
    nf, fp, ia = (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    unauth, exhausted = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED
    oversize = b"\x0a\x80\x80\x05" + b"x" * (80 * 1024)  # field 1, 80 KiB: over the 64 KiB cap
    long_name = "n" * 129
    cases = [
        Case(PC + "StartPipeline", _start(""), ia),
        Case(PC + "StartPipeline", _start("no_such"), nf),
        Case(PC + "StartPipeline", _start("default"), fp),
        Case(PC + "StartPipeline", _start("spectrum"), fp),
        Case(PC + "StartPipeline", _start(long_name), ia),
        Case(PC + "StartPipeline", _start("a\x00b"), ia),
        Case(PC + "StopPipeline", _stop(""), ia),
        Case(PC + "StopPipeline", _stop("no_such"), nf),
        Case(PC + "StopPipeline", _stop("\x1b[2J"), ia),
        Case(PC + "GetStatus", pb.GetStatusRequest(name="no_such").SerializeToString(), nf),
        Case(PC + "GetStatus", pb.GetStatusRequest(name=long_name).SerializeToString(), ia),
        Case(
            PC + "WatchStatus",
            _watch("no_such"),
            nf,
            stream=True,
        ),
        Case(
            PC + "WatchStatus",
            _watch(long_name),
            ia,
            stream=True,
        ),
        Case(
            HEALTH + "Check",
            health_pb2.HealthCheckRequest(service="no.such.Service").SerializeToString(),
            nf,
        ),
    ]
    empty = {
        PC + "ListPipelines": pb.ListPipelinesRequest(),
        PC + "StartPipeline": pb.StartPipelineRequest(name="default"),
        PC + "StopPipeline": pb.StopPipelineRequest(name="spectrum"),
        PC + "GetStatus": pb.GetStatusRequest(),
        PC + "ReloadPipelines": pb.ReloadPipelinesRequest(),
        DEV + "GetIdentity": dpb.GetIdentityRequest(),
        DEV + "GetRegisters": dpb.GetRegistersRequest(),
        DEV + "GetLeadOff": dpb.GetLeadOffRequest(),
    }
    for method, request in empty.items():
        body = request.SerializeToString()
        cases += [
            Case(method, body, unauth, token=None),
            Case(method, body, unauth, token="wrong-token"),
            Case(method, oversize, exhausted),
            Case(method, GARBAGE, ia),
        ]
    watch = _watch("default")
    cases += [
        Case(PC + "WatchStatus", watch, unauth, token=None, stream=True),
        Case(PC + "WatchStatus", watch, unauth, token="wrong-token", stream=True),
        Case(PC + "WatchStatus", oversize, exhausted, stream=True),
        Case(PC + "WatchStatus", GARBAGE, ia, stream=True),
    ]
    return cases


def test_every_rpc_error_path_has_its_code_and_never_unknown(
    abuse_daemon: Callable[..., Daemon],
    channel_to: Callable[[Daemon], grpc.Channel],
    tmp_path: Path,
) -> None:
    d = abuse_daemon(config={"grpc": {"token": TOKEN}}, token=TOKEN, pipelines=_pipelines(tmp_path))
    channel = channel_to(d)
    wrong = []
    for case in _r8_cases():
        code, details = _call(channel, case.method, case.request, case.token, case.stream)
        if code is not case.code or len(details) > MAX_DETAILS:
            wrong.append(f"{case}: got {code.name} {details[:200]!r}")
    assert not wrong, "\n".join(wrong)
    # What works with the token still works.
    assert _health(channel, TOKEN).status == health_pb2.HealthCheckResponse.SERVING
    code, details = _call(channel, PC + "GetStatus", b"", TOKEN)
    assert code is grpc.StatusCode.OK, details
    _log_marker(d, TOKEN)
    assert not [line for line in d.lines if "Traceback" in line], "\n".join(d.lines)


def test_the_token_can_come_from_a_file_that_ps_does_not_show(
    abuse_daemon: Callable[..., Daemon],
    channel_to: Callable[[Daemon], grpc.Channel],
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "grpc.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    d = abuse_daemon("--token-file", str(token_file), token=TOKEN)
    assert TOKEN not in " ".join(map(str, d.proc.args))  # type: ignore[arg-type]
    channel = channel_to(d)
    body = pb.GetStatusRequest().SerializeToString()
    assert _call(channel, PC + "GetStatus", body, None)[0] is grpc.StatusCode.UNAUTHENTICATED
    assert _call(channel, PC + "GetStatus", body, TOKEN)[0] is grpc.StatusCode.OK
