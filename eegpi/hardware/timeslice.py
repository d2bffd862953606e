"""A short scheduler time slice for the acquisition thread, which needs no privilege.

Linux's EEVDF scheduler (6.6 on) lets a task that is running finish its slice (about 3 ms)
before a task that wakes up runs, whatever their nice values: a DRDY reader woken behind a
busy process can be 3-4 ms late, a whole period at 250 SPS. From 6.12 a task may ask for a
shorter slice (``sched_setattr`` with ``sched_runtime``, 0.1-100 ms, for ``SCHED_OTHER``); a
task that wakes with a shorter slice than the running one preempts it at once
(``PREEMPT_SHORT``). Unlike nice -15 or SCHED_FIFO this needs no privilege. Older kernels accept
the call and ignore the value.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["SHORT_SLICE_NS", "request_short_slice"]

SHORT_SLICE_NS = 100_000
"""The shortest slice the kernel grants: the reader runs for tens of microseconds a frame."""
_SCHED_OTHER = 0
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "armv7l": 380, "armv6l": 380, "i686": 351}


class _SchedAttr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
    ]


def request_short_slice(slice_ns: int = SHORT_SLICE_NS) -> str | None:
    """Ask for a ``slice_ns`` slice for the calling thread (``SCHED_OTHER``, its nice value
    kept); returns None when granted, else why not."""
    number = _SYS_SCHED_SETATTR.get(platform.machine())
    if number is None:
        return f"no sched_setattr number known for {platform.machine()}"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        attr = _SchedAttr(
            size=ctypes.sizeof(_SchedAttr),
            sched_policy=_SCHED_OTHER,
            sched_nice=os.getpriority(os.PRIO_PROCESS, 0),  # Linux: 0 is this thread
            sched_runtime=slice_ns,
        )
        if libc.syscall(number, 0, ctypes.byref(attr), 0) != 0:
            err = ctypes.get_errno()
            return f"sched_setattr: {os.strerror(err)}"
    except (OSError, AttributeError) as exc:
        return str(exc)
    return None
