"""The watchdog loop: each ping earned by progress, per run; its own errors never end it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from eegpi.daemon.watchdog import ProgressGate, run_watchdog
from eegpi.status import PipelineState, PipelineStatus


def _running(samples: int, start_time: float = 1.0, name: str = "default") -> PipelineStatus:
    return PipelineStatus(
        name, PipelineState.RUNNING, start_time=start_time, samples_acquired=samples
    )


def test_progress_is_judged_per_run() -> None:
    gate = ProgressGate()
    assert gate.stalled([_running(5000)]) == []  # first sight: baseline only
    assert gate.stalled([_running(5100)]) == []
    assert gate.stalled([_running(5100)]) == ["default"]  # no progress in the same run
    # stopped and started again: a new run whose counter restarted is not a stall
    assert gate.stalled([PipelineStatus("default", PipelineState.STOPPED)]) == []
    assert gate.stalled([_running(10, start_time=2.0)]) == []
    assert gate.stalled([_running(40, start_time=2.0)]) == []
    # even when the restart falls between two checks
    assert gate.stalled([_running(3, start_time=3.0)]) == []


def test_failed_pipelines_do_not_hold_pings_back() -> None:
    gate = ProgressGate()
    failed = PipelineStatus("default", PipelineState.FAILED, samples_acquired=7)
    assert gate.stalled([failed]) == [] and gate.stalled([failed]) == []


def test_an_exception_in_a_check_is_logged_and_pinging_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    samples = 0

    def statuses() -> list[PipelineStatus]:
        nonlocal calls, samples
        calls += 1
        samples += 250
        if calls == 2:
            raise RuntimeError("status broke once")
        return [_running(samples)]

    async def scenario() -> int:
        pinged = asyncio.Event()
        pings = 0

        def ping() -> None:
            nonlocal pings
            pings += 1
            if pings >= 3:
                pinged.set()

        task = asyncio.create_task(run_watchdog(0.02, statuses, ping))
        try:
            await asyncio.wait_for(pinged.wait(), 30)
        finally:
            task.cancel()
        return pings

    with caplog.at_level(logging.ERROR, logger="eegpi.daemon"):
        assert asyncio.run(scenario()) >= 3
    assert calls >= 4  # the failing check was not the last one
    assert any(
        "watchdog check failed" in r.message and r.exc_info is not None for r in caplog.records
    )
