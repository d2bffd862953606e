"""CPU time and memory of a process tree, read from /proc.

A benchmark that shares its host with other work cannot use wall-clock throughput; it reads
what the kernel charged to each process and thread (utime + stime) at the start and the end
of a window, and the memory each process holds (RSS, and PSS, which splits shared pages
between the processes that map them so a tree's PSS adds up honestly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Memory",
    "TreeCpu",
    "TreeSnapshot",
    "cpu_share",
    "descendants",
    "memory",
    "parse_kb",
    "parse_stat",
    "snapshot",
    "thread_keys",
]

PROC = Path("/proc")
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[str, float]:
    """(comm, utime + stime in seconds) from one /proc/PID/stat or task stat line.

    comm may hold spaces and parentheses, so the fields are split after the last ')'."""
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, (int(fields[11]) + int(fields[12])) * TICK_S


def parse_kb(text: str, key: str) -> float:
    """The ``key:  N kB`` line of a /proc status or smaps_rollup file, in MB (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # the process or thread ended between listing and reading
        return None


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, parents first."""
    out = [pid]
    tasks = _read_dir(PROC / str(pid) / "task")
    for tid in tasks:
        children = _read(PROC / str(pid) / "task" / tid / "children") or ""
        for child in children.split():
            out += descendants(int(child))
    return out


def _read_dir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    return (_read(PROC / str(pid) / "cmdline") or "").replace("\0", " ").strip()


@dataclass
class TreeSnapshot:
    """CPU seconds charged so far to each process and to each (process, thread key)."""

    process: dict[int, float] = field(default_factory=dict)
    thread: dict[tuple[int, str], float] = field(default_factory=dict)
    comm: dict[int, str] = field(default_factory=dict)
    cmdline: dict[int, str] = field(default_factory=dict)


def snapshot(pids: list[int]) -> TreeSnapshot:
    """Read the CPU time of these processes and of each of their threads (``thread_keys``)."""
    snap = TreeSnapshot()
    for pid in pids:
        text = _read(PROC / str(pid) / "stat")
        if text is None:
            continue
        snap.comm[pid], snap.process[pid] = parse_stat(text)
        snap.cmdline[pid] = _cmdline(pid)
        threads = []
        for tid in sorted(_read_dir(PROC / str(pid) / "task"), key=int):
            ttext = _read(PROC / str(pid) / "task" / tid / "stat")
            if ttext is not None:
                threads.append(parse_stat(ttext))
        for name, seconds in thread_keys(threads):
            snap.thread[(pid, name)] = seconds
    return snap


def thread_keys(threads: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Names for a process's threads, given in thread-id order (creation order).

    Threads that share a name (Python threads keep the process's name unless they set one)
    are told apart by their rank among that name: ``eegpi#0`` is the main thread, ``eegpi#1``
    the next one started, so the same thread has the same key in every run."""
    count: dict[str, int] = {}
    for name, _ in threads:
        count[name] = count.get(name, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for name, seconds in threads:
        if count[name] == 1:
            out.append((name, seconds))
            continue
        out.append((f"{name}#{seen.get(name, 0)}", seconds))
        seen[name] = seen.get(name, 0) + 1
    return out


@dataclass
class TreeCpu:
    """Shares of one core over a window: per process, per (process, thread name), in all."""

    total: float
    process: dict[int, float]
    thread: dict[tuple[int, str], float]


def cpu_share(before: TreeSnapshot, after: TreeSnapshot, wall_s: float) -> TreeCpu:
    """CPU used between two snapshots as a fraction of one core over ``wall_s``.

    A process that appeared during the window counts from zero. Thread figures can miss a
    thread that ended inside the window; the process figure keeps its time (the kernel adds
    an ended thread's time to its process)."""
    process = {
        pid: (after.process[pid] - before.process.get(pid, 0.0)) / wall_s for pid in after.process
    }
    thread = {
        key: max(0.0, after.thread[key] - before.thread.get(key, 0.0)) / wall_s
        for key in after.thread
    }
    return TreeCpu(sum(process.values()), process, thread)


@dataclass
class Memory:
    """Resident memory of one process, in MB."""

    rss: float
    pss: float


def memory(pid: int) -> Memory:
    """RSS (from status) and PSS (from smaps_rollup) of one process; zeros if it is gone."""
    status = _read(PROC / str(pid) / "status") or ""
    rollup = _read(PROC / str(pid) / "smaps_rollup") or ""
    return Memory(parse_kb(status, "VmRSS"), parse_kb(rollup, "Pss"))
