"""The filters the daemon designs itself: Butterworth and notch, as second-order sections.

Why not ``scipy.signal``: importing it loads about 900 modules (scipy.stats, optimize, sparse,
special...) for these closed-form designs. With the default pipeline running that was 68 of the
daemon's 139 MB, and half a second of CPU (about three seconds on a Pi 4) between a start and
its first data. The designs below follow ``scipy.signal.butter(..., output="sos")`` and
``iirnotch`` step by step (analog prototype, frequency transform, pre-warped bilinear
transform, scipy's "nearest" pole-zero pairing and section order): the Butterworth sections are
scipy's bit for bit, the notch's agree to rounding, and ``tests/pipeline/test_filter_design.py``
holds them to scipy for every order, type and rate a pipeline accepts. Stages that need more of
scipy (``decimate``'s Chebyshev and FIR designs, ``band_power``'s Welch estimate) still import
it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["butter_sos", "notch_sos", "sosfilt_zi"]

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

BandType = Literal["lowpass", "highpass", "bandpass"]


def butter_sos(
    order: int, cutoff_hz: float | Sequence[float], btype: BandType, fs: float
) -> FloatArray:
    """``scipy.signal.butter(order, cutoff_hz, btype, fs=fs, output="sos")``.

    ``cutoff_hz`` is one -3 dB frequency for low- and high-pass, ``(low, high)`` for
    band-pass; each must lie strictly between 0 and the Nyquist frequency.
    """
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    wn = np.atleast_1d(np.asarray(cutoff_hz, dtype=np.float64)) / (fs / 2)
    if np.any(wn <= 0) or np.any(wn >= 1):
        raise ValueError(f"cut-offs must lie between 0 and {fs / 2:g} Hz, got {cutoff_hz}")
    if wn.size != (2 if btype == "bandpass" else 1):
        raise ValueError(f"{btype} takes {'two cut-offs' if btype == 'bandpass' else 'one'}")
    # analog prototype: poles on the left half of the unit circle (the middle one exactly real)
    m = np.arange(-order + 1, order, 2, dtype=np.float64)
    p: ComplexArray = -np.exp(1j * np.pi * m / (2 * order))
    z: ComplexArray = np.empty(0, dtype=np.complex128)
    k = 1.0
    warped = 4.0 * np.tan(np.pi * wn / 2.0)  # pre-warped for the bilinear transform at fs = 2
    if btype == "lowpass":
        wo = float(warped[0])
        z, p, k = wo * z, wo * p, k * wo ** (len(p) - len(z))
    elif btype == "highpass":
        wo = float(warped[0])
        degree = len(p) - len(z)
        k = k * float(np.real(np.prod(-z) / np.prod(-p)))
        z = np.concatenate((wo / z, np.zeros(degree)))
        p = wo / p
    elif btype == "bandpass":
        bw = float(warped[1] - warped[0])
        wo = float(np.sqrt(warped[0] * warped[1]))
        degree = len(p) - len(z)
        z_lp = (z * bw / 2).astype(np.complex128)
        p_lp = (p * bw / 2).astype(np.complex128)
        z = np.concatenate(
            (z_lp + np.sqrt(z_lp**2 - wo**2), z_lp - np.sqrt(z_lp**2 - wo**2), np.zeros(degree))
        )
        p = np.concatenate((p_lp + np.sqrt(p_lp**2 - wo**2), p_lp - np.sqrt(p_lp**2 - wo**2)))
        k = k * bw**degree
    else:
        raise ValueError(f"btype must be lowpass, highpass or bandpass, got {btype!r}")
    # bilinear transform at fs = 2: zeros at infinity land on Nyquist (z = -1)
    degree = len(p) - len(z)
    fs2 = 4.0
    k = k * float(np.real(np.prod(fs2 - z) / np.prod(fs2 - p)))
    z = np.concatenate(((fs2 + z) / (fs2 - z), -np.ones(degree)))
    p = (fs2 + p) / (fs2 - p)
    return _zpk2sos(z, p, k)


def notch_sos(freq_hz: float, quality: float, fs: float) -> FloatArray:
    """``scipy.signal.tf2sos(*scipy.signal.iirnotch(freq_hz, quality, fs=fs))``: one section."""
    w0 = 2 * freq_hz / fs
    if not 0 < w0 < 1:
        raise ValueError(f"freq_hz must lie between 0 and {fs / 2:g} Hz, got {freq_hz:g}")
    bw = w0 / quality * math.pi
    w0 *= math.pi
    gain = 1.0 / (1.0 + math.tan(bw / 2.0))
    b = [gain, -2.0 * gain * math.cos(w0), gain]
    a = [1.0, -2.0 * gain * math.cos(w0), 2.0 * gain - 1.0]
    return np.array([b + a], dtype=np.float64)


def sosfilt_zi(sos: FloatArray) -> FloatArray:
    """``scipy.signal.sosfilt_zi``: each section's step-response steady state, (sections, 2)."""
    zi = np.empty((sos.shape[0], 2))
    scale = 1.0
    for i, section in enumerate(sos):
        b = section[:3] / section[3]
        a = section[3:] / section[3]
        # lfilter_zi for one biquad: solve (I - A^T) zi = b[1:] - a[1:] b[0], A the companion
        i_minus_a = np.array([[1.0 + a[1], -1.0], [a[2], 1.0]])
        zi[i] = scale * np.linalg.solve(i_minus_a, b[1:] - a[1:] * b[0])
        scale *= b.sum() / a.sum()
    return zi


