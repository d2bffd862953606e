"""PipelineManager over the real runner and the real acquisition process (emulated chip).

Every start spawns a real child process; the tests cancel callers, kill the child, corrupt
frames and shut down with a start in flight, and wait on ``manager.watch()`` (never on sleeps).
Gates placed in the acquisition process's own methods hold a transition at a known point, so
"cancelled while the child configures" happens exactly there, whatever the host's load.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

import eegpi.daemon.manager as manager_module
import eegpi.hardware as hardware
from eegpi.daemon.manager import PipelineManager
from eegpi.exc import DeviceBusy, PipelineStateError
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.process import AcquisitionProcess
from eegpi.pipeline.spec import load_pipeline_file
from eegpi.pipeline.stage import NullPublisher
from eegpi.rpc.server import start_grpc_server
from eegpi.status import PipelineState, PipelineStatus
from eegpi.v1 import control_pb2 as pb
from eegpi.v1 import control_pb2_grpc

STOPPED, STARTING, RUNNING = PipelineState.STOPPED, PipelineState.STARTING, PipelineState.RUNNING
STOPPING, FAILED = PipelineState.STOPPING, PipelineState.FAILED
TIMEOUT_S = 60.0
"""Generous: a start spawns an interpreter and imports numpy on a busy 2-core host."""

PIPELINE = """\
name: {name}
stages:
  - name: acquire
    type: ads1299_source
    params: {{sample_rate: 250}}
  - name: sink
    type: websocket_sink
    params: {{topic: {name}_raw}}
    inputs: [acquire]
