"""`eegpi start` / `eegpi stop` against a real daemon whose pipeline opens and closes slowly.

The start and stop last exactly as long as the test holds the stage's gate, so each case is
deterministic (a --wait of 3 s only has to outlast the call reaching the daemon): the CLI
waits past its per-call deadline, gives up after --wait saying what the daemon goes on doing,
and survives Ctrl-C without leaving the pipeline stuck.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.cli_runner import run_eegpi
from tests.cli.gated_daemon import GatedDaemon, finished, interrupt, start_gated_daemon


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[GatedDaemon]:
    yield from start_gated_daemon(tmp_path)


def _state(g: GatedDaemon) -> str:
    r = run_eegpi("--grpc", g.daemon.grpc_target, "status", "slow", "--json")
    assert r.code == 0, r.err
    (status,) = r.json()
    state: str = status["state"]
    return state


def _join_waiting(g: GatedDaemon, command: str, doing: str) -> subprocess.Popen[str]:
    """A second `eegpi start|stop slow` that finds the first one in progress and waits for it."""
    cli = g.cli(command, "slow")
    assert cli.stderr is not None
    line = cli.stderr.readline()  # printed before it starts following the pipeline
    assert line == f"slow is already {doing}; waiting for it\n", line
    return cli


def test_start_outlasts_the_per_call_deadline(gated: GatedDaemon) -> None:
    cli = gated.cli("--timeout", "1", "start", "slow")
    gated.opening.reached()
    # Before, the CLI gave up here after its 1 s deadline (exit 3, "did not answer").
    with pytest.raises(subprocess.TimeoutExpired):
        cli.wait(timeout=3)
    gated.opening.release()
    r = finished(cli)
    assert (r.code, r.out) == (0, "slow: RUNNING\n"), r.err


def test_a_start_longer_than_wait_goes_on_in_the_daemon(gated: GatedDaemon) -> None:
    cli = gated.cli("start", "slow", "--wait", "3")
    gated.opening.reached()
    r = finished(cli)
    assert r.code == 1 and r.out == ""
    assert r.err == (
        "eegpi: slow is still starting after 3 s: the daemon goes on starting slow; "
        "`eegpi status slow` shows where it is (--wait to wait longer)\n"
    )
    assert _state(gated) == "STARTING"

    waiting = _join_waiting(gated, "start", "starting")
    gated.opening.release()
    r = finished(waiting)
    assert (r.code, r.out) == (0, "slow: RUNNING\n"), r.err
    assert _state(gated) == "RUNNING"


def test_ctrl_c_leaves_the_daemon_starting_and_says_so(gated: GatedDaemon) -> None:
    cli = gated.cli("start", "slow")
    gated.opening.reached()
    r = interrupt(cli)
    assert r.code == 130
    assert r.err == (
        "eegpi: interrupted: the daemon goes on starting slow; "
        "`eegpi status slow` shows where it is\n"
    )
    waiting = _join_waiting(gated, "start", "starting")
    gated.opening.release()
    r = finished(waiting)
    assert (r.code, r.out) == (0, "slow: RUNNING\n"), r.err

    # Stop and start again: nothing was left stuck by the interrupted call.
    stop = gated.cli("stop", "slow")
    gated.closing.pass_through()
    assert finished(stop).out == "slow: STOPPED\n"
    start = gated.cli("start", "slow")
    gated.opening.pass_through()
    assert finished(start).out == "slow: RUNNING\n"


def test_a_stop_longer_than_wait_goes_on_in_the_daemon(gated: GatedDaemon) -> None:
    start = gated.cli("--json", "start", "slow")
    gated.opening.pass_through()
    r = finished(start)
    assert r.code == 0 and r.json()["state"] == "RUNNING", r.err

    cli = gated.cli("stop", "slow", "--wait", "3")
    gated.closing.reached()
    r = finished(cli)
    assert r.code == 1
    assert "slow is still stopping after 3 s: the daemon goes on stopping slow" in r.err
    assert _state(gated) == "STOPPING"

    waiting = _join_waiting(gated, "stop", "stopping")
    gated.closing.release()
    r = finished(waiting)
    assert (r.code, r.out) == (0, "slow: STOPPED\n"), r.err


def test_start_of_an_unknown_pipeline_fails_at_once(gated: GatedDaemon) -> None:
    r = finished(gated.cli("start", "nope", "--wait", "600"), timeout=30)
    assert r.code == 1 and "no pipeline named 'nope'" in r.err and "NOT_FOUND" in r.err
