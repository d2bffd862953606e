"""Named shared memory and semaphores between the daemon and its acquisition process, whose
names are removed as soon as both processes hold them.

A POSIX name (``/dev/shm/eegpi-...``, ``/dev/shm/sem.eegpi-...``) is only needed until the
other process has opened it; after that the mapping and the semaphore live as long as someone
holds them, and nothing is left behind whoever is killed. ``multiprocessing``'s own
``SharedMemory`` and ``Lock`` keep their names for their whole life and start a resource-tracker
process to remove them after a crash; these do not. Names carry the creating process's PID, so
the few that a process killed between creating and handing them over leaves behind are removed
by :func:`remove_stale` (the next acquisition process started on the machine calls it).
"""

from __future__ import annotations

import _multiprocessing  # type: ignore[import-not-found]  # the C side of multiprocessing
import contextlib
import errno
import mmap
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["SHM_DIR", "NamedSemaphore", "Segment", "remove_stale"]

SHM_DIR = Path("/dev/shm")
"""Where Linux keeps POSIX shared memory (``shm_open``) and named semaphores (``sem.NAME``)."""
_PREFIX = "eegpi-"
_STALE = re.compile(r"^(?:sem\.)?eegpi-(?:ring-)?(\d+)-[0-9a-f]+$")
_SEMAPHORE = 1  # _multiprocessing's kind for a counting semaphore (a Lock is one of max 1)


def _new_name(kind: str = "") -> str:
    return f"{_PREFIX}{kind}{os.getpid()}-{secrets.token_hex(6)}"


class NamedSemaphore:
    """A POSIX named semaphore a child can open from its pickled form (at any time, not only
    while spawning), with the ``acquire``/``release`` of ``multiprocessing.Semaphore``."""

    acquire: Callable[..., bool]
    """``acquire(block=True, timeout=None) -> bool``: the C method itself, bound once (a
    Python wrapper would add a call to every wait and every ring lock, several a tick)."""
    release: Callable[[], None]

    def __init__(self, value: int = 0, maxvalue: int | None = None) -> None:
        limit = _multiprocessing.SemLock.SEM_VALUE_MAX if maxvalue is None else maxvalue
        for _ in range(100):
            name = "/" + _new_name()
            try:
                self._sem = _multiprocessing.SemLock(_SEMAPHORE, value, limit, name, False)
            except FileExistsError:
                continue
            break
        else:
            raise FileExistsError(errno.EEXIST, "no free semaphore name")
        self.name = name
        self._bind()

    def __getstate__(self) -> tuple[Any, ...]:
        sem = self._sem
        return (sem.handle, sem.kind, sem.maxvalue, self.name)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._sem = _multiprocessing.SemLock._rebuild(*state)
        self.name = state[3]
        self._bind()

    def _bind(self) -> None:
        self.acquire = self._sem.acquire
        self.release = self._sem.release

    def unlink(self) -> None:
        """Remove the name (the semaphore stays usable for whoever opened it); idempotent."""
        with contextlib.suppress(FileNotFoundError):
            _multiprocessing.sem_unlink(self.name)


class Segment:
    """A shared-memory mapping by name: :meth:`create` or :meth:`attach`, then :meth:`unlink`
    the name once both sides have it, :meth:`close` to unmap."""

    def __init__(self, name: str, mapping: mmap.mmap) -> None:
        self.name = name
        self._mmap = mapping
        self.buf = memoryview(mapping)

    @classmethod
    def create(cls, size: int) -> Segment:
        """A new zeroed segment of ``size`` bytes.

        Raises:
            OSError: /dev/shm missing, full or not writable.
        """
        for _ in range(100):
            name = _new_name("ring-")
            try:
                fd = os.open(SHM_DIR / name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            break
        else:
            raise FileExistsError(errno.EEXIST, "no free segment name")
        try:
            os.ftruncate(fd, size)
            return cls(name, mmap.mmap(fd, size))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(SHM_DIR / name)
            raise
        finally:
            os.close(fd)

    @classmethod
    def attach(cls, name: str) -> Segment:
        """Map the segment another process created (its whole size)."""
        fd = os.open(SHM_DIR / name, os.O_RDWR)
        try:
            return cls(name, mmap.mmap(fd, os.fstat(fd).st_size))
        finally:
            os.close(fd)

    @property
    def size(self) -> int:
        return len(self._mmap)

    def unlink(self) -> None:
        """Remove the name (the mappings stay); idempotent."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(SHM_DIR / self.name)

    def close(self) -> None:
        """Unmap (every view of :attr:`buf` must have been released)."""
        self.buf.release()
        self._mmap.close()


def remove_stale(directory: Path = SHM_DIR) -> list[str]:
    """Remove the segment and semaphore names of eegpi processes that no longer run; returns
    the names removed."""
    removed: list[str] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _STALE.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
