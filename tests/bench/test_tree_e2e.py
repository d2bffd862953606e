"""bench.tree against a real `eegpi serve --mock`: the whole tree is found and labelled, the
clients run in their own process and report what they received."""

from __future__ import annotations

import os

from bench.tree import EegpiServer, measure


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
