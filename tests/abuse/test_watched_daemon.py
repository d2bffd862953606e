"""The abuse fixture itself: a quiet daemon passes its teardown check."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Daemon


def test_a_quiet_daemon_costs_the_healthy_client_nothing(
    abuse_daemon: Callable[..., Daemon],
) -> None:
    d = abuse_daemon()
    d.wait_for_line(r"pipeline default running")
