"""Named segments and semaphores shared with the acquisition process, and their names."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from eegpi.hardware.shm import SHM_DIR, NamedSemaphore, Segment, remove_stale


def _dead_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def test_a_segment_outlives_its_name() -> None:
    seg = Segment.create(4096)
    other = Segment.attach(seg.name)
    try:
        assert (SHM_DIR / seg.name).exists() and other.size == 4096
        seg.unlink()
        seg.unlink()  # idempotent
        assert not (SHM_DIR / seg.name).exists()
        seg.buf[:3] = b"abc"  # both mappings stay, and share the bytes
        assert bytes(other.buf[:3]) == b"abc"
        with pytest.raises(FileNotFoundError):
            Segment.attach(seg.name)
    finally:
        other.close()
        seg.close()


def test_a_semaphore_opens_by_pickle_and_outlives_its_name() -> None:
    sem = NamedSemaphore(0)
    path = SHM_DIR / f"sem.{sem.name.lstrip('/')}"
    assert path.exists()
    twin = pickle.loads(pickle.dumps(sem))
    sem.unlink()
    sem.unlink()
    assert not path.exists()
    twin.release()
    assert sem.acquire(True, 1.0)  # the same semaphore
    assert not sem.acquire(False)
    with pytest.raises(FileNotFoundError):
        pickle.loads(pickle.dumps(sem))


def test_a_lock_is_a_semaphore_of_one() -> None:
    lock = NamedSemaphore(1, 1)
    try:
        assert lock.acquire(False) and not lock.acquire(False)
        lock.release()
        with pytest.raises(ValueError):
            lock.release()
            lock.release()
    finally:
        lock.unlink()


def test_stale_names_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    names = [
        f"eegpi-ring-{dead}-0123456789ab",
        f"sem.eegpi-{dead}-0123456789ab",
        f"eegpi-ring-{alive}-0123456789ab",
        f"sem.eegpi-{alive}-0123456789ab",
        "sem.mp-abcdefgh",  # not ours
        "eegpi-ring-0123456789ab",  # no PID: cannot tell whose
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    removed = remove_stale(tmp_path)
    assert sorted(removed) == sorted(names[:2])
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(names[2:])
    assert remove_stale(tmp_path / "missing") == []
