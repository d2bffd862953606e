"""The electrodes on the emulated inputs, and what the chip's lead-off current does through them.

Each channel's INnP pin reaches the scalp through the board's series resistor and an electrode
(``electrode_impedance_kohm``); the INnN pins through the series resistor and the reference
electrode (``reference_impedance_kohm``), one shared node for a chip's N inputs when MISC1.SRB1
ties them together. The body sits at the bias level, so a lead-off current ``I`` (LOFF.ILEAD_OFF)
enabled on a pin (LOFF_SENSP/N) moves that pin by ``I * (Z + R_series)``: up on INnP and down on
INnN (swapped by LOFF_FLIP), so both add to the channel's differential input.

LOFF.FLEAD_OFF picks DC or an AC square wave (the current sources swapped back and forth): at
fDR/4, fCLK/2^16 (31.2 Hz) or fCLK/2^18 (7.8 Hz). Each is a whole, even number of data periods,
so the wave flips on conversion boundaries, and the chip's sinc3 filter turns it into what a
conversion reads: 1/6, 4/6, 1/6 of the wave's level over the last three data periods. At fDR/4
that is a square of +/-2/3 of ``I * Z`` whose fDR/4 tone has amplitude 2*sqrt(2)/3 of it.

The lead-off comparators (CONFIG4.PD_LOFF_COMP) trip when a pin moves past the COMP_TH
threshold from mid-supply: a very high impedance under a large current reads as lead-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eegpi.ads1299.registers import (
    CONFIG1_DR,
    LOFF_COMP_TH,
    LOFF_FLEAD,
    LOFF_ILEAD,
    MISC1_SRB1,
    Mux,
    Reg,
)
from eegpi.hardware.config import EmulatorConfig

__all__ = ["LEAD_OFF_AMPS", "Electrodes", "Excitation", "excitation_periods", "filtered_square"]

LEAD_OFF_AMPS = (6e-9, 24e-9, 6e-6, 24e-6)
"""LOFF.ILEAD_OFF codes 0-3 (ADS1299 values)."""
_COMP_HIGH = (0.95, 0.925, 0.90, 0.875, 0.85, 0.80, 0.75, 0.70)
"""LOFF.COMP_TH: the positive comparator's threshold as a fraction of the supply (the negative
one mirrors it about mid-supply)."""
_SINC3_TAPS = np.array([1.0, 4.0, 1.0]) / 6.0
"""Share of the newest, middle and oldest data period in a sinc3 conversion of an input that
is constant over each period."""


def excitation_periods(flead: int, dr: int) -> int | None:
    """Data periods per cycle of the lead-off excitation: None for DC (FLEAD_OFF 00), 4 for
    fDR/4, and fCLK/2^18 or fCLK/2^16 expressed in periods of fDR = fCLK/(128 * 2^DR)."""
    if flead == 0:
        return None
    if flead == 3:
        return 4
    return int(2 ** ((11 if flead == 1 else 9) - dr))


def filtered_square(index: npt.NDArray[np.int64], periods: int) -> npt.NDArray[np.float64]:
    """What conversions ``index`` read of a +/-1 square wave of ``periods`` data periods (high
    during the first half of each cycle from conversion 0), after the sinc3 filter."""
    half = periods // 2
    out = np.zeros(len(index), dtype=np.float64)
    for lag, tap in enumerate(_SINC3_TAPS):
        segment = index - lag - 1  # the data period that ends at conversion index - lag
        level = np.where(segment % periods < half, 1.0, -1.0)
        out += tap * level
    return out


@dataclass(frozen=True)
class Excitation:
    """The lead-off excitation as the channels read it, for one register setting."""

    amplitude_v: npt.NDArray[np.float64]
    """Differential input per channel at the wave's +1 level (signed), volts."""
    periods: int | None
    """Data periods per cycle; None for DC."""

    def volts(self, start: int, n: int) -> npt.NDArray[np.float64]:
        """Input voltage of conversions ``start .. start+n-1``, shape (n, channels)."""
        if self.periods is None:
            return np.broadcast_to(self.amplitude_v, (n, len(self.amplitude_v)))
        wave = filtered_square(start + np.arange(n, dtype=np.int64), self.periods)
        out: npt.NDArray[np.float64] = wave[:, None] * self.amplitude_v[None, :]
        return out


