"""Thread names the operating system shows (``top -H``, ``ps -L``, /proc/PID/task/*/comm).

Python names its threads only for itself; the kernel keeps the process name for every thread,
so a busy thread of the daemon could not be told from another without a debugger. Linux only
(``prctl(PR_SET_NAME)``); elsewhere nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["name_this_thread"]

_PR_SET_NAME = 15
_MAX = 15
"""The kernel keeps 15 bytes of a thread's name."""


def name_this_thread(name: str) -> None:
    """Give the calling thread ``name`` (cut to 15 bytes) in the kernel's view."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode("utf-8", "replace")[:_MAX], 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl: a name is a convenience, not a need
        pass
