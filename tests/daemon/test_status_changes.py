"""The supervisor and the STATUS= reporter sleep until the manager reports a change: a run that
is up costs the event loop no wake-ups of theirs, and a failure still reaches them at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eegpi.daemon.changes import StatusChanges
from eegpi.daemon.config import AutostartRetry
from eegpi.daemon.manager import PipelineManager
from eegpi.daemon.supervisor import AutostartSupervisor, report_status
from eegpi.daemon.systemd import Notifier
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.pipeline.stage import NullPublisher
from eegpi.status import PipelineState
from tests.daemon.test_supervisor_bugs import give_up

PIPELINE = """\
name: calm
stages:
  - name: acquire
    type: ads1299_source
    params: {sample_rate: 250}
  - name: uv
    type: to_voltage
    inputs: [acquire]
"""


async def test_a_ticket_taken_before_a_change_is_woken_by_it() -> None:
    changes = StatusChanges()
    before = changes.ticket()
    changes.fire()
    after = changes.ticket()
    assert await changes.wait(before, 0)  # the change between read and wait is not missed
    assert not await changes.wait(after, 0)
    assert not await changes.wait(after, 0.01)  # times out: nothing changed since
    waiter = asyncio.ensure_future(changes.wait(after, None))
    await asyncio.sleep(0)
    assert not waiter.done()
    changes.fire()
    assert await asyncio.wait_for(waiter, 30)


class _CountingManager(PipelineManager):
    """The real manager, counting how often its status is read."""

    reads = 0

    def status(self, name: str = "") -> list:  # type: ignore[type-arg]
        self.reads += 1
        return super().status(name)


def _manager(tmp_path: Path, emulator: EmulatorConfig) -> _CountingManager:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "calm.yaml").write_text(PIPELINE)
    manager = _CountingManager(
        pipelines_dir=pipelines,
        device=DeviceConfig(backend="mock", acquisition="thread", emulator=emulator),
        publisher=NullPublisher(),
        subscriber_counts=lambda: {},
    )
    manager.load()
    return manager


@pytest.fixture
def manager(tmp_path: Path) -> _CountingManager:
    return _manager(tmp_path, EmulatorConfig())


async def test_an_up_pipeline_is_not_polled_and_its_failure_is_still_seen(
    manager: _CountingManager,
) -> None:
    policy = AutostartRetry(initial_delay_s=0.01, max_delay_s=0.01, max_attempts=3)
    supervisor = AutostartSupervisor(manager, ["calm"], policy, Notifier(), manager.changes)
    health: list[bool] = []

    async def set_health(serving: bool) -> None:
        health.append(serving)

    reporter = asyncio.create_task(
        report_status(manager, supervisor, "here", Notifier(), set_health)
    )
    supervisor.start()
    try:
        await asyncio.wait_for(supervisor.ready.wait(), 60)
        await asyncio.sleep(0)  # let the reporter read the "up" change
        reads = manager.reads
        # Nothing changes for half a second: neither follower reads the status (polling at
        # 10 Hz read it ten times or more). Not a synchronisation: the quiet is the assertion.
        ticket = manager.changes.ticket()
        assert not await manager.changes.wait(ticket, 0.5)
        assert manager.reads == reads
        assert health[-1] is True

        # A stop by the operator is a change: the supervisor sees it and lets the pipeline go.
        await manager.stop("calm")
        for _ in range(100):
            if not supervisor.supervises("calm"):
                break
            await asyncio.wait_for(manager.changes.wait(manager.changes.ticket(), None), 30)
        assert not supervisor.supervises("calm")
        (status,) = manager.status("calm")
        assert status.state is PipelineState.STOPPED
    finally:
        reporter.cancel()
        await supervisor.close()
        await manager.stop_all()


async def test_a_run_that_fails_after_it_was_up_is_seen_without_polling(tmp_path: Path) -> None:
    """DRDY stops after 100 conversions, so every run comes up, then fails. Unnoticed, a run
    that is up would wait ``_SAFETY_S`` (30 s) for its next look; the change wakes it."""
    manager = _manager(tmp_path, EmulatorConfig(stuck_drdy_after=100))
    supervisor = await give_up(manager, "calm", within=25)
    assert "DRDY" in supervisor.reason
