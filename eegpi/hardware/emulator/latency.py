"""Interrupt latency of the emulated DRDY edge stamps (``EmulatorConfig.drdy_jitter_us``).

A kernel stamps a DRDY edge when its interrupt handler runs, a little after the edge itself;
how much later varies from edge to edge. The emulator adds that lateness to each stamp, drawn
from the seed, the run and the conversion number, so a run is reproducible and tests can compare
the stamps with the true conversion times.
"""

from __future__ import annotations

__all__ = ["stamp_latency_ns"]

_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of ``x``."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


def stamp_latency_ns(jitter_ns: int, seed: int, run_id: int, conversion: int) -> int:
    """How late the stamp of ``conversion``'s edge is: uniform over 0..``jitter_ns``."""
    if jitter_ns <= 0:
        return 0
    key = (seed * 0x9E3779B97F4A7C15 + run_id * 0xD1B54A32D192ED03 + conversion) & _MASK
    return _mix(key) % (jitter_ns + 1)
