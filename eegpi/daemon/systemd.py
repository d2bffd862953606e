"""sd_notify without dependencies: READY, RELOADING, STATUS, STOPPING and watchdog pings.

Does nothing when the daemon does not run under systemd (no NOTIFY_SOCKET), so the same code
runs in a terminal, in tests and as a service. The fields are those of sd_notify(3).
"""

from __future__ import annotations

import logging
import os
import socket
import time

__all__ = ["Notifier"]

log = logging.getLogger("eegpi.systemd")

_STATUS_MAX = 400
"""systemctl status shows one line; a long error message is cut here."""


class Notifier:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):  # abstract namespace socket
            addr = "\0" + addr[1:]
        self._addr = addr
        self.is_ready = False
        """READY=1 was sent (and no RELOADING=1 since)."""

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def notify(self, *fields: str) -> None:
        if not self._addr:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), self._addr)
        except OSError as exc:
            log.warning("sd_notify to %r failed: %s", self._addr, exc)

    def ready(self, status: str) -> None:
        self.is_ready = True
        self.notify("READY=1", _status(status))

    def reloading(self) -> None:
        """Start of a reload; systemd >= 253 ignores RELOADING=1 without MONOTONIC_USEC."""
        self.is_ready = False
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading pipelines")

    def status(self, status: str) -> None:
        self.notify(_status(status))

    def extend_timeout(self, seconds: float) -> None:
        """Before READY: keep ``systemctl start`` waiting at least ``seconds`` from now."""
        self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    @staticmethod
    def watchdog_interval() -> float | None:
        """Seconds between pings (half the configured WatchdogSec), None when disabled."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 1e6 / 2
        except ValueError:
            return None


def _status(text: str) -> str:
    line = " ".join(text.split())  # one line: a newline would end the field
    if len(line) > _STATUS_MAX:
        line = line[: _STATUS_MAX - 3] + "..."
    return f"STATUS={line}"
