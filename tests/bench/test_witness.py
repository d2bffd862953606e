"""bench.witness: real witness processes see a stall injected into one of them, and loss gaps
are matched to stalls by time."""

from __future__ import annotations

import os
import signal
import time

from bench.witness import MATCH_SLACK_NS, Gap, Stall, Witnesses, explained

MS = 1_000_000


def test_a_gap_within_a_stall_on_any_cpu_is_explained_and_one_far_from_every_stall_is_not() -> None:
    period = 4 * MS
    stalls = [Stall(0, 1_000 * MS, 9 * MS), Stall(1, 5_000 * MS, 5 * MS)]
    inside = Gap(1_004 * MS, 1)  # lost while cpu 0's witness was held
    on_other_cpu = Gap(5_002 * MS, 2)
    just_after = Gap(1_009 * MS + period + MATCH_SLACK_NS - 1, 1)  # the reader woke a period on
    far = Gap(3_000 * MS, 1)
    assert explained([inside], stalls, period) == 1
    assert explained([on_other_cpu], stalls, period) == 1
    assert explained([just_after], stalls, period) == 1
    assert explained([far], stalls, period) == 0
    assert explained([inside, far, on_other_cpu], stalls, period) == 2
    assert explained([inside], [], period) == 0


def test_a_witness_held_off_its_cpu_reports_the_stall_with_its_time() -> None:
    witnesses = Witnesses(0.005)  # returns once every witness is in its loop
    try:
        held = witnesses.procs[0]
        before = time.monotonic_ns()
        os.kill(held.pid, signal.SIGSTOP)  # the injected fault: held as a hypervisor would
        time.sleep(0.06)  # its length, not a synchronisation
        os.kill(held.pid, signal.SIGCONT)
        after = time.monotonic_ns()
    finally:
        seen = witnesses.stop()
    assert seen.wakeups > 0
    ours = [s for s in seen.stalls if s.late_ns >= 50 * MS]
    assert ours, seen.stalls
    stall = ours[0]
    assert before - 5 * MS <= stall.due_ns <= after  # the stall is placed where it happened
    assert stall.due_ns + stall.late_ns >= after - 5 * MS
    assert explained([Gap(stall.due_ns + 10 * MS, 1)], seen.stalls, 5 * MS) == 1
    assert witnesses.stop() is seen  # idempotent
    assert all(proc.poll() is not None for proc in witnesses.procs)
