"""SosState: scipy's sosfilt kernel without per-call validation, bit-for-bit the same output."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from eegpi.pipeline.stages.sos import SosState, compiled_kernel

SOS = signal.butter(4, [1.0, 40.0], btype="bandpass", fs=250.0, output="sos")


def _public(x: np.ndarray, sizes: list[int]) -> np.ndarray:
    zi = signal.sosfilt_zi(SOS)[:, :, np.newaxis] * x[0][np.newaxis, np.newaxis]
    out, start = [], 0
    for n in sizes:
        y, zi = signal.sosfilt(SOS, x[start : start + n], axis=0, zi=zi)
        out.append(y)
        start += n
    return np.concatenate(out)


def test_the_compiled_kernel_is_the_one_used() -> None:
    assert compiled_kernel(), "scipy.signal._sosfilt._sosfilt moved: filters fall back to sosfilt"


@pytest.mark.parametrize("dtype", [np.int32, np.float64])
def test_block_by_block_equals_public_sosfilt_exactly(dtype: type) -> None:
    rng = np.random.default_rng(3)
    x = (rng.normal(0, 1000, size=(2000, 8)) + 5000).astype(dtype)
    sizes = list(rng.integers(0, 7, size=600))
    sizes.append(x.shape[0] - sum(sizes))
    state = SosState(SOS, 8)
    start, out = 0, []
    for n in sizes:
        y = state.apply(x[start : start + n])
        assert y.shape == (n, 8) and y.dtype == np.float64
        out.append(y)
        start += n
    np.testing.assert_array_equal(np.concatenate(out), _public(x, [n for n in sizes if n]))


def test_input_is_not_modified_and_reset_starts_the_stream_again() -> None:
    x = np.arange(80, dtype=np.float64).reshape(10, 8)
    x.flags.writeable = False
    state = SosState(SOS, 8)
    first = state.apply(x)
    np.testing.assert_array_equal(x, np.arange(80, dtype=np.float64).reshape(10, 8))
    state.reset()
    np.testing.assert_array_equal(state.apply(x), first)


def test_bad_sections_are_refused() -> None:
    with pytest.raises(ValueError, match="n_sections, 6"):
        SosState(np.zeros((2, 5)), 8)
