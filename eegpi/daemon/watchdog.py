"""The systemd watchdog: ping only while acquisition progresses and the event loop answers.

A timer that always fires would keep a stuck appliance "active" forever, so each ping is
earned: every RUNNING pipeline must have acquired samples since the previous ping, and the
event loop must not have been late by more than ``MAX_LOOP_LAG_S`` meanwhile. Progress is
compared per run (pipeline name and start time), so a pipeline that was stopped and started
again between two pings, whose counter restarts from 0, is not mistaken for a stalled one.

A failed pipeline does not hold the pings back: the autostart supervisor retries it and ends
the daemon when the fault persists (docs/architecture.md, "Health and systemd").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from eegpi.status import PipelineState, PipelineStatus

__all__ = ["MAX_LOOP_LAG_S", "ProgressGate", "run_watchdog"]

log = logging.getLogger("eegpi.daemon")

MAX_LOOP_LAG_S = 1.0
"""An event loop later than this answers clients too slowly to count as healthy."""
_TICK_S = 0.25


class ProgressGate:
    """Remembers each running pipeline's sample counter, keyed by run."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, float | None], int] = {}

    def stalled(self, statuses: Iterable[PipelineStatus]) -> list[str]:
        """Names of RUNNING pipelines whose counter did not move since the previous call.

        A run seen for the first time sets its baseline and is not judged yet.
        """
        seen: dict[tuple[str, float | None], int] = {}
        stalled: list[str] = []
        for st in statuses:
            if st.state is not PipelineState.RUNNING:
                continue
            key = (st.name, st.start_time)
            before = self._last.get(key)
            if before is not None and st.samples_acquired <= before:
                stalled.append(st.name)
            seen[key] = st.samples_acquired
        self._last = seen
        return stalled


async def run_watchdog(
    interval: float,
    statuses: Callable[[], list[PipelineStatus]],
    ping: Callable[[], None],
) -> None:
    """Call ``ping`` every ``interval`` s while the checks pass; runs until cancelled.

    An exception in a check is logged with its traceback and costs that one ping; the loop
    goes on, so a transient bug cannot end the pings silently (and a persistent one makes
    systemd restart the daemon, traceback in the journal).
    """
    gate = ProgressGate()
    tick = min(_TICK_S, interval / 4)
    loop = asyncio.get_running_loop()
    while True:
        worst_lag = 0.0
        deadline = loop.time() + interval
        while (left := deadline - loop.time()) > 0:
            step = min(tick, left)
            before = time.monotonic()
            await asyncio.sleep(step)
            worst_lag = max(worst_lag, time.monotonic() - before - step)
        try:
            stalled = gate.stalled(statuses())
            if stalled:
                log.error(
                    "watchdog: pipeline(s) %s acquired nothing for %.1f s; not pinging",
                    ", ".join(stalled),
                    interval,
                )
            elif worst_lag > MAX_LOOP_LAG_S:
                log.error("watchdog: event loop %.1f s late; not pinging", worst_lag)
            else:
                ping()
        except Exception:
            log.exception("watchdog check failed; trying again in %.1f s", interval)
