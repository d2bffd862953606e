"""The emulator's scipy-free IIR filter gives what scipy.signal.lfilter gives, block by block."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from eegpi.hardware.emulator import signals
from eegpi.hardware.emulator.iir import BlockFilter


@pytest.mark.parametrize("channels", [1, 8, 32])
def test_blocks_chain_like_lfilter_with_zi(channels: int) -> None:
    b, a = signals._PINK_B, signals._PINK_A
    f = BlockFilter(b, a)
    rng = np.random.default_rng(7)
    zi, zs = f.zeros(channels), np.zeros((3, channels))
    for n in (256, 256, 100, 1, 2, 3, 4, 256, 7):
        x = rng.standard_normal((n, channels))
        y, zi = f(x, zi)
        expect, zs = sps.lfilter(b, a, x, axis=0, zi=zs)
        assert y.shape == (n, channels)
        np.testing.assert_allclose(y, expect, rtol=0, atol=1e-11)
        np.testing.assert_allclose(zi, zs, rtol=0, atol=1e-11)


def test_other_orders_and_unnormalised_coefficients() -> None:
    b, a = [2.0, 0.5], [2.0, -1.0, 0.3]  # a[0] != 1, b shorter than a
    f = BlockFilter(b, a)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 2))
    zi = rng.standard_normal((2, 2))
    y, zf = f(x, zi)
    expect, zs = sps.lfilter(b, a, x, axis=0, zi=zi)
    np.testing.assert_allclose(y, expect, atol=1e-11)
    np.testing.assert_allclose(zf, zs, atol=1e-11)
    with pytest.raises(ValueError, match="a\\[0\\]"):
        BlockFilter([1.0], [0.0, 1.0])


def test_power_gain_is_the_impulse_responses_energy() -> None:
    b, a = signals._PINK_B, signals._PINK_A
    impulse = sps.lfilter(b, a, np.r_[1.0, np.zeros(1 << 14)])
    assert BlockFilter(b, a).power_gain() == pytest.approx(float(np.sum(impulse**2)), rel=1e-9)
    assert pytest.approx(float(np.sqrt(np.sum(impulse**2))), rel=1e-9) == signals._PINK_RMS
