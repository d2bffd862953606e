"""The native acquisition reader: the per-frame loop in C, behind the same ring and the same
loss accounting as the Python reader (``device.reader: python | native | auto``).

``reader.c`` ships as package data and is compiled on the machine that runs it
(``eegpi build-native``, :mod:`~eegpi.hardware.native.build`); :mod:`.library` loads it,
:mod:`.endpoints` finds the DRDY and SPI descriptors (a Pi's, or the emulator's), and
:class:`~eegpi.hardware.native.reader.NativeAcquisition` runs it. docs/architecture.md, "The
native reader", says why and what it costs.
"""

from __future__ import annotations

from eegpi.hardware.native.choice import Reader, make_acquisition

__all__ = ["Reader", "make_acquisition"]
