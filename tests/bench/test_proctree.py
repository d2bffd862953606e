"""Reading a process tree's CPU time and memory from /proc."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.proctree import (
    TICK_S,
    TreeSnapshot,
    cpu_share,
    descendants,
    memory,
    parse_kb,
    parse_stat,
    snapshot,
    thread_keys,
)
from bench.tree import label_processes


def test_stat_with_spaces_and_parentheses_in_the_name() -> None:
    rest = " ".join(["S", *["0"] * 10, "150", "50", *["0"] * 30])
    comm, seconds = parse_stat(f"123 (a b) (c)) {rest}")
    assert comm == "a b) (c)"
    assert seconds == pytest.approx(200 * TICK_S)


def test_kb_fields_in_mb() -> None:
    text = "Name:\tx\nVmRSS:\t   2048 kB\n"
    assert parse_kb(text, "VmRSS") == 2.0
    assert parse_kb(text, "Pss") == 0.0


def test_threads_of_one_name_are_ranked_in_creation_order() -> None:
    keys = thread_keys([("eegpi", 1.0), ("eegpi", 2.0), ("gc", 3.0), ("eegpi", 4.0)])
    assert keys == [("eegpi#0", 1.0), ("eegpi#1", 2.0), ("gc", 3.0), ("eegpi#2", 4.0)]


def test_a_process_born_in_the_window_counts_from_zero() -> None:
    before = TreeSnapshot(process={1: 10.0}, thread={(1, "a"): 10.0})
    after = TreeSnapshot(process={1: 11.0, 2: 0.5}, thread={(1, "a"): 11.0, (2, "b"): 0.5})
    cpu = cpu_share(before, after, wall_s=2.0)
    assert cpu.process == {1: 0.5, 2: 0.25}
    assert cpu.total == 0.75
    assert cpu.thread == {(1, "a"): 0.5, (2, "b"): 0.25}


def test_descendants_and_memory_of_a_real_tree() -> None:
    code = (
        "import subprocess, sys; "
        "c = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], "
        "stdin=subprocess.PIPE); print(c.pid, flush=True); sys.stdin.read(); "
        "c.stdin.close(); c.wait()"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert descendants(parent.pid) == [parent.pid, child]
        snap = snapshot([parent.pid, child])
        assert set(snap.process) == {parent.pid, child}
        assert {pid for pid, _ in snap.thread} == {parent.pid, child}
        assert memory(child).rss > 0 and memory(child).pss > 0
    finally:
        assert parent.stdin is not None
        parent.stdin.close()
        parent.wait(30)
    assert memory(parent.pid).rss == 0.0  # gone: zeros, no error


def test_roles_from_command_lines() -> None:
    cmd = {
        10: "eegpi serve --mock",
        11: "python -c from multiprocessing.resource_tracker import main;main(5)",
        12: "python -c from multiprocessing.forkserver import main; main(...)",
        13: "python -c from multiprocessing.forkserver import main; main(...)",
        14: "python -c from multiprocessing.spawn import spawn_main; spawn_main(pipe_handle=9)",
    }
    parents = {11: 10, 12: 10, 13: 12, 14: 10}
    assert label_processes(10, cmd, parents) == {
        10: "daemon",
        11: "resource tracker",
        12: "forkserver",
        13: "acquisition",
        14: "acquisition 2",
    }
