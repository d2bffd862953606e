"""Find and load the compiled native reader (see :mod:`eegpi.hardware.native.build`).

The library is looked up at ``$EEGPI_NATIVE_LIB`` when set, else next to ``reader.c`` in this
package, where ``eegpi build-native`` puts it. A library built from another version of
``reader.c`` is refused by its ABI number, so a stale build is an error that says to rebuild,
never a silent mismatch of structure layouts.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from eegpi.exc import HardwareError
from eegpi.hardware.native.build import LIBRARY_NAME, default_library_dir, source_digest

__all__ = ["ABI", "ENV_LIBRARY", "ReaderConfig", "ReaderStats", "library_path", "load_library"]

ABI = 1
"""``EEGPI_READER_ABI`` of the ``reader.c`` these structures match."""
ENV_LIBRARY = "EEGPI_NATIVE_LIB"
"""Environment variable naming the library file to load instead of the package's."""


class ReaderConfig(ctypes.Structure):
    """``struct reader_config`` of reader.c (same fields, same order)."""

    _fields_ = [
        ("abi", ctypes.c_int64),
        ("ring", ctypes.c_void_p),
        ("capacity", ctypes.c_int64),
        ("frame_len", ctypes.c_int64),
        ("lock", ctypes.c_void_p),
        ("wake", ctypes.c_void_p),
        ("space", ctypes.c_void_p),
        ("drdy_fd", ctypes.c_int32),
        ("spi_fd", ctypes.c_int32),
        ("transport", ctypes.c_int32),
        ("speed_hz", ctypes.c_uint32),
        ("period_ns", ctypes.c_double),
        ("stuck_ns", ctypes.c_int64),
        ("poll_ms", ctypes.c_int32),
        ("lossless", ctypes.c_int32),
        ("virtual_now", ctypes.c_void_p),
        ("stop", ctypes.c_void_p),
    ]


class ReaderStats(ctypes.Structure):
    """``struct reader_stats`` of reader.c: written by the reader, read live by Python."""

    _fields_ = [
        ("frames", ctypes.c_int64),
        ("cpu_ns", ctypes.c_int64),
        ("loops", ctypes.c_int64),
        ("detail", ctypes.c_int64),
        ("user_ns", ctypes.c_int64),
    ]


def library_path() -> Path:
    """Where the library is looked for: ``$EEGPI_NATIVE_LIB``, else the package directory."""
    chosen = os.environ.get(ENV_LIBRARY)
    return Path(chosen) if chosen else default_library_dir() / LIBRARY_NAME


def load_library(path: Path | None = None) -> ctypes.CDLL:
    """The loaded reader library, its functions typed.

    Raises:
        HardwareError: not built, unloadable, or built from another version of reader.c; the
            message says how to build it.
    """
    path = path or library_path()
    rebuild = (
        "run `eegpi build-native` (as root on an appliance: sudo /opt/eegpi/bin/eegpi "
        "build-native; needs gcc and libc6-dev), or set device.reader: python"
    )
    if not path.is_file():
        raise HardwareError(
            f"device.reader: native, but the native reader {path} is not built; {rebuild}"
        )
    try:
        lib = ctypes.CDLL(str(path), use_errno=True)
        abi = lib.eegpi_reader_abi
    except (OSError, AttributeError) as exc:
        raise HardwareError(f"cannot load the native reader {path}: {exc}; {rebuild}") from exc
    abi.restype = ctypes.c_int
    abi.argtypes = []
    if abi() != ABI:
        raise HardwareError(
            f"the native reader {path} was built from another eegpi version (ABI {abi()}, this "
            f"eegpi needs {ABI}); {rebuild}"
        )
    try:
        source = lib.eegpi_reader_source
    except AttributeError:
        source = None
    built_from = ""
    if source is not None:
        source.restype = ctypes.c_char_p
        source.argtypes = []
        built_from = (source() or b"").decode("ascii", "replace")
    try:
        shipped = source_digest()
    except OSError:  # reader.c removed from the installation: the ABI check is all there is
        shipped = built_from
    if built_from != shipped:
        raise HardwareError(
            f"the native reader {path} was built from another reader.c than this eegpi ships "
            f"(an upgrade since it was built); {rebuild}"
        )
    lib.eegpi_reader_run.restype = ctypes.c_int
    lib.eegpi_reader_run.argtypes = [ctypes.POINTER(ReaderConfig), ctypes.POINTER(ReaderStats)]
    lib.eegpi_reader_max_events.restype = ctypes.c_int
    lib.eegpi_reader_max_events.argtypes = []
    return lib
