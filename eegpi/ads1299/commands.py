"""ADS1299 opcodes and the RREG/WREG byte encodings."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from eegpi.ads1299.registers import REGISTER_COUNT

__all__ = ["Opcode", "rreg", "wreg"]


class Opcode(enum.IntEnum):
    """Single-byte commands; RREG/WREG carry the start address in their low 5 bits."""

    WAKEUP = 0x02
    STANDBY = 0x04
    RESET = 0x06
    START = 0x08
    STOP = 0x0A
    RDATAC = 0x10
    SDATAC = 0x11
    RDATA = 0x12
    RREG = 0x20
    WREG = 0x40


def _check_span(start: int, count: int) -> None:
    if count < 1 or count > 32:
        raise ValueError(f"register count {count} is not 1..32")
    if not 0 <= start < REGISTER_COUNT or start + count > REGISTER_COUNT:
        raise ValueError(
            f"registers 0x{start:02X}..0x{start + count - 1:02X} are outside 0x00..0x17"
        )


def rreg(start: int, count: int) -> bytes:
    """Command bytes plus ``count`` dummy bytes that clock the register values out."""
    _check_span(start, count)
    return bytes((Opcode.RREG | start, count - 1)) + bytes(count)


def wreg(start: int, values: Sequence[int]) -> bytes:
    """Command bytes followed by the values to write, first register first."""
    _check_span(start, len(values))
    return bytes((Opcode.WREG | start, len(values) - 1, *values))
