"""Heavy imports deferred to first use, and started early in the background when they will be
needed.

``scipy.signal`` takes most of a second to import (a Pi 4 takes about three) and pulls in 900
modules, scipy.stats and scipy.optimize among them. The stages that need it (``decimate``,
``band_power``) import it through :class:`LazyModule`, so loading and validating pipelines
(daemon start-up, ``eegpi validate``, SIGHUP) never pays for it; a pipeline that uses them pays
once, when it opens, and :func:`preload` overlaps that import with the time spent waiting for
the acquisition process to open the chip. Filters load only scipy's compiled kernel
(:mod:`eegpi.pipeline.stages.kernel`), preloaded the same way.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable
from types import ModuleType
from typing import Any

__all__ = ["IMPORT_LOCK", "LazyModule", "preload"]

log = logging.getLogger(__name__)

IMPORT_LOCK = threading.RLock()
"""Held by every deferred import here and by the standalone load of scipy's filter kernel, so
that one never finds the other's module half initialised."""


class LazyModule:
    """Stands in for a module; the first attribute read imports it (thread-safe: the import
    system's per-module lock makes a second thread wait for the first one's import)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            with IMPORT_LOCK:
                module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r}, {state}>"


def _import_quietly(name: str) -> None:
    try:
        module_name, _, function = name.partition(":")
        if function:  # the function loads (and caches) what it needs, taking the lock itself
            getattr(importlib.import_module(module_name), function)()
        else:
            with IMPORT_LOCK:
                importlib.import_module(name)
    except Exception:  # the stage that needs it reports the failure when it opens
        log.debug("background import of %s failed", name, exc_info=True)


def preload(names: Iterable[str]) -> threading.Thread | None:
    """Import ``names`` in a background thread (those not imported yet); None if none is left.

    A name is a module (``scipy.signal``) or ``module:function``, a function that loads
    something and caches it (:func:`eegpi.pipeline.stages.kernel.sosfilt`). A thread that is
    importing holds :data:`IMPORT_LOCK`, so a stage that reaches for the module meanwhile just
    waits for it: the work is never done twice.
    """
    import sys

    todo = [n for n in dict.fromkeys(names) if ":" in n or n not in sys.modules]
    if not todo:
        return None

    def run() -> None:
        for name in todo:
            _import_quietly(name)

    thread = threading.Thread(target=run, name="eegpi-preload", daemon=True)
    thread.start()
    return thread
