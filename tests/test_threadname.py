"""Threads carry their names into the kernel's view, where top -H and bench.tree read them."""

from __future__ import annotations

import threading
from pathlib import Path

from eegpi.threadname import name_this_thread


def _comm() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


def test_a_thread_is_named_for_the_kernel_and_long_names_are_cut() -> None:
    seen: list[str] = []

    def run(name: str) -> None:
        name_this_thread(name)
        seen.append(_comm())

    for name in ("pipe:default", "pipe:a-very-long-pipeline-name"):
        t = threading.Thread(target=run, args=(name,))
        t.start()
        t.join()
    assert seen == ["pipe:default", "pipe:a-very-lon"]
