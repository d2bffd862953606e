"""The ADS1299 driver: power-up, identification, verified register writes, conversion control.

Sequence (ads1299.md section 8): wait tPOR, reset (pin or command), SDATAC *before* any
register access (the chip powers up in RDATAC, where RREG/WREG are silently ignored), check the
ID, write every register and read it back, then RDATAC + START and one frame read per DRDY.
Register traffic runs at <= 4 MHz with CS held 2 us after the last byte (tSDECODE, tSCCS).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eegpi.ads1299.commands import Opcode, rreg, wreg
from eegpi.ads1299.frames import frame_size
from eegpi.ads1299.registers import (
    CONFIG3_BIAS_STAT,
    CONFIG4_PD_LOFF_COMP,
    REGISTER_COUNT,
    REGISTERS,
    Reg,
)
from eegpi.ads1299.settings import ChipSettings
from eegpi.exc import HardwareError
from eegpi.hardware.base import HardwareLink, SpiBus
from eegpi.status import DeviceReport, LeadOffChannel, RegisterValue

__all__ = [
    "CHIP_NAMES",
    "Ads1299",
    "ChipIdentity",
    "DeviceSnapshot",
    "device_report",
    "identify",
]

log = logging.getLogger("eegpi.hardware")

FCLK_HZ = 2.048e6
T_CLK_S = 1 / FCLK_HZ
T_POR_S = 2**18 * T_CLK_S
"""Power-on to first RESET (rev C; 100 ms failed 1 in 50 boots on E2E 480770)."""
T_RESET_S = 18 * T_CLK_S
T_REFERENCE_S = 0.150
"""Internal reference start-up after CONFIG3.PD_REFBUF is set."""
CS_HOLD_US = 2
"""CS low after the last byte: >= 4 tCLK (1.95 us), or the command can be lost."""
MAX_REGISTER_SPEED_HZ = 4_096_000
"""Back-to-back RREG/WREG bytes need 4 tCLK each: 8 bits / (4 tCLK) = 2 fCLK."""

CHIP_NAMES = {0x1E: "ADS1299", 0x1D: "ADS1299-6", 0x1C: "ADS1299-4"}
"""``id & 0x1F`` of the parts this driver supports (REV_ID bits 7:5 may change)."""
_CHANNELS = {0x1E: 8, 0x1D: 6, 0x1C: 4}


@dataclass(frozen=True)
class ChipIdentity:
    """What the ID register says."""

    id_register: int
    chip: str
    revision: int
    channels_per_chip: int


def identify(id_register: int, path: str) -> ChipIdentity:
    """Decode the ID register.

    Raises:
        HardwareError: not an ADS1299 family ID; the message names the path, the byte and the
            likely cause.
    """
    family = id_register & 0x1F
    if family in CHIP_NAMES:
        return ChipIdentity(id_register, CHIP_NAMES[family], id_register >> 5, _CHANNELS[family])
    if id_register == 0x00:
        cause = "is SPI enabled and the board wired (MISO, SCLK, CS), and is it powered?"
    elif id_register == 0xFF:
        cause = "MISO reads all ones: is the board powered and MISO connected?"
    elif id_register & 0xF8 in (0x90, 0xD0):
        cause = "that is an ADS1294/6/8 (ADS129x) ID, not an ADS1299; the register map differs"
    else:
        cause = "check the wiring, SPI mode 1 and a register SCLK <= 4 MHz"
    raise HardwareError(f"no ADS1299 on {path}: ID register read 0x{id_register:02X}; {cause}")


class ChainShape:
    """Channel and frame geometry of a chain, from the ID register and the chip count."""

    identity: ChipIdentity | None
    chips: int

    @property
    def channels_per_chip(self) -> int:
        return self.identity.channels_per_chip if self.identity else 8

    @property
    def channels(self) -> int:
        return self.chips * self.channels_per_chip

    @property
    def frame_len(self) -> int:
        return self.chips * frame_size(self.channels_per_chip)


class Ads1299(ChainShape):
    """One ADS1299 (or a daisy chain of ``chips``) behind a :class:`HardwareLink`, or two
    chips on their own chip-selects (``link.spi2``, a PiEEG-16).

    With two chip-selects every command goes to chip 2 first, then chip 1, so chip 2's
    conversions complete a few microseconds before chip 1's: a frame read at chip 1's DRDY
    (chip 1 then chip 2) gets the conversion of the same slot from both, and the two frames
    concatenated look like a two-chip daisy chain's to everything downstream.
    """

    def __init__(
        self,
        link: HardwareLink,
        *,
        chips: int = 1,
        register_speed_hz: int = 4_000_000,
        data_speed_hz: int = 8_000_000,
    ) -> None:
        if not 1 <= chips <= 4:
            raise ValueError(f"chips: {chips} is not 1..4")
        if link.spi2 is not None and chips != 2:
            raise ValueError(f"chips: {chips}; a board with two chip-selects has 2 chips")
        if register_speed_hz > MAX_REGISTER_SPEED_HZ:
            raise ValueError(
                f"spi_speed_hz: {register_speed_hz} is above {MAX_REGISTER_SPEED_HZ}, the fastest "
                "SCLK at which the ADS1299 decodes back-to-back register bytes"
            )
        self.link = link
        self.chips = chips
        self.register_speed_hz = register_speed_hz
        self.data_speed_hz = data_speed_hz
        self.identity: ChipIdentity | None = None
        self.registers = bytes(REGISTER_COUNT)
        """Register file of chip 1 as read back after the last configuration."""
        self.chip_registers: tuple[bytes, ...] = ()
        """Register file of each chip-select's chip, as read back after the last
        configuration (one entry for a daisy chain)."""
        self.settings: ChipSettings | None = None
        self.chip_settings: tuple[ChipSettings, ...] = ()
        """What each chip-select's chip was programmed with."""
        self._frame_out: list[int] = []
        self._started = False

    @property
    def path(self) -> str:
        return self.link.path

    # --- low level ---------------------------------------------------------------------------

    @property
    def chip_selects(self) -> int:
        """Chips that are programmed on their own (1 for a daisy chain)."""
        return 1 if self.link.spi2 is None else 2

    def _bus(self, chip: int) -> SpiBus:
        if chip == 0:
            return self.link.spi
        if chip == 1 and self.link.spi2 is not None:
            return self.link.spi2
        raise IndexError(f"chip {chip}: this board has chip-selects 0..{self.chip_selects - 1}")

    def command(self, opcode: Opcode) -> None:
        """Send one single-byte command with the CS hold it needs, to every chip-select (chip
        2 first)."""
        for chip in reversed(range(self.chip_selects)):
            self._bus(chip).transfer([int(opcode)], self.register_speed_hz, CS_HOLD_US)

    def read_registers(self, start: int, count: int, chip: int = 0) -> bytes:
        """RREG ``count`` registers from ``start`` of ``chip``'s chip-select (the first chip of
        a daisy chain answers)."""
        reply = self._bus(chip).transfer(rreg(start, count), self.register_speed_hz, CS_HOLD_US)
        return bytes(reply[2:])

    def write_register(self, address: int, value: int, chip: int = 0) -> None:
        """WREG one register of ``chip``'s chip-select and verify it by read-back.

        Raises:
            HardwareError: the read-back differs in a writable bit.
        """
        self._bus(chip).transfer(wreg(address, [value]), self.register_speed_hz, CS_HOLD_US)
        got = self.read_registers(address, 1, chip)[0]
        mask = REGISTERS[address].writable
        if (got ^ value) & mask:
            where = self.path if chip == 0 else f"chip {chip + 1} of {self.path}"
            raise HardwareError(
                f"register {REGISTERS[address].name} (0x{address:02X}) on {where} reads "
                f"0x{got:02X} after writing 0x{value:02X}; the chip may still be in RDATAC, or "
                "the SPI link is unreliable (wiring, SCLK too fast, mode not 1)"
            )

    # --- sequences ---------------------------------------------------------------------------

    def power_up(self) -> ChipIdentity:
        """Reset the chip into a known state and identify it.

        Raises:
            HardwareError: no ADS1299 answers (clear message with the ID byte read).
        """
        pins, clock = self.link.pins, self.link.clock
        if "pwdn" in pins.available:
            pins.set("pwdn", True)
        if "start" in pins.available:
            pins.set("start", False)  # the START command is used; the pin must stay low
        clock.sleep(T_POR_S)
        if "reset" in pins.available:
            pins.set("reset", False)
            clock.sleep(10e-6)  # tRST >= 2 tCLK
            pins.set("reset", True)
        else:
            self.command(Opcode.SDATAC)  # RESET is not decoded in RDATAC on strict parts
            self.command(Opcode.RESET)
        clock.sleep(T_RESET_S + 10e-6)
        self.command(Opcode.SDATAC)  # reset leaves the chip in RDATAC
        self.identity = identify(self.read_registers(Reg.ID, 1)[0], self.path)
        for chip in range(1, self.chip_selects):
            other = identify(self.read_registers(Reg.ID, 1, chip)[0], f"chip {chip + 1}")
            if other.channels_per_chip != self.identity.channels_per_chip:
                raise HardwareError(
                    f"chip {chip + 1} of {self.path} is an {other.chip}, chip 1 an "
                    f"{self.identity.chip}; both chips of a board must be the same part"
                )
        self.chip_registers = tuple(
            self.read_registers(0, REGISTER_COUNT, c) for c in range(self.chip_selects)
        )
        self.registers = self.chip_registers[0]
        self._frame_out = [0] * (self.frame_len // self.chip_selects)
        return self.identity

    def configure(self, settings: ChipSettings | Sequence[ChipSettings]) -> None:
        """Write and verify every register the settings define (chip must be stopped): one
        :class:`ChipSettings` for every chip, or one per chip-select.

        Raises:
            HardwareError: a register does not read back what was written.
            ValueError: per-chip settings on a daisy chain (its chips share CS and DIN), or
                settings for a part with another channel count.
        """
        if self.identity is None:
            self.power_up()
        per_chip = (settings,) if isinstance(settings, ChipSettings) else tuple(settings)
        if len(per_chip) == 1:
            per_chip = per_chip * self.chip_selects
        if len(per_chip) != self.chip_selects:
            raise ValueError(
                f"{len(per_chip)} chip settings for a board with {self.chip_selects} "
                "chip-select(s); chips of a daisy chain share CS and DIN and take one"
            )
        for one in per_chip:
            if len(one.channels) != self.channels_per_chip:
                raise ValueError(
                    f"settings describe {len(one.channels)} channels per chip but the "
                    f"{self.identity.chip if self.identity else 'chip'} has "
                    f"{self.channels_per_chip}"
                )
        if len({one.sample_rate for one in per_chip}) > 1:
            raise ValueError("every chip of a board must run at the same sample_rate")
        reference_was_on = [bool(regs[Reg.CONFIG3] & 0x80) for regs in self.chip_registers]
        for chip, one in enumerate(per_chip):
            for address, value in one.registers():
                self.write_register(address, value, chip)
                if address == Reg.CONFIG3 and value & 0x80 and not reference_was_on[chip]:
                    self.link.clock.sleep(T_REFERENCE_S)
        self.chip_registers = tuple(
            self.read_registers(0, REGISTER_COUNT, c) for c in range(self.chip_selects)
        )
        self.registers = self.chip_registers[0]
        self.chip_settings = per_chip
        self.settings = per_chip[0]

    def start(self) -> None:
        """Start conversions, then enter RDATAC; DRDY first falls after 4 tDR + 9 tCLK.

        START goes first (in RDATAC the chip still honours START, but ignores register access
        until SDATAC), and RDATAC is safe to send right after START because no DRDY can fall
        within the settling time.
        """
        if "start" in self.link.pins.available:
            self.link.pins.set("start", True)
        else:
            self.command(Opcode.START)
        self.command(Opcode.RDATAC)
        self._started = True

    def read_frame(self) -> list[int]:
        """Clock one frame of the chain out (zeros in, so no stray opcode is sent); with two
        chip-selects chip 1's frame, then chip 2's."""
        frame = self.link.spi.transfer(self._frame_out, self.data_speed_hz)
        if self.link.spi2 is not None:
            frame += self.link.spi2.transfer(self._frame_out, self.data_speed_hz)
        return frame

    def stop(self) -> None:
        """Leave RDATAC and stop conversions; safe when already stopped."""
        if not self._started:
            return
        self._started = False
        self.command(Opcode.SDATAC)
        if "start" in self.link.pins.available:
            self.link.pins.set("start", False)
        else:
            self.command(Opcode.STOP)

    def close(self) -> None:
        """Stop and release SPI and GPIO."""
        try:
            self.stop()
        finally:
            self.link.close()

    # --- reporting ---------------------------------------------------------------------------

    def snapshot(self) -> DeviceSnapshot:
        """What a report needs, detached from the link (picklable, for another process)."""
        return DeviceSnapshot(
            backend=self.link.backend,
            path=self.path,
            identity=self.identity,
            chips=self.chips,
            registers=bytes(self.registers),
            chip_registers=tuple(bytes(r) for r in self.chip_registers),
            realtime=self.link.backend == "pi" or bool(getattr(self.link.clock, "realtime", True)),
        )

    def report(
        self,
        *,
        sample_rate: int = 0,
        held_by: str = "",
        status: npt.NDArray[np.uint32] | None = None,
    ) -> DeviceReport:
        """Identity, cached registers and lead-off state (from ``status``, one word per chip)."""
        return device_report(
            self.snapshot(), sample_rate=sample_rate, held_by=held_by, status=status
        )


@dataclass(frozen=True)
class DeviceSnapshot(ChainShape):
    """The driver's state a report or a consumer needs, without the hardware link.

    The acquisition process sends one to the daemon after opening and configuring the chip, so
    the daemon can describe a device it never opens itself.
    """

    backend: str
    path: str
    identity: ChipIdentity | None
    chips: int
    registers: bytes
    """Register file of chip 1 as read back after the last configuration."""
    realtime: bool = True
    """DRDY falls in wall-clock time (a board, or the emulator in real-time mode)."""
    chip_registers: tuple[bytes, ...] = ()
    """Register file of each chip-select's chip (one entry for a daisy chain)."""


def device_report(
    snap: DeviceSnapshot,
    *,
    sample_rate: int = 0,
    held_by: str = "",
    status: npt.NDArray[np.uint32] | None = None,
) -> DeviceReport:
    """Identity, registers and lead-off state (from ``status``, one word per chip)."""
    ident = snap.identity
    regs = snap.registers
    per_chip = snap.channels_per_chip
    sensed = bool(CONFIG4_PD_LOFF_COMP.get(regs[Reg.CONFIG4]))
    lead_off = []
    for c in range(snap.chips):
        word = int(status[c]) if status is not None else 0
        statp, statn = (word >> 12) & 0xFF, (word >> 4) & 0xFF
        for k in range(per_chip):
            bit = 1 << k
            lead_off.append(
                LeadOffChannel(
                    channel=f"ch{c * per_chip + k + 1}",
                    p_off=bool(statp & bit),
                    n_off=bool(statn & bit),
                    sensed=sensed and bool((regs[Reg.LOFF_SENSP] | regs[Reg.LOFF_SENSN]) & bit),
                )
            )
    return DeviceReport(
        backend=snap.backend,
        path=snap.path,
        chip=ident.chip if ident else "",
        id_register=ident.id_register if ident else 0,
        revision=ident.revision if ident else 0,
        chips=snap.chips,
        channels=snap.channels,
        sample_rate=sample_rate,
        held_by=held_by,
        registers=tuple(
            RegisterValue(info.address, info.name, regs[info.address]) for info in REGISTERS
        ),
        lead_off=tuple(lead_off),
        bias_off=bool(CONFIG3_BIAS_STAT.get(regs[Reg.CONFIG3])),
    )