def _zpk2sos(z: ComplexArray, p: ComplexArray, k: float) -> FloatArray:
    """scipy's ``zpk2sos`` with its default "nearest" pairing, for a digital filter.

    The pole closest to the unit circle goes last, with the zero nearest to it; each earlier
    section takes the next such pole. That ordering keeps every section's gain moderate.
    """
    p = np.concatenate((p, np.zeros(max(len(z) - len(p), 0))))
    z = np.concatenate((z, np.zeros(max(len(p) - len(z), 0))))
    n_sections = (max(len(p), len(z)) + 1) // 2
    if len(p) % 2 == 1:
        p = np.concatenate((p, [0.0]))
        z = np.concatenate((z, [0.0]))
    z = np.concatenate(_cplxreal(z))
    p = np.concatenate(_cplxreal(p))
    sos = np.zeros((n_sections, 6))
    for si in range(n_sections - 1, -1, -1):
        p1_idx = int(np.argmin(np.abs(1 - np.abs(p))))
        p1 = p[p1_idx]
        p = np.delete(p, p1_idx)
        if np.isreal(p1) and np.isreal(p).sum() == 0:
            # the last real pole, alone in its section with the nearest real zero
            z1_idx = _nearest(z, p1, "real")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _section([z1, 0], [p1, 0])
        elif (
            len(p) + 1 == len(z)
            and not np.isreal(p1)
            and np.isreal(p).sum() == 1
            and np.isreal(z).sum() == 1
        ):
            # one real pole and one real zero left: this pair must take a complex zero pair
            z1_idx = _nearest(z, p1, "complex")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _section([z1, z1.conj()], [p1, p1.conj()])
        else:
            if np.isreal(p1):
                real = np.flatnonzero(np.isreal(p))
                p2_idx = real[np.argmin(np.abs(np.abs(p[real]) - 1))]
                p2 = p[p2_idx]
                p = np.delete(p, p2_idx)
            else:
                p2 = p1.conj()
            if len(z) == 0:
                sos[si] = _section([], [p1, p2])
                continue
            z1_idx = _nearest(z, p1, "any")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            if not np.isreal(z1):
                sos[si] = _section([z1, z1.conj()], [p1, p2])
            elif len(z) > 0:
                z2_idx = _nearest(z, p1, "real")
                z2 = z[z2_idx]
                z = np.delete(z, z2_idx)
                sos[si] = _section([z1, z2], [p1, p2])
            else:
                sos[si] = _section([z1], [p1, p2])
    sos[0][:3] *= k
    return sos


def _nearest(fro: ComplexArray, to: complex, which: Literal["real", "complex", "any"]) -> int:
    """Index of the element of ``fro`` nearest to ``to`` among the real, complex or all ones."""
    order = np.argsort(np.abs(fro - to))
    if which == "any":
        return int(order[0])
    mask = np.isreal(fro[order])
    if which == "complex":
        mask = ~mask
    return int(order[np.nonzero(mask)[0][0]])


def _section(z: Sequence[complex], p: Sequence[complex]) -> FloatArray:
    """One section [b0, b1, b2, 1, a1, a2] from up to two zeros and two poles, gain 1."""
    section = np.zeros(6)
    b = np.real(np.poly(z)) if len(z) else np.ones(1)
    a = np.real(np.poly(p))
    section[3 - len(b) : 3] = b
    section[6 - len(a) : 6] = a
    return section


def _cplxreal(z: ComplexArray) -> tuple[ComplexArray, FloatArray]:
    """Conjugate pairs (one of each, positive imaginary part) and real values, sorted as
    scipy sorts them, so that ties in the pairing break the same way."""
    z = np.atleast_1d(z)
    if z.size == 0:
        return z, np.empty(0)
    tol = 100 * np.finfo(np.float64).eps
    z = z[np.lexsort((abs(z.imag), z.real))]
    real = abs(z.imag) <= tol * abs(z)
    zr = z[real].real
    if len(zr) == len(z):
        return np.empty(0, dtype=np.complex128), zr
    z = z[~real]
    zp = z[z.imag > 0]
    zn = z[z.imag < 0]
    if len(zp) != len(zn):
        raise ValueError("a complex root has no conjugate")
    same_real = np.diff(zp.real) <= tol * abs(zp[:-1])
    diffs = np.diff(np.concatenate(([0], same_real, [0])))
    for start, stop in zip(np.nonzero(diffs > 0)[0], np.nonzero(diffs < 0)[0] + 1, strict=True):
        for chunk in (zp[start:stop], zn[start:stop]):
            chunk[...] = chunk[np.lexsort([abs(chunk.imag)])]
    if any(abs(zp - zn.conj()) > tol * abs(zn)):
        raise ValueError("a complex root has no conjugate")
    return (zp + zn.conj()) / 2, zr
