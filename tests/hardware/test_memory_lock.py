"""The acquisition process keeps its pages in RAM: no frame read waits for a page fault."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hw_helpers import mock_config

from bench.realtime import SPECIAL_MAPPINGS, page_out
from eegpi.ads1299.settings import chain_settings
from eegpi.hardware.process import AcquisitionProcess

_ADDRESSES = re.compile(r"[0-9a-f]+-[0-9a-f]+ ")


@pytest.fixture
def proc() -> Iterator[AcquisitionProcess]:
    p = AcquisitionProcess(mock_config(acquisition="process"))
    try:
        p.open()
        p.configure(
            chain_settings(
                sample_rate=1000, gain=24, input="normal", srb2=False, chips=1, channels_per_chip=8
            )
        )
        yield p
    finally:
        p.close()
        assert multiprocessing.active_children() == []


def _mappings(pid: int) -> list[tuple[str, list[str]]]:
    """Each mapping of ``pid`` (its /proc/PID/smaps header) with its VmFlags."""
    out: list[tuple[str, list[str]]] = []
    header = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if line.startswith("VmFlags:"):
            out.append((header, line.split()[1:]))
        elif _ADDRESSES.match(line):
            header = line
    return out


def _acquire(p: AcquisitionProcess, frames: int) -> None:
    got = 0
    while got < frames:
        assert p.wait(1, 10.0) >= 1
        got += len(p.take())


def _major_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[9])


def test_every_page_of_the_acquisition_process_is_locked_in_every_run(
    proc: AcquisitionProcess,
) -> None:
    if resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] != resource.RLIM_INFINITY and (
        os.geteuid() != 0
    ):
        pytest.skip("needs LimitMEMLOCK=infinity (ulimit -l unlimited) or root")
    for _run in range(2):  # the second run maps a new ring, which must be locked too
        proc.start(1000, lossless=True)
        _acquire(proc, 200)
        assert proc.memory_locked
        assert proc.pid is not None
        unlocked = [
            header
            for header, flags in _mappings(proc.pid)
            if "lo" not in flags and not any(name in header for name in SPECIAL_MAPPINGS)
        ]
        assert unlocked == []
        proc.stop()


def test_memory_pressure_cannot_page_the_reader_out(proc: AcquisitionProcess) -> None:
    """The kernel's reclaim, forced on every mapping, takes nothing from the acquisition
    process, and reading on costs it no major fault (a read from swap or an SD card)."""
    if resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] != resource.RLIM_INFINITY and (
        os.geteuid() != 0
    ):
        pytest.skip("needs LimitMEMLOCK=infinity (ulimit -l unlimited) or root")
    proc.start(1000, lossless=True)
    _acquire(proc, 200)
    assert proc.pid is not None
    before = _major_faults(proc.pid)
    accepted, refused = page_out(proc.pid)
    if refused.startswith("pidfd_open"):
        pytest.skip(refused)
    assert accepted == 0
    _acquire(proc, 2000)
    assert _major_faults(proc.pid) == before


_PROBE = textwrap.dedent(
    """
    import json
    from eegpi.hardware.memlock import lock_memory
    got = lock_memory()
    print(json.dumps({"locked": got.locked, "future": got.future, "reason": got.reason}))
    """
)


def _probe(limit: int) -> dict[str, object]:
    """lock_memory() in a process without CAP_IPC_LOCK whose RLIMIT_MEMLOCK is ``limit``."""
    command = [sys.executable, "-c", _PROBE]
    if os.geteuid() == 0:  # root may lock whatever the limit: take the capability away
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) is needed to drop CAP_IPC_LOCK as root")
        command = [setpriv, "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", *command]

    def limit_memlock() -> None:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (limit, limit))

    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_memlock,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_under_a_small_lock_limit_it_runs_unlocked_and_says_what_to_set() -> None:
    got = _probe(64 * 1024)
    assert got["locked"] is False and got["future"] is False
    reason = str(got["reason"])
    assert "RLIMIT_MEMLOCK 64 KiB" in reason and "LimitMEMLOCK=infinity" in reason


def test_an_unlimited_lock_limit_locks_later_mappings_too() -> None:
    """The systemd unit's case: LimitMEMLOCK=infinity, no capability."""
    if resource.getrlimit(resource.RLIMIT_MEMLOCK)[1] != resource.RLIM_INFINITY:
        try:  # root with CAP_SYS_RESOURCE may raise it; a container often may not
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY,) * 2)
        except (ValueError, OSError):
            pytest.skip("the hard RLIMIT_MEMLOCK here is finite and cannot be raised")
    assert _probe(resource.RLIM_INFINITY) == {"locked": True, "future": True, "reason": ""}
