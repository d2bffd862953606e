"""Keep the acquisition process's pages in RAM, so that no frame read waits for a page fault.

The ADS1299 has no FIFO: a reader held off the CPU for longer than one sample period loses a
conversion. Under memory pressure the kernel pages out what a process has not touched lately,
and a Pi's swap and program files live on an SD card, where bringing a page back in takes
milliseconds (Raspberry Pi OS keeps a swap file or zram swap by default). The reader touches
its interpreter's code and objects once a period, which is not "lately" enough to keep them
resident when another program wants the memory. ``mlockall`` takes every page of the
acquisition process out of reclaim, as real-time programs do (cyclictest's ``-m``).

``MCL_ONFAULT`` locks pages as they are touched instead of reading in every mapping at once,
so the resident size stays what the process uses (a Python process maps far more than it
touches). ``MCL_FUTURE`` also locks what is mapped later (the ring of the next run, heap
growth); it is asked for only where the lock limit is unlimited or ``CAP_IPC_LOCK`` is held,
because under a finite ``RLIMIT_MEMLOCK`` it makes a later allocation past the limit fail.
Without either, ``MCL_CURRENT`` alone still needs the limit to cover the whole address space
(about 260 MB here), which the usual 8 MiB default does not: the process then runs unlocked and
says what to set (systemd: ``LimitMEMLOCK=infinity``, which the shipped unit has).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
from dataclasses import dataclass

__all__ = ["MemoryLock", "lock_memory"]

MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4
_CAP_IPC_LOCK = 14


@dataclass(frozen=True)
class MemoryLock:
    """What :func:`lock_memory` achieved."""

    locked: bool
    """Every page the process touches stays in RAM."""
    future: bool
    """Mappings made later (the next run's ring) are locked too."""
    reason: str = ""
    """Why not, and what to set, when ``locked`` is False."""


def lock_memory() -> MemoryLock:
    """Lock the calling process's pages as they are touched (``mlockall``).

    Called at every start, after the run's ring is mapped: without ``MCL_FUTURE`` a new run's
    ring would otherwise stay unlocked. Never raises: a process that cannot lock runs as before.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    future = soft == resource.RLIM_INFINITY or _has_cap_ipc_lock()
    flags = MCL_CURRENT | MCL_ONFAULT | (MCL_FUTURE if future else 0)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        failed = libc.mlockall(flags) != 0
        err = ctypes.get_errno()
    except (OSError, AttributeError) as exc:
        return MemoryLock(False, False, f"mlockall is unavailable here ({exc})")
    if not failed:
        return MemoryLock(True, future)
    limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"
    return MemoryLock(
        False,
        False,
        f"mlockall failed: {os.strerror(err)} (RLIMIT_MEMLOCK {limit}, less than the process "
        "maps); allow it with systemd's LimitMEMLOCK=infinity or `ulimit -l unlimited`",
    )


def _has_cap_ipc_lock() -> bool:
    """CAP_IPC_LOCK in the effective set: locking is then not bounded by the limit."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_IPC_LOCK & 1)
    except (OSError, ValueError):
        pass
    return False
