"""Which reader the acquisition process runs: ``device.reader``.

``python``: :class:`~eegpi.hardware.acquisition.Acquisition`. ``native``: the C loop, and an
error that says what to do when it cannot run (library not built, RPi.GPIO DRDY, a second
chip-select driven by hand). ``auto``: the C loop when it can run, else the Python reader,
with the reason logged.
"""

from __future__ import annotations

import logging
from typing import Any, TypeAlias

from eegpi.exc import HardwareError
from eegpi.hardware.acquisition import Acquisition
from eegpi.hardware.driver import Ads1299
from eegpi.hardware.native.reader import NativeAcquisition

__all__ = ["Reader", "make_acquisition"]

Reader: TypeAlias = Acquisition | NativeAcquisition
"""Either reader: the same control and consumer surface."""

log = logging.getLogger("eegpi.hardware")


def make_acquisition(reader: str, device: Ads1299, sample_rate: int, **kwargs: Any) -> Reader:
    """An :class:`Acquisition` or a :class:`~eegpi.hardware.native.reader.NativeAcquisition`
    for ``device`` (``kwargs``: Acquisition's keyword arguments).

    Raises:
        HardwareError: ``native`` cannot run here (the message says why and what to do).
    """
    if reader == "python":
        return Acquisition(device, sample_rate, **kwargs)
    if reader == "native":
        return NativeAcquisition(device, sample_rate, **kwargs)
    try:
        acq = NativeAcquisition(device, sample_rate, **kwargs)
    except HardwareError as exc:
        log.info("device.reader: auto runs the Python reader: %s", exc)
        return Acquisition(device, sample_rate, **kwargs)
    log.info("device.reader: auto runs the native reader")
    return acq
