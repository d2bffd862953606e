"""Data frames: 24-bit status word plus 24-bit two's-complement channels, per chip in a chain.

Decoding is vectorised over N frames at once so the acquisition thread only stores raw bytes and
the consumer pays one numpy pass per block. Status word bits 23..0 are
``1100 | LOFF_STATP[7:0] | LOFF_STATN[7:0] | GPIOD[4:1]``; the fixed top nibble is a cheap
alignment check, so frames whose nibble is not 0xC are reported invalid, not patched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "STATUS_MARK",
    "DecodedFrames",
    "decode_frames",
    "encode_frames",
    "frame_size",
    "status_word",
]

STATUS_MARK = 0xC
"""Top nibble of every valid status word."""


def frame_size(channels: int) -> int:
    """Bytes one chip sends per conversion: 27 for 8 channels, 21 for 6, 15 for 4."""
    return 3 * (channels + 1)


def status_word(statp: int, statn: int, gpio_register: int) -> int:
    """The 24-bit status word a chip sends for the given lead-off bits and GPIO register."""
    return (
        (STATUS_MARK << 20)
        | ((statp & 0xFF) << 12)
        | ((statn & 0xFF) << 4)
        | ((gpio_register >> 4) & 0xF)
    )


@dataclass(frozen=True)
class DecodedFrames:
    """N decoded frames of a chain of ``chips`` devices."""

    status: npt.NDArray[np.uint32]
    """Shape (n, chips): the 24-bit status word of each chip."""
    counts: npt.NDArray[np.int32]
    """Shape (n, chips * channels): sign-extended channel codes, chip 1 first."""

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        """Shape (n,): every chip's status word carries the 0xC mark."""
        # a ufunc reduce: ``np.all`` would add four Python-level wrapper calls to every tick
        marks: npt.NDArray[np.bool_] = np.logical_and.reduce(
            (self.status >> 20) == STATUS_MARK, axis=1
        )
        return marks

    @property
    def loff_statp(self) -> npt.NDArray[np.uint32]:
        """Shape (n, chips): LOFF_STATP (bit k-1 = INkP off)."""
        return ((self.status >> 12) & 0xFF).astype(np.uint32, copy=False)

    @property
    def loff_statn(self) -> npt.NDArray[np.uint32]:
        """Shape (n, chips): LOFF_STATN (bit k-1 = INkN off)."""
        return ((self.status >> 4) & 0xFF).astype(np.uint32, copy=False)

    @property
    def gpio(self) -> npt.NDArray[np.uint32]:
        """Shape (n, chips): GPIOD[4:1] levels."""
        return (self.status & 0xF).astype(np.uint32, copy=False)


def decode_frames(raw: npt.NDArray[np.uint8], chips: int, channels: int) -> DecodedFrames:
    """Decode raw frames.

    Args:
        raw: shape (n, chips * frame_size(channels)) bytes as clocked out, chip 1 first.
        chips: devices in the daisy chain.
        channels: channels per device (4, 6 or 8).

    Raises:
        ValueError: when ``raw`` does not have the frame length of that chain.
    """
    width = chips * frame_size(channels)
    if raw.ndim != 2 or raw.shape[1] != width:
        raise ValueError(
            f"frames of {chips} chip(s) x {channels} channels need {width} bytes per row, "
            f"got shape {raw.shape}"
        )
    # Each word is read as a big-endian 32-bit integer over the 3 bytes it is made of and one
    # neighbour, in place, through strided views of the frames: a channel word with the byte
    # before it (``(w << 8) >> 8`` drops that byte and sign-extends), a status word with the
    # byte after it (``>> 8``). Both neighbours lie inside the frame, so no view reads past it.
    # Three numpy operations in all: at low rates the decode runs once a tick with cold caches,
    # where each operation costs far more than the arithmetic.
    n = raw.shape[0]
    if n == 0:
        return DecodedFrames(
            status=np.zeros((0, chips), np.uint32), counts=np.zeros((0, chips * channels), np.int32)
        )
    if raw.dtype != np.uint8 or not raw.flags.c_contiguous:
        raw = np.ascontiguousarray(raw, dtype=np.uint8)
    size = width // chips
    words = np.ndarray((n, chips, channels), ">i4", raw, 2, (width, size, 3))
    counts = words << 8
    counts >>= 8
    marked: npt.NDArray[np.uint32] = np.ndarray((n, chips), ">u4", raw, 0, (width, size))
    status = marked >> np.uint32(8)
    return DecodedFrames(status=status, counts=counts.reshape(n, chips * channels))


def encode_frames(
    status: npt.NDArray[np.integer], counts: npt.NDArray[np.integer], chips: int
) -> npt.NDArray[np.uint8]:
    """The inverse of :func:`decode_frames` (the emulator's output stage).

    Args:
        status: shape (n, chips) 24-bit status words.
        counts: shape (n, chips * channels) codes, already clipped to the 24-bit range.
        chips: devices in the chain.
    """
    n = counts.shape[0]
    channels = counts.shape[1] // chips
    words = np.empty((n, chips, channels + 1), dtype=np.int64)
    words[:, :, 0] = status
    words[:, :, 1:] = counts.reshape(n, chips, channels)
    words &= 0xFFFFFF
    out = np.empty((n, chips, channels + 1, 3), dtype=np.uint8)
    out[..., 0] = words >> 16
    out[..., 1] = (words >> 8) & 0xFF
    out[..., 2] = words & 0xFF
    return out.reshape(n, chips * frame_size(channels))
