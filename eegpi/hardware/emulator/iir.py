"""An IIR filter applied a block at a time with numpy's FFT, without ``scipy.signal``.

Why not ``scipy.signal.lfilter``: the emulated chip runs in the acquisition process, which
should import only what reading a chip needs; importing ``scipy.signal`` there costs about a
second of start-up and 75 MB of RSS, for one small filter. A filter is linear in its input and
its state, so a block's output is the input convolved with the impulse response (cut to the
block, by FFT) plus the state's own response; the state after the block follows from the last
``order`` inputs and outputs. The state follows ``lfilter``'s convention (transposed direct form
II), so blocks chain as ``lfilter(..., zi=)`` does. No BLAS call: OpenBLAS would start threads in
the acquisition process for a product this size.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import numpy.typing as npt

__all__ = ["BlockFilter"]

Array = npt.NDArray[np.float64]


class BlockFilter:
    """``lfilter(b, a, x, axis=0, zi=zi)`` for blocks of ``x`` shaped (n, channels)."""

    def __init__(self, b: Array | list[float], a: Array | list[float]) -> None:
        b = np.asarray(b, dtype=np.float64)
        a = np.asarray(a, dtype=np.float64)
        if a[0] == 0:
            raise ValueError("a[0] must not be 0")
        order = max(len(a), len(b)) - 1
        if order < 1:
            raise ValueError("the filter needs an order of at least 1")
        self.b = np.r_[b, np.zeros(order + 1 - len(b))] / a[0]
        self.a = np.r_[a, np.zeros(order + 1 - len(a))] / a[0]
        self.order = order
        # State space of the transposed direct form II: z' = A z + B x, y = z[0] + D x.
        self._ss_a = np.zeros((order, order))
        self._ss_a[:, 0] = -self.a[1:]
        self._ss_a[:-1, 1:] = np.eye(order - 1)
        self._ss_b = self.b[1:] - self.a[1:] * self.b[0]
        self._blocks: dict[int, tuple[int, npt.NDArray[np.complex128], Array]] = {}

    def _matrices(self, n: int) -> tuple[int, npt.NDArray[np.complex128], Array]:
        """FFT size, the impulse response's spectrum and the state response O (order, n)."""
        cached = self._blocks.get(n)
        if cached is not None:
            return cached
        p = self.order
        powers = np.empty((n, p, p))  # A^0 .. A^(n-1)
        powers[0] = np.eye(p)
        for k in range(1, n):
            powers[k] = self._ss_a @ powers[k - 1]
        h = np.empty(n)
        h[0] = self.b[0]
        h[1:] = powers[: n - 1, 0, :] @ self._ss_b  # C A^(m-1) B with C = e0
        nfft = 1 << max(1, (2 * n - 1).bit_length())
        o = np.ascontiguousarray(powers[:, 0, :].T)
        self._blocks[n] = cached = (nfft, np.fft.rfft(h, nfft), o)
        return cached

    def zeros(self, channels: int) -> Array:
        """A rest state for ``channels`` channels, shape (order, channels)."""
        return np.zeros((self.order, channels))

    def __call__(self, x: Array, zi: Array) -> tuple[Array, Array]:
        """Filter ``x`` (n, channels) from state ``zi`` (order, channels); returns (y, zf)."""
        steps = self.steps(x, zi)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: tuple[Array, Array] = done.value
                return result

    def steps(self, x: Array, zi: Array) -> Generator[None, None, tuple[Array, Array]]:
        """:meth:`__call__` in two steps of about 20 us each for 256 x 8 (between DRDYs)."""
        n, p = len(x), self.order
        if n < p:
            return self._per_sample(x, zi)
        nfft, response, o = self._matrices(n)
        rows = np.ascontiguousarray(x.T)  # one FFT per channel, along contiguous memory
        spectrum = np.fft.rfft(rows, nfft)
        yield
        spectrum *= response
        y_rows = np.fft.irfft(spectrum, nfft)[:, :n]
        y_rows += zi.T @ o if p > 0 else 0.0
        y: Array = y_rows.T
        # The state after the block: z_i = sum over k > i of b_k x[n-k+i] - a_k y[n-k+i].
        b, a = self.b, self.a
        zf = np.zeros((p, x.shape[1]))
        for i in range(p):
            k = np.arange(i + 1, p + 1)
            zf[i] = b[k] @ rows[:, n - k + i].T - a[k] @ y_rows[:, n - k + i].T
        return y, zf

    def _per_sample(self, x: Array, zi: Array) -> tuple[Array, Array]:
        """A block shorter than the filter's order, one sample at a time."""
        b, a = self.b, self.a
        z = np.array(zi, dtype=np.float64)
        y = np.empty(x.shape)
        for k, xn in enumerate(x):
            yn = z[0] + b[0] * xn
            y[k] = yn
            z[:-1] = z[1:] + b[1:-1, None] * xn - a[1:-1, None] * yn
            z[-1] = b[-1] * xn - a[-1] * yn
        return y, z

    def power_gain(self) -> float:
        """Sum of the squared impulse response (white-noise power in to power out): the
        discrete Lyapunov equation W = A W A' + B B' in closed form (a stable filter)."""
        p = self.order
        bb = np.outer(self._ss_b, self._ss_b)
        w = np.linalg.solve(np.eye(p * p) - np.kron(self._ss_a, self._ss_a), bb.reshape(-1))
        return float(self.b[0] ** 2 + w.reshape(p, p)[0, 0])
