"""Host stalls witnessed during a real-time run, and the lost conversions they account for.

A reader that sleeps until DRDY loses a conversion when it wakes more than one period late.
Whether that is eegpi's doing or the host's (a hypervisor holding a virtual CPU, an interrupt
storm, a higher-priority task) is told by a witness: one small process per CPU, pinned to it,
at a SCHED_FIFO priority just below the reader's (so it never delays the reader), its memory
locked, sleeping to every period boundary of the run's rate and noting each wake-up that came
more than a period late, with its time. A loss gap that falls within such a stall (on any CPU:
the reader may have run on either) was the host's; one that no witness saw points at eegpi.

    python -m bench.witness --cpu 0 --period-us 1000   # one witness; SIGTERM ends it, JSON out
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from eegpi.hardware.acquisition import SLEEPER_PRIORITY

__all__ = ["Gap", "Stall", "Witnessed", "Witnesses", "explained", "sleep_to_boundaries"]

WITNESS_PRIORITY = SLEEPER_PRIORITY - 1
"""Below the reader's priority: a witness may wait for the reader, never the other way."""
MATCH_SLACK_NS = 2_000_000
"""How far apart a gap and a stall may be and still be one event: the pipeline's Unix
timestamps are fitted to the DRDY edges, so they sit within a millisecond or so of them."""


@dataclass(frozen=True)
class Stall:
    """A witness woke ``late_ns`` after its due time ``due_ns`` (CLOCK_MONOTONIC)."""

    cpu: int
    due_ns: int
    late_ns: int


@dataclass(frozen=True)
class Gap:
    """``count`` conversions lost from CLOCK_MONOTONIC ``at_ns`` (the first one's DRDY) on."""

    at_ns: int
    count: int


@dataclass(frozen=True)
class Witnessed:
    wakeups: int
    stalls: list[Stall]
    fifo: bool
    """Every witness got its SCHED_FIFO priority (without it, it sees its own scheduling)."""

    @property
    def longest_ms(self) -> float:
        return max((s.late_ns for s in self.stalls), default=0) / 1e6


def explained(gaps: Iterable[Gap], stalls: Sequence[Stall], period_ns: int) -> int:
    """How many gaps overlap a witnessed stall: the reader's stall behind a gap began at most
    a period before its first lost conversion and lasted until its last one."""
    count = 0
    for gap in gaps:
        begin = gap.at_ns - period_ns - MATCH_SLACK_NS
        end = gap.at_ns + gap.count * period_ns + MATCH_SLACK_NS
        if any(s.due_ns <= end and s.due_ns + s.late_ns >= begin for s in stalls):
            count += 1
    return count


class Witnesses:
    """One witness process per CPU this process may run on, watching from construction (each
    has entered its loop when the constructor returns) until :meth:`stop`."""

    def __init__(self, period_s: float) -> None:
        self.period_ns = int(period_s * 1e9)
        self._seen: Witnessed | None = None
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "bench.witness", "--cpu", str(cpu)),
                    *("--period-us", str(self.period_ns // 1000)),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for cpu in sorted(os.sched_getaffinity(0))
        ]
        for proc in self.procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "watching":
                self.stop()
                raise RuntimeError("a witness did not start")

    def stop(self) -> Witnessed:
        """End every witness and gather what they saw (idempotent)."""
        if self._seen is not None:
            return self._seen
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        wakeups, stalls, fifo = 0, [], True
        for proc in self.procs:
            out, _ = proc.communicate()
            if not out.strip():
                continue  # it died before reporting (constructor clean-up)
            report = json.loads(out)
            wakeups += report["wakeups"]
            fifo = fifo and report["fifo"]
            stalls += [Stall(report["cpu"], due, late) for due, late in report["stalls"]]
        stalls.sort(key=lambda s: s.due_ns)
        self._seen = Witnessed(wakeups, stalls, fifo)
        return self._seen


def sleep_to_boundaries(
    period_ns: int, done: Callable[[int], bool]
) -> tuple[int, list[tuple[int, int]], int]:
    """Sleep to every period boundary until ``done(due_ns)``: the wake-ups, those more than a
    period late as (due_ns, late_ns), and the latest lateness (ns). The calling thread's
    scheduling is the caller's to set."""
    now, sleep = time.monotonic_ns, time.sleep
    stalls: list[tuple[int, int]] = []
    wakeups, latest = 0, 0
    due = now() + period_ns
    while not done(due):
        remaining = due - now()
        if remaining > 0:
            sleep(remaining / 1e9)
        late = now() - due
        wakeups += 1
        latest = max(latest, late)
        if late > period_ns:
            stalls.append((due, late))
            due += (late // period_ns) * period_ns  # the boundaries it slept through
        due += period_ns
    return wakeups, stalls, latest


def _watch(cpu: int, period_ns: int) -> dict[str, object]:
    """Sleep to every period boundary until SIGTERM; note the wake-ups over a period late."""
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {cpu})
    fifo = True
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(WITNESS_PRIORITY))
    except (OSError, AttributeError):
        fifo = False
    from eegpi.hardware.memlock import lock_memory

    lock_memory()
    gc.disable()  # nothing here lives long; a collection would be a stall of our own
    stop: list[int] = []  # SIGTERM ends the loop after the wake-up it falls in is noted
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    print("watching", flush=True)
    wakeups, stalls, _ = sleep_to_boundaries(period_ns, lambda due: bool(stop))
    return {"cpu": cpu, "wakeups": wakeups, "stalls": stalls, "fifo": fifo}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", type=int, required=True)
    ap.add_argument("--period-us", type=int, required=True)
    args = ap.parse_args(argv)
    print(json.dumps(_watch(args.cpu, args.period_us * 1000)), flush=True)


if __name__ == "__main__":
    main()
