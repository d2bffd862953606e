"""The ADS1299 register map (datasheet SBAS499), declared as data rather than scattered bits.

Addresses, names and reset values live in :data:`REGISTERS`; bit fields such as CONFIG1.DR or
CHnSET.GAIN are :class:`Field` descriptors that read and update a register value, so settings
code and the emulator speak the same vocabulary. ADS1298 headers differ (0x15/0x16, 0x18+,
gains, LOFF currents): nothing here comes from them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CHANNELS_PER_CHIP",
    "CHSET_GAIN",
    "CHSET_MUX",
    "CHSET_PD",
    "CHSET_SRB2",
    "CONFIG1_DAISY_EN",
    "CONFIG1_DR",
    "CONFIG2_CAL_AMP",
    "CONFIG2_CAL_FREQ",
    "CONFIG2_INT_CAL",
    "CONFIG3_BIASREF_INT",
    "CONFIG3_BIAS_MEAS",
    "CONFIG3_BIAS_STAT",
    "CONFIG3_PD_BIAS",
    "CONFIG3_PD_REFBUF",
    "CONFIG4_PD_LOFF_COMP",
    "CONFIG4_SINGLE_SHOT",
    "LOFF_COMP_TH",
    "LOFF_FLEAD",
    "LOFF_ILEAD",
    "MISC1_SRB1",
    "REGISTERS",
    "REGISTER_COUNT",
    "DataRate",
    "Field",
    "Gain",
    "Mux",
    "Reg",
    "RegisterInfo",
    "TestFreq",
    "chset",
    "reset_values",
]

CHANNELS_PER_CHIP = 8
"""Channel slots of a full ADS1299; the -4 and -6 have fewer."""

REGISTER_COUNT = 0x18
"""Registers 0x00-0x17; nothing lives above."""


class Reg(enum.IntEnum):
    """Register addresses."""

    ID = 0x00
    CONFIG1 = 0x01
    CONFIG2 = 0x02
    CONFIG3 = 0x03
    LOFF = 0x04
    CH1SET = 0x05
    CH2SET = 0x06
    CH3SET = 0x07
    CH4SET = 0x08
    CH5SET = 0x09
    CH6SET = 0x0A
    CH7SET = 0x0B
    CH8SET = 0x0C
    BIAS_SENSP = 0x0D
    BIAS_SENSN = 0x0E
    LOFF_SENSP = 0x0F
    LOFF_SENSN = 0x10
    LOFF_FLIP = 0x11
    LOFF_STATP = 0x12
    LOFF_STATN = 0x13
    GPIO = 0x14
    MISC1 = 0x15
    MISC2 = 0x16
    CONFIG4 = 0x17


@dataclass(frozen=True)
class RegisterInfo:
    """Static facts about one register."""

    address: int
    name: str
    reset: int
    """Power-up value (ID varies by part; 0x3E is the 8-channel ADS1299)."""
    writable: int
    """Mask of bits a WREG changes; read-only bits keep their value."""


def _info(reg: Reg, reset: int, writable: int = 0xFF) -> RegisterInfo:
    return RegisterInfo(int(reg), reg.name, reset, writable)


REGISTERS: tuple[RegisterInfo, ...] = (
    _info(Reg.ID, 0x3E, writable=0x00),
    _info(Reg.CONFIG1, 0x96),
    _info(Reg.CONFIG2, 0xC0),
    _info(Reg.CONFIG3, 0x60, writable=0xFE),  # bit 0 BIAS_STAT is read-only
    _info(Reg.LOFF, 0x00),
    *(_info(Reg(Reg.CH1SET + i), 0x61) for i in range(CHANNELS_PER_CHIP)),
    _info(Reg.BIAS_SENSP, 0x00),
    _info(Reg.BIAS_SENSN, 0x00),
    _info(Reg.LOFF_SENSP, 0x00),
    _info(Reg.LOFF_SENSN, 0x00),
    _info(Reg.LOFF_FLIP, 0x00),
    _info(Reg.LOFF_STATP, 0x00, writable=0x00),
    _info(Reg.LOFF_STATN, 0x00, writable=0x00),
    _info(Reg.GPIO, 0x0F),
    _info(Reg.MISC1, 0x00),
    _info(Reg.MISC2, 0x00),
    _info(Reg.CONFIG4, 0x00),
)
"""Indexed by address."""


def reset_values(id_register: int = 0x3E) -> bytearray:
    """The register file right after RESET."""
    values = bytearray(info.reset for info in REGISTERS)
    values[Reg.ID] = id_register & 0xFF
    return values


def chset(channel: int) -> int:
    """Address of CHnSET for a 1-based channel number within one chip."""
    if not 1 <= channel <= CHANNELS_PER_CHIP:
        raise ValueError(f"channel {channel} is not 1..{CHANNELS_PER_CHIP}")
    return int(Reg.CH1SET) + channel - 1


@dataclass(frozen=True)
class Field:
    """A bit field of a register: ``width`` bits starting at bit ``shift``."""

    name: str
    shift: int
    width: int = 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift

    def get(self, register_value: int) -> int:
        return (register_value & self.mask) >> self.shift

    def set(self, register_value: int, field_value: int) -> int:
        if not 0 <= field_value < (1 << self.width):
            raise ValueError(f"{self.name}: {field_value} does not fit in {self.width} bit(s)")
        return (register_value & ~self.mask & 0xFF) | (field_value << self.shift)


CONFIG1_DAISY_EN = Field("CONFIG1.DAISY_EN", 6)
"""0 (reset) = daisy-chain mode, 1 = multiple readback."""
CONFIG1_DR = Field("CONFIG1.DR", 0, 3)
CONFIG2_INT_CAL = Field("CONFIG2.INT_CAL", 4)
CONFIG2_CAL_AMP = Field("CONFIG2.CAL_AMP0", 2)
CONFIG2_CAL_FREQ = Field("CONFIG2.CAL_FREQ", 0, 2)
CONFIG3_PD_REFBUF = Field("CONFIG3.PD_REFBUF", 7)
CONFIG3_BIAS_MEAS = Field("CONFIG3.BIAS_MEAS", 4)
CONFIG3_BIASREF_INT = Field("CONFIG3.BIASREF_INT", 3)
CONFIG3_PD_BIAS = Field("CONFIG3.PD_BIAS", 2)
CONFIG3_BIAS_STAT = Field("CONFIG3.BIAS_STAT", 0)
LOFF_COMP_TH = Field("LOFF.COMP_TH", 5, 3)
LOFF_ILEAD = Field("LOFF.ILEAD_OFF", 2, 2)
LOFF_FLEAD = Field("LOFF.FLEAD_OFF", 0, 2)
CHSET_PD = Field("CHnSET.PD", 7)
CHSET_GAIN = Field("CHnSET.GAIN", 4, 3)
CHSET_SRB2 = Field("CHnSET.SRB2", 3)
CHSET_MUX = Field("CHnSET.MUX", 0, 3)
MISC1_SRB1 = Field("MISC1.SRB1", 5)
CONFIG4_SINGLE_SHOT = Field("CONFIG4.SINGLE_SHOT", 3)
CONFIG4_PD_LOFF_COMP = Field("CONFIG4.PD_LOFF_COMP", 1)


class DataRate(enum.IntEnum):
    """CONFIG1.DR codes; fDR = fMOD / (64 * 2^DR) with fMOD = fCLK / 2."""

    SPS_16000 = 0
    SPS_8000 = 1
    SPS_4000 = 2
    SPS_2000 = 3
    SPS_1000 = 4
    SPS_500 = 5
    SPS_250 = 6

    @property
    def sps(self) -> int:
        return 16000 >> int(self)

    @classmethod
    def from_sps(cls, sps: int) -> DataRate:
        for rate in cls:
            if rate.sps == sps:
                return rate
        allowed = ", ".join(str(r.sps) for r in sorted(cls, key=lambda r: r.sps))
        raise ValueError(f"sample_rate: {sps} is not one of {allowed}")


class Gain(enum.IntEnum):
    """CHnSET.GAIN codes (111 is reserved)."""

    X1 = 0
    X2 = 1
    X4 = 2
    X6 = 3
    X8 = 4
    X12 = 5
    X24 = 6

    @property
    def factor(self) -> int:
        return (1, 2, 4, 6, 8, 12, 24)[int(self)]

    @classmethod
    def from_factor(cls, factor: int) -> Gain:
        for gain in cls:
            if gain.factor == factor:
                return gain
        raise ValueError(f"gain: {factor} is not one of 1, 2, 4, 6, 8, 12, 24")


class Mux(enum.IntEnum):
    """CHnSET.MUX codes: what the channel's PGA sees."""

    NORMAL = 0
    SHORTED = 1
    BIAS_MEAS = 2
    MVDD = 3
    TEMPERATURE = 4
    TEST = 5
    BIAS_DRP = 6
    BIAS_DRN = 7


class TestFreq(enum.IntEnum):
    """CONFIG2.CAL_FREQ codes (10 is reserved)."""

    __test__ = False  # not a pytest class

    SLOW = 0
    """Square wave at fCLK / 2^21 (0.977 Hz)."""
    FAST = 1
    """Square wave at fCLK / 2^20 (1.953 Hz)."""
    DC = 3
