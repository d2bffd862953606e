"""scipy's compiled ``sosfilt`` kernel, loaded without ``scipy.signal``.

``import scipy.signal`` runs the package's ``__init__``, which imports about 900 modules
(scipy.stats, optimize, sparse, special...): tens of MB of the daemon's memory and half a second
of CPU (three seconds on a Pi 4), none of which filtering uses. The kernel's extension module needs
only numpy, so it is loaded from its file alone. Filter stages name :func:`sosfilt` in their
``preload``, so the load overlaps the chip's bring-up instead of the first tick.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from eegpi.lazy import IMPORT_LOCK

Kernel = Callable[[Any, Any, Any], None]
"""``_sosfilt(sos, x, zi)``: filters ``x`` (channels, samples) in place and updates ``zi``."""

__all__ = ["KERNEL_MODULE", "Kernel", "sosfilt"]

KERNEL_MODULE = "scipy.signal._sosfilt"


def _load() -> ModuleType:
    """The kernel's module, registered in ``sys.modules`` under its own name.

    A later ``import scipy.signal`` (``decimate``, ``band_power``) then takes this module
    instead of initialising the extension a second time, which Cython modules refuse. The
    caller holds :data:`eegpi.lazy.IMPORT_LOCK`, as eegpi's deferred imports of scipy.signal
    do, so neither sees the other's module half initialised.
    """
    if "scipy.signal" in sys.modules or KERNEL_MODULE in sys.modules:
        return importlib.import_module(KERNEL_MODULE)
    import scipy  # the top-level package only: its subpackages load on first use

    directory = Path(scipy.__file__).parent / "signal"
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    path = next((p for s in suffixes if (p := directory / f"_sosfilt{s}").is_file()), None)
    spec = importlib.util.spec_from_file_location(KERNEL_MODULE, path) if path else None
    if spec is None or spec.loader is None:  # pragma: no cover - another layout: import it
        return importlib.import_module(KERNEL_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[KERNEL_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[KERNEL_MODULE]
        raise
    return module


_UNSET: Any = object()
_kernel: Kernel | None = _UNSET


def sosfilt() -> Kernel | None:
    """The kernel, loaded on the first call; None where a scipy release does not have it
    (then ``scipy.signal.sosfilt`` is used)."""
    global _kernel
    with IMPORT_LOCK:
        if _kernel is _UNSET:
            try:
                _kernel = _load()._sosfilt
            except (ImportError, AttributeError):  # pragma: no cover - the scipy release
                _kernel = None
        return _kernel
