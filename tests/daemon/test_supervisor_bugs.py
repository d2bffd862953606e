"""A bug in a stage (any exception, not only eegpi's own) is a failure the supervisor retries
and finally gives up on; it never ends supervision silently."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from eegpi.daemon.config import AutostartRetry
from eegpi.daemon.manager import PipelineManager
from eegpi.daemon.supervisor import AutostartSupervisor
from eegpi.daemon.systemd import Notifier
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.pipeline import registry
from eegpi.pipeline.runner import PipelineRunner
from eegpi.pipeline.stage import NullPublisher, Stage, StageContext
from eegpi.status import PipelineState
from eegpi.stream import Block, StreamMeta

PIPELINE = """\
name: buggy
stages:
  - name: acquire
    type: ads1299_source
    params: {sample_rate: 250}
  - name: bug
    type: test_open_bug
    inputs: [acquire]
"""


@dataclass(frozen=True)
class _NoParams:
    pass


class OpenBug(Stage):
    """Raises a plain exception while opening, as a buggy third-party stage would."""

    type_name = "test_open_bug"
    Params = _NoParams

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        raise KeyError("a bug in a plug-in")

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        raise AssertionError("never opened")


@pytest.fixture
def open_bug_registered() -> Iterator[None]:
    registry.register(OpenBug)
    try:
        yield
    finally:
        registry._registry.pop("test_open_bug", None)


def _manager(tmp_path: Path, stage: str = "test_open_bug") -> PipelineManager:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "buggy.yaml").write_text(PIPELINE.replace("test_open_bug", stage))
    manager = PipelineManager(
        pipelines_dir=pipelines,
        device=DeviceConfig(backend="mock", acquisition="thread", emulator=EmulatorConfig()),
        publisher=NullPublisher(),
        subscriber_counts=lambda: {},
    )
    manager.load()
    return manager


async def give_up(
    manager: PipelineManager, name: str = "buggy", within: float = 60
) -> AutostartSupervisor:
    """Supervise ``name`` until the supervisor gives up after two failures (within ``within``
    seconds), then check it says so and left the pipeline FAILED."""
    policy = AutostartRetry(initial_delay_s=0.01, max_delay_s=0.01, max_attempts=2)
    supervisor = AutostartSupervisor(manager, [name], policy, Notifier(), manager.changes)
    supervisor.start()
    try:
        await asyncio.wait_for(supervisor.gave_up.wait(), within)
    finally:
        await supervisor.close()
        await manager.stop_all()
    assert "failed 2 time(s) in a row" in supervisor.reason
    (status,) = manager.status(name)
    assert status.state is PipelineState.FAILED
    return supervisor


async def test_a_stage_that_raises_at_open_is_retried_then_given_up(
    tmp_path: Path, open_bug_registered: None
) -> None:
    supervisor = await give_up(_manager(tmp_path))
    assert "a bug in a plug-in" in supervisor.reason


async def test_an_unexpected_exception_from_start_is_retried_then_given_up(
    tmp_path: Path, open_bug_registered: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an eegpi error at all (a bug in the runner): still a failure, never a dead task."""

    def broken_start(self: PipelineRunner) -> None:
        raise RuntimeError("a bug in the runner")

    monkeypatch.setattr(PipelineRunner, "start", broken_start)
    (tmp_path / "ok").mkdir()
    manager = _manager(tmp_path / "ok", stage="to_voltage")
    supervisor = await give_up(manager)
    assert "internal error: RuntimeError: a bug in the runner" in supervisor.reason
