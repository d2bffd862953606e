"""Stage types by name: the built-ins, plus third-party ones from `eegpi.stages` entry points."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import TypeVar

from eegpi.exc import ConfigError
from eegpi.pipeline.stage import Stage

__all__ = ["available", "lookup", "register"]

log = logging.getLogger("eegpi.pipeline")

_S = TypeVar("_S", bound=type[Stage])
_registry: dict[str, type[Stage]] = {}
_loaded = False


def register(cls: _S) -> _S:
    """Class decorator: make a stage type available under ``cls.type_name``."""
    name = cls.type_name
    existing = _registry.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"stage type {name!r} registered twice ({existing!r} and {cls!r})")
    _registry[name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import eegpi.pipeline.stages  # noqa: F401  (registers the built-ins)

    for ep in entry_points(group="eegpi.stages"):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must not take the daemon down
            log.error("cannot load stage plug-in %s (%s): %s", ep.name, ep.value, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            log.error("stage plug-in %s (%s) is not a Stage subclass", ep.name, ep.value)
            continue
        register(cls)


def available() -> list[str]:
    _load()
    return sorted(_registry)


def lookup(type_name: str) -> type[Stage]:
    """The stage class for a YAML ``type``; ConfigError listing the known types otherwise."""
    _load()
    try:
        return _registry[type_name]
    except KeyError:
        raise ConfigError(
            f"unknown stage type {type_name!r}; known types: {', '.join(sorted(_registry))}"
        ) from None
