"""Keeps the autostart pipelines running and tells systemd and health the truth about them.

The autostart pipelines are the appliance's duty. Each one is started by a task of its own
and followed while it runs:

* it counts as **up** once its run has delivered samples; READY=1 waits for every autostart
  pipeline to be up (RELIABILITY R1);
* when it fails (at start, or later: no chip, stuck DRDY, a dead acquisition process) it is
  started again after 1, 2, 4 ... s (``autostart_retry`` in the config). While it is down,
  health for the whole server ("") reports NOT_SERVING (R7: a device fault) and STATUS= names
  the pipeline, the error and the next attempt; gRPC goes on answering so ``eegpi status``
  can show why;
* after ``max_attempts`` failures in a row (a run that lasts ``stable_s`` clears the count)
  the supervisor gives up: the daemon shuts down cleanly and exits with status 1, so that
  systemd's ``Restart=on-failure`` and start limit decide what happens next;
* the operator wins: an autostart pipeline stopped over gRPC (StopPipeline), or refused
  because the operator gave its device to another pipeline, is no longer supervised and is
  not restarted. Pipelines started by hand are never restarted by the daemon; their failure
  shows in STATUS= and GetStatus.

The manager's status is read again whenever it reports a change (:mod:`eegpi.daemon.changes`),
which sees stops and failures whoever caused them. Only what no change reports is polled, and
only while it matters: the first samples of a run, every ``_TICK_S``. A run that is up wakes
nobody until something changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from eegpi.daemon.changes import StatusChanges
from eegpi.daemon.config import AutostartRetry
from eegpi.daemon.systemd import Notifier
from eegpi.exc import DeviceBusy, EegpiError, PipelineNotFound
from eegpi.status import ControlPlane, PipelineState, PipelineStatus

__all__ = ["AutostartSupervisor", "report_status"]

log = logging.getLogger("eegpi.daemon")

_TICK_S = 0.1
"""How often a run's first samples are looked for (READY=1 waits for them)."""
_SAFETY_S = 30.0
"""The longest a follower sleeps without a change: a bound, should a change go unreported."""
_ATTEMPT_ALLOWANCE_S = 30.0
"""Before READY: how long systemd is asked to wait for one more start attempt."""
_ACTIVE = (PipelineState.STARTING, PipelineState.RUNNING)

Phase = Literal["starting", "waiting", "up", "retrying", "released", "gave_up"]


@dataclass
class _Watch:
    phase: Phase = "starting"
    failures: int = 0
    """Failures in a row."""
    error: str = ""
    next_attempt: str = ""
    """E.g. "attempt 2 of 5 in 1 s", fixed when the failure is seen."""


