"""The machine a benchmark ran on, and one markdown table of its figures against their targets.

A figure means little without the host it came from and what else ran there: the table says
the CPU model, cores, kernel, Python, the eegpi commit, the load average when the run started
and ended, how busy the whole host was during the run (from /proc/stat, all processes), and
how many busy loops the bench itself started beside the run (``--load N``).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BusyLoops",
    "Machine",
    "Row",
    "at_least",
    "at_most",
    "host_busy",
    "machine",
    "render",
]

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One figure: what it is, its target (text and check), what was measured."""

    figure: str
    target: str
    measured: str
    met: bool | None = None  # None: no target, or nothing measured

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: ""}[self.met]


def at_most(limit: float) -> Callable[[float | None], bool | None]:
    """A check that ``value <= limit`` (None when nothing was measured)."""
    return lambda v: None if v is None else v <= limit


def at_least(limit: float) -> Callable[[float | None], bool | None]:
    """A check that ``value >= limit`` (None when nothing was measured)."""
    return lambda v: None if v is None else v >= limit


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole host since boot, from /proc/stat's cpu line."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


def host_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Fraction of all cores the whole host kept busy between two ``_cpu_times`` readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total if total else 0.0


@dataclass
class Machine:
    """Where and under what load a run happened."""

    cpu_model: str
    cores: int
    kernel: str
    python: str
    commit: str
    started: str
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    busy_loops: int = 0
    host_busy: float = 0.0  # of all cores, over the run
    command: str = ""
    _cpu0: tuple[int, int] = field(default=(0, 0), repr=False)

    def finish(self) -> None:
        """Record the load at the end of the run."""
        self.load_end = os.getloadavg()
        self.host_busy = host_busy(self._cpu0, _cpu_times())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    """The eegpi commit, with '+ changes' when eegpi/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "eegpi"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" + uncommitted changes in eegpi/" if dirty else "")


def machine(busy_loops: int = 0) -> Machine:
    """The machine now; call ``finish()`` when the run ends."""
    return Machine(
        cpu_model=_cpu_model(),
        cores=os.cpu_count() or 1,
        kernel=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        commit=_commit(),
        started=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load_start=os.getloadavg(),
        busy_loops=busy_loops,
        command="python -m bench " + " ".join(sys.argv[1:]),
        _cpu0=_cpu_times(),
    )


class BusyLoops:
    """``n`` CPU-bound processes beside the run (``--load N``): other work on the host."""

    def __init__(self, n: int) -> None:
        self.procs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)
        ]

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def _load(avg: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in avg)


def render(m: Machine, rows: list[Row], notes: list[str]) -> str:
    """The whole document: machine, one table, notes under it."""
    other = (
        f"{m.busy_loops} busy loop(s) (`while True: pass`) started by the bench ran beside it"
        if m.busy_loops
        else "the bench started no other work"
    )
    lines = [
        "# Performance",
        "",
        f"Written by `{m.command.strip()}` (`make bench` prints the same figures without "
        "writing this file). One run; ranges are over the run's interleaved repetitions. CPU "
        "is CPU *time* the kernel charged to the processes measured (utime + stime from "
        "/proc), as a share of one core; latency and loss depend on other work on the host. "
        "So does CPU time, on a virtual machine, for processes that wake hundreds of times a "
        "second: waking an idle virtual CPU is charged to the thread it wakes, so the same "
        "daemon measures higher on an idle host than on a busy one (the default pipeline's "
        "tree at 250 SPS with 10 clients, on the 2-core development VM, with one busy loop "
        "beside it: 13.9 % of a core in a run that began on an otherwise idle host, 7.9-10.2 % "
        "in one on a host busy throughout). Compare runs made under the same load (`--load N` "
        "starts N busy loops beside the run), and against pieeg-server in the same run.",
        "",
        f"- **Machine**: {m.cpu_model}, {m.cores} cores; {m.kernel}; Python {m.python}",
        f"- **eegpi**: {m.commit}",
        f"- **Run**: {m.started}; load average (1/5/15 min) {_load(m.load_start)} at start, "
        f"{_load(m.load_end)} at end; the whole host was busy {100 * m.host_busy:.0f} % of "
        f"its {m.cores} cores during the run (every process, the bench's own clients included)",
        f"- **Other work**: {other}; the host is shared, so other processes may have run too "
        "(see the load average)",
        "",
        "| figure | target | measured | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.figure} | {r.target} | {r.measured} | {r.verdict} |" for r in rows]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"
