"""bench.wakefloor runs its waking threads in a process of their own and reads back their CPU."""

from __future__ import annotations

import math

from bench.wakefloor import RATES_0_CLIENTS, RATES_10_CLIENTS, main, measure


def test_the_floor_is_a_share_of_one_core() -> None:
    pct = measure((50.0, 20.0), 0.5)
    assert math.isfinite(pct) and 0.0 <= pct < 100.0 * 2


def test_the_cadences_are_the_trees() -> None:
    assert RATES_0_CLIENTS == (250.0, 250.0 / 3)
    assert (*RATES_0_CLIENTS, 250.0 / 3) == RATES_10_CLIENTS
    assert main(["--rates", "10", "--seconds", "0.3"]) >= 0.0
