"""A log line per period at most, for conditions a peer (or a bug) can repeat in a loop."""

from __future__ import annotations

import time

__all__ = ["LogThrottle"]


class LogThrottle:
    """Lets one line through per ``period`` seconds and counts the ones it held back."""

    def __init__(self, period: float = 60.0) -> None:
        self._period = period
        self._next = float("-inf")
        self.suppressed = 0

    def allow(self) -> int | None:
        """None to stay quiet, else how many were held back since the last line."""
        now = time.monotonic()
        if now < self._next:
            self.suppressed += 1
            return None
        self._next = now + self._period
        held, self.suppressed = self.suppressed, 0
        return held
