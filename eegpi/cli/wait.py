"""`eegpi start` and `eegpi stop`: ask the daemon, then wait until the pipeline settles.

Opening the ADS1299 can take far longer than a per-call deadline on a small Pi, and the daemon
finishes a start or a stop whatever its caller does. So the CLI does not race a short deadline:
it waits up to ``--wait`` seconds for the pipeline to leave STARTING or STOPPING (following
WatchStatus when the daemon answers before that), and when it gives up or is interrupted it says
what the daemon goes on doing. A pipeline already starting (another client, or an earlier
``eegpi start`` that was interrupted) is waited for rather than refused.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from google.protobuf.message import Message

from eegpi.cli.client import ControlClient
from eegpi.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, CliError
from eegpi.rpc import convert
from eegpi.status import PipelineState, PipelineStatus
from eegpi.v1 import control_pb2 as pb

__all__ = ["START", "STOP", "Action", "settle"]

_SETTLING = (PipelineState.STARTING, PipelineState.STOPPING)


@dataclass(frozen=True)
class Action:
    doing: str
    """``starting`` or ``stopping``, as the messages say it."""
    busy: PipelineState
    """The state while the daemon is at it."""
    done: tuple[PipelineState, ...]
    """Settled states that mean success."""


START = Action("starting", PipelineState.STARTING, (PipelineState.RUNNING,))
STOP = Action("stopping", PipelineState.STOPPING, (PipelineState.STOPPED, PipelineState.FAILED))
"""A stop succeeds also when the run had failed: the pipeline is down and its error shown."""


def _request(
    client: ControlClient, action: Action, name: str, timeout: float, expired: str
) -> PipelineStatus:
    """StartPipeline or StopPipeline, with the whole wait as its deadline."""
    request: Message
    if action is START:
        method, request = client.pipelines.StartPipeline, pb.StartPipelineRequest(name=name)
    else:
        method, request = client.pipelines.StopPipeline, pb.StopPipelineRequest(name=name)
    reply: pb.PipelineStatus = client.call(method, request, timeout=timeout, on_deadline=expired)
    return convert.pipeline_status_from_pb(reply)


def _follow(client: ControlClient, name: str, deadline: float, expired: str) -> PipelineStatus:
    """The first status of ``name`` that is neither STARTING nor STOPPING."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CliError(expired, EXIT_FAILED)
    updates = client.stream(
        client.pipelines.WatchStatus,
        pb.WatchStatusRequest(name=name),
        timeout=remaining,
        on_deadline=expired,
    )
    try:
        for message in updates:
            status = convert.pipeline_status_from_pb(message)
            if status.state not in _SETTLING:
                return status
    finally:
        updates.close()  # cancels the stream
    raise CliError(
        f"eegpi at {client.target} ended the status stream before {name} settled "
        f"(is it shutting down?); `eegpi status {name}` shows where it is",
        EXIT_FAILED,
    )


def settle(client: ControlClient, action: Action, name: str, wait: float) -> PipelineStatus:
    """Ask for ``action`` on ``name`` and return the status it settles in within ``wait`` s.

    Raises:
        CliError: the daemon refused, is unreachable, ``wait`` passed (EXIT_FAILED), or Ctrl-C
            (EXIT_INTERRUPTED); the message says what the daemon goes on doing.
    """
    deadline = time.monotonic() + wait
    # A quick look first: an unknown name or an absent daemon fails within --timeout, not --wait.
    reply = client.call(client.pipelines.GetStatus, pb.GetStatusRequest(name=name))
    busy = any(convert.state_from_pb(m.state) is action.busy for m in reply.pipelines)
    goes_on = f"the daemon goes on {action.doing} {name}; `eegpi status {name}` shows where it is"
    expired = f"{name} is still {action.doing} after {wait:g} s: {goes_on} (--wait to wait longer)"
    try:
        if busy:
            print(f"{name} is already {action.doing}; waiting for it", file=sys.stderr, flush=True)
            status = _follow(client, name, deadline, expired)
        else:
            status = _request(client, action, name, wait, expired)
        if status.state in _SETTLING:
            status = _follow(client, name, deadline, expired)
    except KeyboardInterrupt:
        raise CliError(f"interrupted: {goes_on}", EXIT_INTERRUPTED) from None
    return status
