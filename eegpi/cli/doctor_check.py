"""One finding of ``eegpi doctor``: what was looked at, how it stands, and how to fix it."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Status", "run_tool"]

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    """One line the user can act on; empty when there is nothing to do."""


def run_tool(*argv: str, timeout: float = 5.0) -> str | None:
    """Standard output of a system tool, or None when it is missing, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
