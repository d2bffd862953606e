"""sd_notify without dependencies: READY, STATUS, STOPPING and watchdog pings.

Does nothing when the daemon does not run under systemd (no NOTIFY_SOCKET), so the same code
runs in a terminal, in tests and as a service.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["Notifier"]

log = logging.getLogger("eegpi.systemd")


class Notifier:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):  # abstract namespace socket
            addr = "\0" + addr[1:]
        self._addr = addr

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
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

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
