"""Source parameters -> register values.

One :class:`ChipSettings` describes what every chip of a chain is programmed with: a daisy chain
shares CS and DIN, so each chip receives the same WREGs and channel k of every chip is alike.
:func:`chain_settings` refuses per-channel lists that would need chips to differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from eegpi.ads1299.registers import (
    CHSET_GAIN,
    CHSET_MUX,
    CHSET_PD,
    CHSET_SRB2,
    DataRate,
    Gain,
    Mux,
    Reg,
    TestFreq,
    chset,
)

__all__ = [
    "INPUTS",
    "LEAD_OFF_CURRENTS",
    "TEST_AMPLITUDES",
    "TEST_FREQUENCIES",
    "VREF_V",
    "ChannelSettings",
    "ChipSettings",
    "LeadOffSettings",
    "TestSignal",
    "chain_settings",
    "lsb_uv",
]

VREF_V = 4.5
"""Internal reference voltage (CONFIG3.PD_REFBUF = 1)."""

INPUTS: dict[str, Mux] = {
    "normal": Mux.NORMAL,
    "shorted": Mux.SHORTED,
    "test": Mux.TEST,
    "temperature": Mux.TEMPERATURE,
    "supply": Mux.MVDD,
    "bias_meas": Mux.BIAS_MEAS,
    "off": Mux.SHORTED,  # powered down; TI recommends MUX = 001 for unused channels
}
"""Source ``input`` names and the CHnSET.MUX each selects."""

TEST_AMPLITUDES = {"1x": 0, "2x": 1}
TEST_FREQUENCIES = {"slow": TestFreq.SLOW, "fast": TestFreq.FAST, "dc": TestFreq.DC}
LEAD_OFF_CURRENTS = {"6nA": 0, "24nA": 1, "6uA": 2, "24uA": 3}
"""LOFF.ILEAD_OFF codes (ADS1299 values; the ADS1298 table differs)."""
_COMP_THRESHOLDS = {95.0: 0, 92.5: 1, 90.0: 2, 87.5: 3, 85.0: 4, 80.0: 5, 75.0: 6, 70.0: 7}


def lsb_uv(gain: int, vref_v: float = VREF_V) -> float:
    """Microvolts per code: VREF / (gain * 2^23)."""
    return vref_v * 1e6 / (gain * 2**23)


def _choice(name: str, value: object, allowed: Sequence[object]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(map(str, allowed))}")


@dataclass(frozen=True)
class TestSignal:
    """The internal square wave (CONFIG2): 1x = VREF/2400, 2x double; slow = fCLK/2^21."""

    __test__ = False  # not a pytest class

    amplitude: str = "1x"
    frequency: str = "slow"

    def __post_init__(self) -> None:
        _choice("test_signal.amplitude", self.amplitude, list(TEST_AMPLITUDES))
        _choice("test_signal.frequency", self.frequency, list(TEST_FREQUENCIES))


@dataclass(frozen=True)
class LeadOffSettings:
    """DC or AC lead-off detection with comparator threshold and excitation current."""

    current: str = "6nA"
    threshold_pct: float = 95.0
    """Positive-side comparator threshold in % of the supply (negative side mirrors it)."""
    frequency: str = "dc"
    """``dc``, ``ac_7.8hz``, ``ac_31.2hz`` or ``ac_fdr/4``."""

    def __post_init__(self) -> None:
        _choice("lead_off.current", self.current, list(LEAD_OFF_CURRENTS))
        _choice("lead_off.threshold_pct", self.threshold_pct, list(_COMP_THRESHOLDS))
        _choice("lead_off.frequency", self.frequency, list(_FLEAD))

    @property
    def loff_register(self) -> int:
        return (
            (_COMP_THRESHOLDS[self.threshold_pct] << 5)
            | (LEAD_OFF_CURRENTS[self.current] << 2)
            | _FLEAD[self.frequency]
        )


_FLEAD = {"dc": 0, "ac_7.8hz": 1, "ac_31.2hz": 2, "ac_fdr/4": 3}


@dataclass(frozen=True)
class ChannelSettings:
    """One channel slot of a chip."""

    gain: int = 24
    input: str = "normal"
    srb2: bool = False

    def __post_init__(self) -> None:
        Gain.from_factor(self.gain)
        _choice("input", self.input, list(INPUTS))

    @property
    def chset(self) -> int:
        value = CHSET_GAIN.set(0, int(Gain.from_factor(self.gain)))
        value = CHSET_MUX.set(value, int(INPUTS[self.input]))
        value = CHSET_SRB2.set(value, int(self.srb2))
        return CHSET_PD.set(value, int(self.input == "off"))


@dataclass(frozen=True)
class ChipSettings:
    """Everything one chip is programmed with."""

    sample_rate: int = 250
    channels: tuple[ChannelSettings, ...] = field(
        default_factory=lambda: tuple(ChannelSettings() for _ in range(8))
    )
    """One entry per channel the part has (4, 6 or 8)."""
    test_signal: TestSignal = field(default_factory=TestSignal)
    srb1: bool = True
    """MISC1.SRB1: every inverting input tied to SRB1, the common-reference montage."""
    bias: bool = True
    """Bias amplifier on, internal BIASREF, driven from the normal-input channels."""
    lead_off: LeadOffSettings | None = None
    single_shot: bool = False

    def __post_init__(self) -> None:
        DataRate.from_sps(self.sample_rate)
        _choice("channels per chip", len(self.channels), (4, 6, 8))

    def _channel_bits(self, wanted: bool | Sequence[bool]) -> int:
        bits = 0
        for i, ch in enumerate(self.channels):
            on = wanted if isinstance(wanted, bool) else wanted[i]
            if on and ch.input == "normal":
                bits |= 1 << i
        return bits

    def registers(self) -> list[tuple[int, int]]:
        """(address, value) to write after RESET and SDATAC, in a safe order.

        CONFIG3 goes first so the reference buffer starts while the rest is written; CONFIG1
        goes last among the configuration registers because writing it restarts the filter.
        """
        test = any(ch.input == "test" for ch in self.channels)
        config2 = 0xC0
        if test:
            config2 |= 0x10 | (TEST_AMPLITUDES[self.test_signal.amplitude] << 2)
            config2 |= int(TEST_FREQUENCIES[self.test_signal.frequency])
        config3 = 0xE0 | (0x0C if self.bias else 0x00)
        if any(ch.input == "bias_meas" for ch in self.channels):
            config3 |= 0x10
        sensed = self._channel_bits(True)
        loff = self.lead_off
        regs: list[tuple[int, int]] = [
            (Reg.CONFIG3, config3),
            (Reg.CONFIG2, config2),
            (Reg.LOFF, loff.loff_register if loff else 0x00),
        ]
        regs += [(chset(i + 1), ch.chset) for i, ch in enumerate(self.channels)]
        regs += [
            (Reg.BIAS_SENSP, sensed if self.bias else 0),
            (Reg.BIAS_SENSN, sensed if self.bias and not self.srb1 else 0),
            (Reg.LOFF_SENSP, sensed if loff else 0),
            (Reg.LOFF_SENSN, sensed if loff and not self.srb1 else 0),
            (Reg.LOFF_FLIP, 0x00),
            (Reg.MISC1, 0x20 if self.srb1 else 0x00),
            (Reg.MISC2, 0x00),
            (Reg.CONFIG4, (0x08 if self.single_shot else 0) | (0x02 if loff else 0)),
            (Reg.CONFIG1, 0x90 | int(DataRate.from_sps(self.sample_rate))),
        ]
        return [(int(a), v) for a, v in regs]


def _per_channel(name: str, value: object, total: int) -> list[object]:
    if isinstance(value, (list, tuple)):
        if len(value) != total:
            raise ValueError(
                f"{name}: a list needs one entry per channel ({total}), got {len(value)}"
            )
        return list(value)
    return [value] * total


def chain_settings(
    *,
    sample_rate: int,
    gain: int | Sequence[int],
    input: str | Sequence[str],
    srb2: bool | Sequence[bool],
    chips: int,
    channels_per_chip: int,
    test_signal: TestSignal | None = None,
    srb1: bool = True,
    bias: bool = True,
    lead_off: LeadOffSettings | None = None,
) -> ChipSettings:
    """Settings for a chain, refusing per-channel values that differ between chips.

    Raises:
        ValueError: a list of the wrong length, a bad value, or channel k of two chips differing
            (daisy-chained chips share CS and DIN, so all of them receive the same writes).
    """
    total = chips * channels_per_chip
    gains = _per_channel("gain", gain, total)
    inputs = _per_channel("input", input, total)
    srb2s = _per_channel("srb2", srb2, total)
    channels = []
    for k in range(total):
        g, i, s = gains[k], inputs[k], srb2s[k]
        if not isinstance(g, int) or isinstance(g, bool):
            raise ValueError(f"gain: {g!r} is not one of 1, 2, 4, 6, 8, 12, 24")
        if not isinstance(i, str):
            raise ValueError(f"input: {i!r} is not one of {', '.join(INPUTS)}")
        channels.append(ChannelSettings(gain=g, input=i, srb2=bool(s)))
    for k in range(channels_per_chip, total):
        first = channels[k % channels_per_chip]
        if channels[k] != first:
            chip, ch = divmod(k, channels_per_chip)
            raise ValueError(
                f"channel {k + 1} (chip {chip + 1} channel {ch + 1}) is set to {channels[k]} but "
                f"channel {ch + 1} of chip 1 to {first}; daisy-chained chips share CS and DIN, "
                f"so channel {ch + 1} of every chip must be set alike"
            )
    return ChipSettings(
        sample_rate=sample_rate,
        channels=tuple(channels[:channels_per_chip]),
        test_signal=test_signal or TestSignal(),
        srb1=srb1,
        bias=bias,
        lead_off=lead_off,
    )
