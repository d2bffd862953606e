"""A bare SPI host in front of one emulated chip (no driver), for datasheet-level tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from eegpi.ads1299.commands import rreg, wreg
from eegpi.ads1299.frames import decode_frames
from eegpi.hardware.config import EmulatorConfig
from eegpi.hardware.emulator.chip import Ads1299Emulator
from eegpi.hardware.emulator.clock import VirtualClock

SPEED = 4_000_000
DATA_SPEED = 8_000_000
TCLK_NS = 1e9 / 2.048e6
T_POR_S = 2**18 / 2.048e6


class Host:
    """Drives :class:`Ads1299Emulator` byte by byte in virtual time, like a spidev user."""

    def __init__(self, chips: int = 1, **cfg: Any) -> None:
        self.clock = VirtualClock()
        self.chip = Ads1299Emulator(EmulatorConfig(realtime=False, **cfg), chips, self.clock)
        self.chips = chips

    def power_up(self) -> None:
        """Wait tPOR, as the datasheet asks before the first command."""
        self.clock.sleep(T_POR_S)

    def xfer(
        self, data: bytes | list[int], speed: int = SPEED, delay_us: float = 2, **kw: Any
    ) -> list[int]:
        return self.chip.transfer(list(data), speed, delay_us, **kw)

    def cmd(self, opcode: int, delay_us: float = 2) -> None:
        self.xfer([opcode], delay_us=delay_us)

    def rreg(self, address: int, count: int = 1) -> list[int]:
        return self.xfer(rreg(address, count))[2:]

    def wreg(self, address: int, *values: int) -> None:
        self.xfer(wreg(address, values))

    def edge_ns(self, index: int) -> int:
        """When conversion ``index`` of the current run completes (DRDY falls)."""
        t = self.chip.next_edge_ns(self.chip.run_id, index)
        assert t is not None, f"conversion {index} never completes"
        return t

    def at(self, t_ns: float) -> None:
        self.clock.sleep_until(int(t_ns))

    def frame(self) -> list[int]:
        """Clock out one frame in RDATAC (zeros in)."""
        return self.xfer([0] * 27 * self.chips, DATA_SPEED, 0)

    def counts(self, raw: list[int]) -> npt.NDArray[np.int32]:
        frames = np.array([raw], dtype=np.uint8)
        return decode_frames(frames, self.chips, 8).counts[0]

    def status(self, raw: list[int]) -> int:
        return int(decode_frames(np.array([raw], dtype=np.uint8), self.chips, 8).status[0, 0])

    def rules(self) -> list[str]:
        return [v.rule for v in self.chip.violations]