class AutostartSupervisor:
    """One task per autostart pipeline; see the module docstring for the policy."""

    def __init__(
        self,
        manager: ControlPlane,
        names: Sequence[str],
        policy: AutostartRetry,
        notifier: Notifier,
        changes: StatusChanges,
    ) -> None:
        """
        Args:
            changes: fired by ``manager`` at every status change (the manager's ``changes``).
        """
        self._manager = manager
        self.changes = changes
        """Fired by the manager, and by the supervisor when a pipeline's phase changes."""
        self._policy = policy
        self._notifier = notifier
        self._watches = {name: _Watch() for name in names}
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()
        """Every autostart pipeline has delivered samples (or was taken over by the operator)."""
        self.gave_up = asyncio.Event()
        self.reason = ""
        """Why the supervisor gave up (set with ``gave_up``)."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._watches)

    def start(self) -> None:
        for name in self._watches:
            self._tasks.append(asyncio.create_task(self._keep(name), name=f"autostart-{name}"))
        self._check_ready()

    async def close(self) -> None:
        """Stop supervising (shutdown); a start in flight is left to the manager's stop_all."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def supervises(self, name: str) -> bool:
        w = self._watches.get(name)
        return w is not None and w.phase != "released"

    def down(self) -> list[str]:
        """One line per supervised pipeline that is not delivering samples, saying why."""
        lines = []
        for name, w in self._watches.items():
            if w.phase == "starting" and w.failures == 0:
                lines.append(f"pipeline {name} starting")
            elif w.phase == "starting":
                lines.append(f"pipeline {name} down ({w.error}); starting again")
            elif w.phase == "waiting":
                lines.append(f"pipeline {name} started, waiting for samples")
            elif w.phase == "retrying":
                lines.append(f"pipeline {name} down ({w.error}); {w.next_attempt}")
            elif w.phase == "gave_up":
                lines.append(f"pipeline {name} down ({w.error}); gave up")
        return lines

    # -- one pipeline ------------------------------------------------------------------------

    async def _keep(self, name: str) -> None:
        w = self._watches[name]
        follow_only = False
        while True:
            self._set(w, "starting")
            error = None if follow_only else await self._start(name)
            if error == "":
                self._release(name, w, "not started: its device is held by another pipeline")
                return
            if error is None:
                error = await self._follow(name, w)
                if error is None:
                    self._release(name, w, "stopped by the operator")
                    return
            w.failures += 1
            w.error = error
            if w.failures >= self._policy.max_attempts:
                self.reason = (
                    f"autostart pipeline '{name}' failed {w.failures} time(s) in a row; "
                    f"last error: {error}"
                )
                self._set(w, "gave_up")
                self.gave_up.set()
                return
            delay = self._policy.delay(w.failures)
            w.next_attempt = (
                f"attempt {w.failures + 1} of {self._policy.max_attempts} in {delay:g} s"
            )
            log.warning("autostart pipeline %s is down (%s); %s", name, error, w.next_attempt)
            if not self._notifier.is_ready:
                self._notifier.extend_timeout(delay + _ATTEMPT_ALLOWANCE_S)
            self._set(w, "retrying")
            outcome = await self._wait_retry(name, delay)
            if outcome == "released":
                self._release(name, w, "stopped by the operator")
                return
            follow_only = outcome == "follow"

    async def _start(self, name: str) -> str | None:
        """None: started (or already started by someone); "": refused for the operator's sake;
        otherwise the error."""
        st = self._status(name)
        if st is not None and st.state in _ACTIVE:
            return None
        try:
            await self._manager.start(name)
        except DeviceBusy as exc:
            log.warning("autostart pipeline %s not started: %s", name, exc)
            return ""
        except EegpiError as exc:
            st = self._status(name)
            if st is not None and st.state in _ACTIVE:
                return None  # the operator's start won the race; follow it
            return str(exc) or type(exc).__name__
        except Exception as exc:  # a bug in a stage: the manager logged it; retry like a fault
            st = self._status(name)
            if st is not None and st.state in _ACTIVE:
                return None
            return f"internal error: {type(exc).__name__}: {exc}"
        return None

    async def _follow(self, name: str, w: _Watch) -> str | None:
        """Follow a run until it fails (returns the error) or is stopped (returns None)."""
        run: float | None = None
        up_since: float | None = None
        while True:
            ticket = self.changes.ticket()
            st = self._status(name)
            if st is None:
                return "the pipeline's file was removed"
            if st.state is PipelineState.FAILED:
                return st.last_error or "failed"
            if st.state in (PipelineState.STOPPING, PipelineState.STOPPED):
                return None
            if st.state is PipelineState.RUNNING:
                if st.start_time != run:  # a new run (the operator restarted it meanwhile)
                    run, up_since = st.start_time, None
                    self._set(w, "waiting")
                if up_since is None and st.samples_acquired > 0:
                    up_since = time.monotonic()
                    if w.failures:
                        log.info("autostart pipeline %s delivers samples again", name)
                    self._set(w, "up")
                if (
                    up_since is not None
                    and w.failures
                    and time.monotonic() - up_since >= self._policy.stable_s
                ):
                    log.info("autostart pipeline %s stable for %g s", name, self._policy.stable_s)
                    w.failures = 0
            await self.changes.wait(ticket, self._follow_timeout(up_since, w))

    def _follow_timeout(self, up_since: float | None, w: _Watch) -> float:
        """How long a followed run may go unread: until its first samples, a tick; once up,
        until it has run ``stable_s`` (which clears the failure count) or a change."""
        if up_since is None:
            return _TICK_S
        if w.failures:
            return max(0.0, up_since + self._policy.stable_s - time.monotonic()) + 0.001
        return _SAFETY_S

    async def _wait_retry(self, name: str, delay: float) -> Literal["retry", "follow", "released"]:
        ticket = self.changes.ticket()
        first = self._status(name)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            left = max(deadline - time.monotonic(), 0.0)
            await self.changes.wait(ticket, left)
            ticket = self.changes.ticket()
            st = self._status(name)
            if st is None:
                continue
            if st.state in _ACTIVE:
                return "follow"
            if (
                st.state is PipelineState.STOPPED
                and first is not None
                and first.state is PipelineState.FAILED
            ):
                return "released"
        return "retry"

    # -- bookkeeping -------------------------------------------------------------------------

    def _status(self, name: str) -> PipelineStatus | None:
        try:
            return self._manager.status(name)[0]
        except PipelineNotFound:
            return None

    def _set(self, w: _Watch, phase: Phase) -> None:
        w.phase = phase
        self._check_ready()
        self.changes.fire()  # STATUS= names each pipeline's phase

    def _release(self, name: str, w: _Watch, why: str) -> None:
        log.info("autostart pipeline %s %s: no longer restarted automatically", name, why)
        self._set(w, "released")

    def _check_ready(self) -> None:
        if all(w.phase in ("up", "released") for w in self._watches.values()):
            self.ready.set()


async def report_status(
    manager: ControlPlane,
    supervisor: AutostartSupervisor,
    serving_on: str,
    notifier: Notifier,
    set_health: Callable[[bool], Awaitable[None]],
) -> None:
    """Keep STATUS= and the overall health ("") in step with the pipelines; until cancelled.

    Health is SERVING while every supervised autostart pipeline delivers samples (an idle
    appliance with none is SERVING too). Only changes are sent.
    """
    last: tuple[bool, str] | None = None
    changes = supervisor.changes
    while True:
        ticket = changes.ticket()
        now = status_line(manager, supervisor, serving_on)
        if now != last:
            serving, text = now
            if last is None or serving != last[0]:
                await set_health(serving)
            notifier.status(text)
            last = now
        await changes.wait(ticket, _SAFETY_S)


def status_line(
    manager: ControlPlane, supervisor: AutostartSupervisor, serving_on: str
) -> tuple[bool, str]:
    """(serving, the STATUS= text)."""
    down = supervisor.down()
    statuses = manager.status()
    running = [s.name for s in statuses if s.state is PipelineState.RUNNING]
    failed = [
        f"{s.name} failed ({s.last_error})"
        for s in statuses
        if s.state is PipelineState.FAILED and not supervisor.supervises(s.name)
    ]
    parts = [f"serving on {serving_on}"]
    parts += down
    parts.append(f"running: {', '.join(running)}" if running else "no pipeline running")
    parts += failed
    return not down, "; ".join(parts)
