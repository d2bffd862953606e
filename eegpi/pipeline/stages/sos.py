"""Second-order-section filtering with state, at a cost that does not depend on the block size.

:func:`scipy.signal.sosfilt` validates and reshapes its arguments on every call: about 40 us,
whatever the block holds. At 250 SPS a pipeline ticks with a few samples, so that validation
was most of what a filter stage cost. :class:`SosState` validates once, keeps the state in the
layout scipy's compiled kernel works on, and calls that kernel directly (2 us per call). The
kernel is the one ``sosfilt`` itself ends in, so the output is bit-for-bit the same; where a
scipy release does not have it under that name, the public function is used instead.

The kernel's module is loaded without ``scipy.signal``'s ``__init__`` (:mod:`.kernel`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from eegpi.lazy import LazyModule
from eegpi.pipeline.stages.design import sosfilt_zi
from eegpi.pipeline.stages.kernel import Kernel, sosfilt

signal: Any = LazyModule("scipy.signal")  # only where the compiled kernel is missing

__all__ = ["SosState", "compiled_kernel"]

FloatArray = npt.NDArray[np.float64]


def compiled_kernel() -> bool:
    """True when scipy's compiled kernel is called directly (the fast path)."""
    return sosfilt() is not None


class SosState:
    """One SOS cascade applied to (samples, channels) blocks, its state carried across calls.

    The state starts at the step-response steady state scaled by the first sample of the
    stream (no start-up transient for a stream at a DC offset), exactly as
    ``sosfilt_zi(sos) * x[0]`` with :func:`scipy.signal.sosfilt`.
    """

    def __init__(self, sos: FloatArray, n_channels: int) -> None:
        sos = np.ascontiguousarray(sos, dtype=np.float64)
        if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
            raise ValueError(f"sos must have shape (n_sections, 6), got {sos.shape}")
        self.sos = sos
        self.n_channels = n_channels
        self._zi: FloatArray | None = None
        """(channels, sections, 2), C-contiguous: the kernel's own layout."""
        self._kernel: Kernel | None = None

    @property
    def started(self) -> bool:
        return self._zi is not None

    def reset(self) -> None:
        """Forget the state: the next block starts the stream again."""
        self._zi = None

    def apply(self, x: npt.NDArray[Any]) -> FloatArray:
        """Filter ``x`` (samples, channels) and return a new float64 array of the same shape."""
        if x.shape[0] == 0:
            return np.zeros((0, self.n_channels))
        if self._zi is None:
            zi0 = sosfilt_zi(self.sos)  # (sections, 2)
            first = np.asarray(x[0], dtype=np.float64)
            self._zi = np.ascontiguousarray(first[:, np.newaxis, np.newaxis] * zi0[np.newaxis])
            self._kernel = sosfilt()
        kernel = self._kernel
        if kernel is None:  # pragma: no cover - depends on the scipy release
            zi = np.moveaxis(self._zi, 0, -1)  # (sections, 2, channels)
            y, zf = signal.sosfilt(self.sos, x, axis=0, zi=zi)
            self._zi = np.ascontiguousarray(np.moveaxis(zf, -1, 0))
            out: FloatArray = y
            return out
        work = np.array(x.T, dtype=np.float64, order="C")  # (channels, samples), filtered in place
        kernel(self.sos, work, self._zi)
        result: FloatArray = work.T
        return result
