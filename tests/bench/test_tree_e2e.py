"""bench.tree against a real `eegpi serve --mock`: the whole tree is found and labelled, the
clients run in their own process and report what they received."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.tree import REPO, EegpiServer, measure


def test_measure_reads_the_whole_tree_of_a_real_daemon() -> None:
    r = measure(EegpiServer(), clients=2, seconds=1.0, warmup=0.2)
    roles = set(r.labels.values())
    assert {"daemon", "acquisition"} <= roles, r.labels
    assert all(m.rss > 0 and m.pss > 0 for m in r.mem.values())
    assert os.getpid() not in r.labels  # the bench and its clients are not in the tree
    assert r.report["clients"] == 2
    assert r.report["messages"] > 0
    assert len(r.report["latencies_ms"]) == r.report["messages"]
    assert r.first_data_s > 0
    assert r.cpu.total == sum(r.cpu.process.values())
    assert {label.split("/")[0] for _, label in r.cpu.thread} <= roles


def test_the_clients_subscribe_at_the_latency_the_contender_names() -> None:
    r = measure(EegpiServer(max_latency_ms=50), clients=2, seconds=1.0, warmup=0.5)
    assert r.name == "eegpi (50 ms clients)"
    # about 12 samples a message at 50 ms, against 2-3 at the default 10 ms
    assert r.report["messages"] > 0
    assert r.report["samples"] / r.report["messages"] >= 8, r.report


def test_a_config_names_the_device_instead_of_the_emulator(tmp_path: Path) -> None:
    """On a Pi, ``--config /etc/eegpi/eegpi.yaml`` measures the tree on its own chip; here the
    config names the emulator, so the whole path runs without ``--mock``."""
    config = tmp_path / "eegpi.yaml"
    config.write_text("device:\n  backend: mock\n  reader: python\n")
    server = EegpiServer(config=config)
    command = server.command(tmp_path)
    assert "--mock" not in command
    assert command[command.index("--config") + 1] == str(config)
    assert EegpiServer().command(tmp_path).count("--mock") == 1
    r = measure(server, clients=1, seconds=1.0, warmup=0.2)
    assert {"daemon", "acquisition"} <= set(r.labels.values()), r.labels
    assert r.report["messages"] > 0


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited
    except FileNotFoundError:
        return True


def test_a_killed_bench_leaves_no_server_behind() -> None:
    code = (
        "from bench.tree import EegpiServer; r = EegpiServer().start(); "
        "print(r.proc.pid, flush=True); import sys; sys.stdin.read()"
    )
    bench = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert bench.stdout is not None
    server = int(bench.stdout.readline())
    bench.kill()
    bench.wait()
    deadline = time.monotonic() + 30.0
    while not _gone(server):
        if time.monotonic() > deadline:
            os.kill(server, signal.SIGKILL)
            raise AssertionError("the server outlived the bench that started it")
        time.sleep(0.05)  # polling /proc for the exit, bounded by the deadline
