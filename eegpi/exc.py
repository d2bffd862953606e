"""The eegpi exception tree.

Every error eegpi raises on purpose derives from :class:`EegpiError` and also from the builtin
category it belongs to, so callers may catch either way::

    EegpiError
    ├── ConfigError (ValueError)            bad YAML, config or parameter; names file/stage/field
    ├── PipelineNotFound (LookupError)      no pipeline of that name    -> NOT_FOUND
    ├── PipelineStateError (RuntimeError)   valid request, wrong state  -> FAILED_PRECONDITION
    │   └── DeviceBusy                      another running pipeline holds the device
    ├── HardwareError (OSError)             SPI/GPIO failure, no chip, stuck DRDY
    └── StageError (RuntimeError)           a stage failed while processing; names the stage
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeviceBusy",
    "EegpiError",
    "HardwareError",
    "PipelineNotFound",
    "PipelineStateError",
    "StageError",
]


class EegpiError(Exception):
    """Root of every error eegpi raises deliberately."""


class ConfigError(EegpiError, ValueError):
    """Invalid configuration or pipeline description; the message names where."""


class PipelineNotFound(EegpiError, LookupError):
    """No pipeline with the requested name."""


class PipelineStateError(EegpiError, RuntimeError):
    """The request is valid but not in the pipeline's current state."""


class DeviceBusy(PipelineStateError):
    """Another running pipeline already holds the device."""


class HardwareError(EegpiError, OSError):
    """The chip or its bus misbehaved: no answer, bad ID, stuck DRDY, SPI failure."""


class StageError(EegpiError, RuntimeError):
    """A stage raised while opening or processing; the message names the stage."""
