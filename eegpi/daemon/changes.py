"""A wake-up for the daemon's status followers: the supervisor and systemd's STATUS= line.

They used to poll the manager ten times a second, which cost an idle appliance about 2 % of a
core on the event loop (each wake-up of a sleeping CPU is dear on a Pi or a VM). Now they sleep
until the manager or the supervisor says something changed, or until a deadline of their own
(the first samples of a run, a retry, a stable run), so an appliance that streams and nothing
else wakes its loop only for its clients.

A follower takes a ticket *before* it reads the state, then waits on that ticket: a change made
between its read and its wait has already set the ticket, so it is never missed.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["StatusChanges", "Ticket"]

Ticket = asyncio.Event
"""Set at the first change after it was taken."""


class StatusChanges:
    """Wakes every follower at the next change. Event-loop thread only (``fire`` may also run
    before the loop starts, when nobody can be waiting yet)."""

    def __init__(self) -> None:
        self._current = asyncio.Event()

    def ticket(self) -> Ticket:
        """Take this before reading the state you will wait on."""
        return self._current

    def fire(self) -> None:
        """Something followers watch changed: wake every ticket taken so far."""
        current, self._current = self._current, asyncio.Event()
        current.set()

    @staticmethod
    async def wait(ticket: Ticket, timeout: float | None) -> bool:
        """Until ``ticket`` is set (True) or ``timeout`` s pass (False; None = no limit)."""
        if ticket.is_set():
            return True
        if timeout is not None and timeout <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), timeout)
        return ticket.is_set()
