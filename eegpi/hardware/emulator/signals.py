"""What the emulated inputs carry, in volts at the PGA input, generated a chunk at a time.

Normal inputs get synthetic EEG with known components (alpha at ``alpha_hz``, mains, pink-ish
noise, an offset) so tests can look for them; internal sources follow the datasheet: the test
square wave, shorted-input noise per the noise table, the temperature sensor and MVDD.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import numpy.typing as npt

from eegpi.ads1299.registers import Mux
from eegpi.hardware.config import EmulatorConfig
from eegpi.hardware.emulator.iir import BlockFilter

__all__ = ["FCLK_HZ", "ChannelPlan", "SignalGenerator", "shorted_noise_uv"]

FCLK_HZ = 2.048e6

# Input-referred noise, uVrms, shorted inputs (datasheet tables, 5 V supply, 4.5 V reference).
_NOISE_G1 = {250: 1.08, 500: 1.53, 1000: 2.17, 2000: 3.06, 4000: 4.33, 8000: 6.93, 16000: 21.7}
_NOISE_G24 = {250: 0.14, 500: 0.20, 1000: 0.28, 2000: 0.40, 4000: 0.56, 8000: 0.80, 16000: 1.66}
_NOISE_250 = {1: 1.08, 2: 0.57, 4: 0.31, 6: 0.23, 8: 0.20, 12: 0.16, 24: 0.14}

# A classic 1/f approximation (three poles); its white-to-output gain is computed below.
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])
_PINK = BlockFilter(_PINK_B, _PINK_A)
_PINK_RMS = float(np.sqrt(_PINK.power_gain()))


def shorted_noise_uv(gain: int, rate: int) -> float:
    """Input-referred RMS noise of a shorted channel, scaled from the datasheet tables."""
    if rate == 250:
        return _NOISE_250[gain]
    # Between gain 1 and 24 the tables scale roughly like the 250 SPS column does.
    frac = (_NOISE_250[gain] - _NOISE_250[24]) / (_NOISE_250[1] - _NOISE_250[24])
    return _NOISE_G24[rate] + frac * (_NOISE_G1[rate] - _NOISE_G24[rate])


class ChannelPlan:
    """What each channel of the chain measures, frozen from the registers at chunk time."""

    def __init__(
        self,
        mux: list[int],
        gain: list[int],
        powered: list[bool],
        rate: int,
        test_amp: int,
        test_freq: int,
        leads_off: frozenset[int],
        fclk_hz: float = FCLK_HZ,
    ) -> None:
        self.mux = mux
        self.gain = gain
        self.powered = powered
        self.rate = rate
        self.test_amp = test_amp
        self.test_freq = test_freq
        self.leads_off = leads_off
        self.fclk_hz = fclk_hz
        """The chip's master clock, which the test signal's frequency is derived from."""
        # Precomputed for the common case, so a chunk costs a few array operations.
        self.noise_v = np.array([shorted_noise_uv(g, rate) * 1e-6 for g in gain])
        """Shorted-input noise per channel, volts RMS."""
        plain = [m == Mux.NORMAL and ch + 1 not in leads_off for ch, m in enumerate(mux)]
        self.plain = np.array(plain, dtype=bool)
        """Channels that read the synthetic EEG plus noise."""
        self.special = [ch for ch, p in enumerate(plain) if not p]

    def key(self) -> tuple[object, ...]:
        return (
            tuple(self.mux),
            tuple(self.gain),
            tuple(self.powered),
            self.rate,
            self.test_amp,
            self.test_freq,
            self.fclk_hz,
        )


class SignalGenerator:
    """Seeded per-chain source of input voltages; one instance per conversion run."""

    def __init__(self, cfg: EmulatorConfig, channels: int, channels_per_chip: int) -> None:
        self._cfg = cfg
        self._channels = channels
        self._per_chip = channels_per_chip
        self._rng = np.random.default_rng(cfg.seed)
        self._phase = self._rng.uniform(0, 2 * np.pi, channels)
        self._offset = self._rng.normal(0.0, cfg.offset_uv / 2, channels) + cfg.offset_uv
        self._zi = _PINK.zeros(channels)

    def volts(
        self, start: int, n: int, period_s: float, plan: ChannelPlan
    ) -> npt.NDArray[np.float64]:
        """Input voltages of conversions ``start .. start+n-1``, shape (n, channels).

        Consecutive calls continue the noise; ``start`` places periodic components in time.
        """
        steps = self.volts_steps(start, n, period_s, plan)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: npt.NDArray[np.float64] = done.value
                return result

    def volts_steps(
        self, start: int, n: int, period_s: float, plan: ChannelPlan
    ) -> Generator[None, None, npt.NDArray[np.float64]]:
        """:meth:`volts` in steps of a few tens of microseconds each (for a few hundred rows),
        so the emulated chip can generate between two DRDYs without delaying a read."""
        cfg = self._cfg
        t: npt.NDArray[np.float64] = (start + np.arange(n, dtype=np.float64))[:, None] * period_s
        white = self._rng.standard_normal((n, self._channels))
        yield
        pink, self._zi = yield from _PINK.steps(white, self._zi)
        yield
        alpha = np.sin(2 * np.pi * cfg.alpha_hz * t + self._phase)
        yield
        eeg_uv = (
            cfg.alpha_uv * alpha
            + cfg.mains_uv * np.sin(2 * np.pi * cfg.mains_hz * t)
            + pink * (cfg.noise_uv / _PINK_RMS)
            + self._offset
        )
        yield
        out: npt.NDArray[np.float64] = white * plan.noise_v
        out[:, plan.plain] += eeg_uv[:, plan.plain] * 1e-6
        for ch in plan.special:
            yield
            out[:, ch] = self._channel(ch, eeg_uv[:, ch], white[:, ch], t[:, 0], plan)
        return out

    def _channel(
        self,
        ch: int,
        eeg_uv: npt.NDArray[np.float64],
        white: npt.NDArray[np.float64],
        t: npt.NDArray[np.float64],
        plan: ChannelPlan,
    ) -> npt.NDArray[np.float64]:
        cfg = self._cfg
        mux = plan.mux[ch]
        noise_v = white * shorted_noise_uv(plan.gain[ch], plan.rate) * 1e-6
        if mux == Mux.NORMAL:
            if ch + 1 in plan.leads_off:
                return np.full_like(t, 10.0)  # floating input: saturates at +full scale
            return eeg_uv * 1e-6 + noise_v
        if mux == Mux.TEST:
            amp = cfg.test_amplitude_v * (2 if plan.test_amp else 1)
            if plan.test_freq == 3:
                return np.full_like(t, amp) + noise_v
            freq = plan.fclk_hz / (2**21 if plan.test_freq == 0 else 2**20)
            square = np.where((t * freq) % 1.0 < 0.5, amp, -amp)
            return square + noise_v
        if mux == Mux.TEMPERATURE:
            return np.full_like(t, 145.3e-3 + 490e-6 * (cfg.temperature_c - 25.0)) + noise_v
        if mux == Mux.MVDD:
            in_chip = ch % self._per_chip
            level = cfg.dvdd_v / 4 if in_chip in (2, 3) else cfg.avdd_v / 2
            return np.full_like(t, level) + noise_v
        # Shorted, bias measurement and bias drive inputs all sit at mid-supply: noise plus
        # the channel's input offset (uV, the same offset its normal input adds).
        shorted: npt.NDArray[np.float64] = noise_v + float(self._offset[ch]) * 1e-6
        return shorted