def _ohms(name: str, value: float | tuple[float, ...], channels: int) -> npt.NDArray[np.float64]:
    values = value if isinstance(value, tuple) else (value,) * channels
    if len(values) < channels:
        raise ValueError(
            f"emulator.{name}: {len(values)} values for the chain's {channels} channels; give "
            "one per channel, or a single value for all"
        )
    return np.array(values[:channels], dtype=np.float64) * 1e3


class Electrodes:
    """The electrode impedances of a chain and the lead-off current through them."""

    def __init__(self, cfg: EmulatorConfig, channels: int, channels_per_chip: int) -> None:
        self._per_chip = channels_per_chip
        self._chips = channels // channels_per_chip
        self._series = cfg.series_resistance_kohm * 1e3
        self._p = _ohms("electrode_impedance_kohm", cfg.electrode_impedance_kohm, channels)
        self._p += self._series
        self._n = cfg.reference_impedance_kohm * 1e3 + self._series
        self._swing = cfg.avdd_v / 2
        """Farthest a pin can move from mid-supply (the current source's compliance)."""
        self._off = frozenset(ch - 1 for ch in cfg.leads_off)

    def _pins(self, regs: bytes) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """How far each channel's P pin moves up and N pin moves down (volts, signed, before
        LOFF_FLIP's polarity is applied to the P side), at the wave's +1 level."""
        amps = LEAD_OFF_AMPS[LOFF_ILEAD.get(regs[Reg.LOFF])]
        k = np.arange(self._per_chip)
        sens_p = (regs[Reg.LOFF_SENSP] >> k) & 1
        sens_n = (regs[Reg.LOFF_SENSN] >> k) & 1
        sign = np.where((regs[Reg.LOFF_FLIP] >> k) & 1, -1.0, 1.0)
        p = np.tile(sign * sens_p, self._chips) * amps * self._p
        p = np.clip(p, -self._swing, self._swing)
        if MISC1_SRB1.get(regs[Reg.MISC1]):
            # Every N input of a chip is the SRB1 node: the currents of all its sensed N pins
            # meet in the one reference electrode.
            shared = float(np.sum(sign * sens_n)) * amps * self._n
            n = np.full(len(p), np.clip(shared, -self._swing, self._swing))
        else:
            n = np.tile(sign * sens_n, self._chips) * amps * self._n
            n = np.clip(n, -self._swing, self._swing)
        return p, n

    def excitation(self, regs: bytes, mux: list[int]) -> Excitation | None:
        """The excitation the normal-input channels read (None when no current is on)."""
        if not (regs[Reg.LOFF_SENSP] or regs[Reg.LOFF_SENSN]):
            return None
        p, n = self._pins(regs)
        amplitude = p + n
        measured = np.array(
            [m == Mux.NORMAL and ch not in self._off for ch, m in enumerate(mux)], dtype=bool
        )
        amplitude = np.where(measured, amplitude, 0.0)
        if not amplitude.any():
            return None
        dr = CONFIG1_DR.get(regs[Reg.CONFIG1])
        periods = excitation_periods(LOFF_FLEAD.get(regs[Reg.LOFF]), min(dr, 6))
        return Excitation(amplitude_v=amplitude, periods=periods)

    def comparator_trips(self, regs: bytes, chip: int) -> tuple[int, int]:
        """LOFF_STATP/N bits of ``chip`` that the excitation itself trips: pins driven past
        the comparator threshold (before masking with LOFF_SENSP/N)."""
        if not (regs[Reg.LOFF_SENSP] or regs[Reg.LOFF_SENSN]):
            return 0, 0
        limit = (_COMP_HIGH[LOFF_COMP_TH.get(regs[Reg.LOFF])] - 0.5) * 2 * self._swing
        p, n = self._pins(regs)
        part = slice(chip * self._per_chip, (chip + 1) * self._per_chip)
        bits_p = bits_n = 0
        for k, (vp, vn) in enumerate(zip(p[part], n[part], strict=True)):
            bits_p |= int(abs(vp) >= limit) << k
            bits_n |= int(abs(vn) >= limit) << k
        return bits_p, bits_n