"""


def _config(**emulator: Any) -> DeviceConfig:
    return DeviceConfig(
        backend="mock", acquisition="process", emulator=EmulatorConfig(realtime=True, **emulator)
    )


def _make(
    tmp_path: Path, device: DeviceConfig, names: tuple[str, ...] = ("eeg",)
) -> PipelineManager:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir(exist_ok=True)
    for name in names:
        (pipelines / f"{name}.yaml").write_text(PIPELINE.format(name=name))
    manager = PipelineManager(
        pipelines_dir=pipelines,
        device=device,
        publisher=NullPublisher(),
        subscriber_counts=lambda: {},
    )
    manager.load()
    return manager


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[PipelineManager]:
    m = _make(tmp_path, _config(), ("eeg", "other"))
    try:
        yield m
    finally:
        await asyncio.wait_for(m.stop_all(), TIMEOUT_S)
        assert _children() == [], "an acquisition process outlived the manager"


def _children() -> list[int]:
    return [p.pid for p in multiprocessing.active_children() if p.pid is not None]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_for(
    manager: PipelineManager,
    name: str,
    check: Callable[[PipelineStatus], bool],
    seen: list[PipelineStatus] | None = None,
) -> PipelineStatus:
    """The first status of ``name`` (from watch) that passes ``check``; records every one."""

    async def scan() -> PipelineStatus:
        async for st in manager.watch(name):
            if seen is not None:
                seen.append(st)
            if check(st):
                return st
        raise AssertionError(f"pipeline {name} disappeared")

    return await asyncio.wait_for(scan(), TIMEOUT_S)


def state_is(*states: PipelineState) -> Callable[[PipelineStatus], bool]:
    return lambda st: st.state in states


@dataclass
class Gate:
    """Holds a worker thread inside one method until the test lets it go."""

    entered: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)
    calls: int = 0

    async def reached(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, TIMEOUT_S), "gate never reached"


def _gate(
    monkeypatch: pytest.MonkeyPatch, method: str, *, after: bool = False, once: bool = True
) -> Gate:
    gate = Gate()
    real = getattr(AcquisitionProcess, method)

    def gated(self: AcquisitionProcess, *args: Any, **kw: Any) -> Any:
        gate.calls += 1
        hold = not once or gate.calls == 1
        if hold and not after:
            gate.entered.set()
            assert gate.go.wait(TIMEOUT_S), "the test never opened the gate"
        result = real(self, *args, **kw)
        if hold and after:
            gate.entered.set()
            assert gate.go.wait(TIMEOUT_S), "the test never opened the gate"
        return result

    monkeypatch.setattr(AcquisitionProcess, method, gated)
    return gate


@pytest.fixture
def configure_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = _gate(monkeypatch, "configure")
    try:
        yield gate
    finally:
        gate.go.set()


# -- counters ------------------------------------------------------------------------------


async def test_final_counters_survive_the_stop(
    manager: PipelineManager, caplog: pytest.LogCaptureFixture
) -> None:
    await manager.start("eeg")
    running = await wait_for(manager, "eeg", lambda st: st.samples_acquired >= 250)
    with caplog.at_level(logging.INFO, logger="eegpi.daemon"):
        reply = await manager.stop("eeg")
    assert reply.state is STOPPED
    assert reply.samples_acquired >= running.samples_acquired
    assert reply.samples_dropped >= running.samples_dropped >= 0
    after = manager.status("eeg")[0]
    assert (after.samples_acquired, after.samples_dropped) == (
        reply.samples_acquired,
        reply.samples_dropped,
    )
    line = next(r.getMessage() for r in caplog.records if "stopped (" in r.getMessage())
    assert line == (
        f"pipeline eeg stopped ({reply.samples_acquired} samples, {reply.samples_dropped} dropped)"
    )


async def test_corrupt_frames_keep_counters_non_negative(tmp_path: Path) -> None:
    manager = _make(tmp_path, _config(corrupt_every=10))
    try:
        await manager.start("eeg")
        running = await wait_for(
            manager, "eeg", lambda st: st.samples_dropped >= 5 and st.samples_acquired >= 250
        )
        reply = await manager.stop("eeg")
        assert reply.samples_acquired >= running.samples_acquired > 0
        assert reply.samples_dropped >= running.samples_dropped > 0
        assert manager.status("eeg")[0] == reply
    finally:
        await manager.stop_all()
    assert _children() == []


async def test_status_while_stopping_shows_the_final_counters(
    manager: PipelineManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    await manager.start("eeg")
    running = await wait_for(manager, "eeg", lambda st: st.samples_acquired >= 250)
    gate = _gate(monkeypatch, "close", after=True)  # the ring is gone, the runner not yet done
    stop = asyncio.create_task(manager.stop("eeg"))
    try:
        await gate.reached()
        during = manager.status("eeg")[0]
        assert during.state is STOPPING
        assert during.samples_acquired >= running.samples_acquired
        assert during.samples_dropped >= 0
    finally:
        gate.go.set()
    reply = await stop
    assert reply.samples_acquired >= during.samples_acquired


# -- cancelled callers ---------------------------------------------------------------------


@pytest.mark.parametrize("point", ["at once", "starting", "configuring"])
async def test_a_cancelled_start_still_completes(
    manager: PipelineManager, configure_gate: Gate, point: str
) -> None:
    caller = asyncio.create_task(manager.start("eeg"))
    if point == "at once":
        caller.cancel()  # before it ran at all: nothing starts
    elif point == "starting":
        await wait_for(manager, "eeg", state_is(STARTING))
        caller.cancel()
    else:
        await configure_gate.reached()
        caller.cancel()
    configure_gate.go.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    if point == "at once":
        await manager.wait_idle()
        assert manager.status("eeg")[0].state is STOPPED and _children() == []
        return
    await wait_for(manager, "eeg", state_is(RUNNING))
    with pytest.raises(DeviceBusy):  # it really holds the device
        await manager.start("other")
    stopped = await manager.stop("eeg")
    assert stopped.state is STOPPED and _children() == []
    assert (await manager.start("eeg")).state is RUNNING  # and it can start again


async def test_a_start_while_starting_joins_it(
    manager: PipelineManager, configure_gate: Gate
) -> None:
    first = asyncio.create_task(manager.start("eeg"))
    await configure_gate.reached()
    second = asyncio.create_task(manager.start("eeg"))
    configure_gate.go.set()
    a, b = await asyncio.gather(first, second)
    assert a.state is b.state is RUNNING and len(_children()) == 1
    with pytest.raises(PipelineStateError, match="already running"):
        await manager.start("eeg")


async def test_stop_during_starting_waits_for_the_start_then_stops(
    manager: PipelineManager, configure_gate: Gate
) -> None:
    updates = manager.watch("eeg")
    states = [(await anext(updates)).state]

    async def collect() -> None:
        async for st in updates:
            states.append(st.state)
            if st.state is STOPPED:
                return

    watcher = asyncio.create_task(collect())
    start = asyncio.create_task(manager.start("eeg"))
    await configure_gate.reached()
    (pid,) = _children()
    stop = asyncio.create_task(manager.stop("eeg"))
    configure_gate.go.set()
    reply = await asyncio.wait_for(stop, TIMEOUT_S)
    assert reply.state is STOPPED and _gone(pid)
    assert (await start).state is RUNNING
    await asyncio.wait_for(watcher, TIMEOUT_S)
    await updates.aclose()
    steps = [s for k, s in enumerate(states) if k == 0 or states[k - 1] is not s]
    assert steps == [STOPPED, STARTING, RUNNING, STOPPING, STOPPED], "every step announced"


async def test_a_cancelled_stop_still_completes(
    manager: PipelineManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    await manager.start("eeg")
    (pid,) = _children()
    gate = _gate(monkeypatch, "stop")
    caller = asyncio.create_task(manager.stop("eeg"))
    await gate.reached()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert manager.status("eeg")[0].state is STOPPING  # the child still holds the device
    with pytest.raises(DeviceBusy):
        await manager.start("other")
    gate.go.set()
    stopped = await wait_for(manager, "eeg", state_is(STOPPED))
    assert _gone(pid), "STOPPED is announced once the child has released the device"
    assert stopped.samples_acquired >= 0
    assert (await manager.start("other")).state is RUNNING


async def test_stop_all_waits_for_a_start_in_flight_and_stops_it(
    manager: PipelineManager, configure_gate: Gate
) -> None:
    caller = asyncio.create_task(manager.start("eeg"))
    await configure_gate.reached()
    (pid,) = _children()
    shutdown = asyncio.create_task(manager.stop_all())
    configure_gate.go.set()
    await asyncio.wait_for(shutdown, TIMEOUT_S)
    assert _gone(pid) and _children() == []
    assert manager.status("eeg")[0].state is STOPPED
    assert (await caller).state is RUNNING  # the caller saw its start succeed
    with pytest.raises(PipelineStateError, match="shutting down"):
        await manager.start("eeg")


# -- failures ------------------------------------------------------------------------------


async def test_a_killed_child_fails_the_pipeline_and_a_new_start_works(
    manager: PipelineManager,
) -> None:
    await manager.start("eeg")
    running = await wait_for(manager, "eeg", lambda st: st.samples_acquired >= 250)
    (pid,) = _children()
    os.kill(pid, signal.SIGKILL)
    failed = await wait_for(manager, "eeg", state_is(FAILED))
    assert re.search(r"acquisition process .* \(killed by SIGKILL\)", failed.last_error)
    assert failed.samples_acquired >= running.samples_acquired
    assert _gone(pid)
    assert manager.status("eeg")[0] == failed  # kept
    assert (await manager.start("eeg")).state is RUNNING
    assert manager.status("eeg")[0].last_error == ""


async def test_an_unexpected_start_error_is_not_a_precondition(
    manager: PipelineManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: AcquisitionProcess, *args: Any, **kw: Any) -> Any:
        raise RuntimeError("shared memory exhausted")

    monkeypatch.setattr(AcquisitionProcess, "start", broken)
    with pytest.raises(RuntimeError, match="shared memory exhausted") as err:
        await manager.start("eeg")
    assert not isinstance(err.value, PipelineStateError)
    st = manager.status("eeg")[0]
    assert st.state is FAILED and "shared memory exhausted" in st.last_error
    assert _children() == []


# -- device and reload ---------------------------------------------------------------------


async def test_device_report_waits_for_a_start_instead_of_probing(
    manager: PipelineManager, configure_gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes: list[str] = []
    real_probe = hardware.probe

    def probe(cfg: DeviceConfig) -> Any:
        probes.append(manager.status("eeg")[0].state.value)
        return real_probe(cfg)

    monkeypatch.setattr(hardware, "probe", probe)
    start = asyncio.create_task(manager.start("eeg"))
    await configure_gate.reached()
    report = asyncio.create_task(manager.device_report())
    configure_gate.go.set()
    done = await asyncio.wait_for(report, TIMEOUT_S)
    assert done.held_by == "eeg" and probes == []
    assert (await start).state is RUNNING
    await manager.stop("eeg")
    idle = await manager.device_report()  # nothing holds the device: a probe
    assert idle.held_by == "" and probes == ["STOPPED"]


async def test_reload_parses_off_the_loop_one_at_a_time(
    manager: PipelineManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = load_pipeline_file
    active = 0
    most = 0
    on_loop: list[bool] = []
    lock = threading.Lock()

    def load(path: Path) -> Any:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        on_loop.append(threading.current_thread() is threading.main_thread())
        try:
            return real_load(path)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(manager_module, "load_pipeline_file", load)
    results = await asyncio.gather(*(manager.reload() for _ in range(4)))
    assert all(r.loaded == ("eeg", "other") for r in results)
    assert on_loop and not any(on_loop)
    assert most == 1


# -- through the real gRPC server ----------------------------------------------------------


async def test_grpc_start_with_a_short_deadline_still_runs(
    manager: PipelineManager, configure_gate: Gate
) -> None:
    server = await start_grpc_server(manager, "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = control_pb2_grpc.PipelineControlStub(channel)  # type: ignore[no-untyped-call]
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.StartPipeline(pb.StartPipelineRequest(name="eeg"), timeout=1.0)
            assert err.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            await configure_gate.reached()  # the handler had begun the start
            configure_gate.go.set()
            await wait_for(manager, "eeg", state_is(RUNNING))
            status = await stub.GetStatus(pb.GetStatusRequest(name="eeg"), timeout=10)
            assert status.pipelines[0].state == pb.PIPELINE_STATE_RUNNING
            reply = await stub.StopPipeline(pb.StopPipelineRequest(name="eeg"), timeout=30)
            assert reply.state == pb.PIPELINE_STATE_STOPPED
            assert _children() == []
    finally:
        await server.stop(grace=0)
