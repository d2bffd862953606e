"""Datasheet timing rules the emulated ADS1299 checks, and the record of their breaches.

A real chip does not refuse a transfer that breaks a timing rule: its logic does whatever it
does with it, and on a Raspberry Pi (whose kernel adds slack around every transfer) that is
usually the right thing. The emulator does the same and keeps a record: each breach becomes a
:class:`Violation` with its rule, time and bytes, counted per rule and logged once per rule.
With ``EmulatorConfig.timing: raise`` the first breach raises :class:`TimingViolationError`
instead, for tests of a driver that must keep every rule (ours).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass

from eegpi.exc import HardwareError

__all__ = ["RULES", "TimingViolationError", "Violation", "ViolationLog"]

log = logging.getLogger("eegpi.hardware.emulator")

RULES: dict[str, str] = {
    "tSCCS": "CS went high less than 4 tCLK after the last SCLK of a command",
    "tSDECODE": "bytes of a multi-byte command, or consecutive commands, less than 4 tCLK apart",
    "tCSSC": "SCLK started less than 6 ns (17 ns with DVDD below 2.7 V) after CS fell",
    "tSCLK": "SCLK faster than 20 MHz (15 MHz with DVDD below 2.7 V)",
    "tUPDATE": "conversion data clocked out within 4 tCLK before DRDY falls (output reload)",
    "RDATAC keep-out": "RDATAC decoded within 4 tCLK of a DRDY falling edge",
    "tPOR": "a command sent within 2^18 tCLK of power-up",
    "reset time": "a command sent within 18 tCLK of a reset (the chip ignores it)",
    "tRST": "RESET pin held low for less than 2 tCLK",
    "SPI mode": "SPI mode other than 1 (CPOL 0, CPHA 1)",
}
"""Every rule a :class:`Violation` can name, with what breaks it (ads1299.md section 1.2)."""

DEFAULT_LIMIT = 1000
"""Violations kept (the oldest go first); the per-rule counts keep counting."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One breach of a datasheet timing rule."""

    rule: str
    """A key of :data:`RULES`."""
    time_ns: int
    """The emulator clock (CLOCK_MONOTONIC, or virtual time) when the transfer began."""
    data: bytes
    """The bytes the host sent in that transfer (DIN), or b"" for a pin change."""
    detail: str
    """What was measured against what was needed, e.g. "CS hold 0 ns < 1953 ns"."""

    def __str__(self) -> str:
        sent = f" sending {self.data.hex(' ')}" if self.data else ""
        return f"{self.rule} ({RULES.get(self.rule, '?')}): {self.detail}{sent}"


class TimingViolationError(HardwareError):
    """Raised by an emulator in ``timing: raise`` mode at the first violation."""

    def __init__(self, violation: Violation | str) -> None:
        text = violation if isinstance(violation, str) else f"ADS1299 timing violation: {violation}"
        super().__init__(text)
        self.violation = violation if isinstance(violation, Violation) else None


class ViolationLog:
    """Bounded record of violations with exact counts per rule (thread-safe)."""

    def __init__(self, raise_first: bool, limit: int = DEFAULT_LIMIT) -> None:
        self.raise_first = raise_first
        self._records: deque[Violation] = deque(maxlen=limit)
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, rule: str, time_ns: int, data: bytes | list[int], detail: str) -> None:
        """Record (and log the first of its rule), or raise in ``raise`` mode."""
        violation = Violation(rule, int(time_ns), bytes(data), detail)
        with self._lock:
            self._records.append(violation)
            self._counts[rule] += 1
            first = self._counts[rule] == 1
        if first:
            log.warning(
                "emulated ADS1299: timing violation %s; further %s violations are counted, "
                "not logged",
                violation,
                rule,
            )
        if self.raise_first:
            raise TimingViolationError(violation)

    @property
    def records(self) -> list[Violation]:
        """The newest violations, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def counts(self) -> dict[str, int]:
        """Violations per rule since power-up (not bounded)."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._counts.clear()
