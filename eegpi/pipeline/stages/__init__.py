"""Built-in stage types; importing this package registers them."""

from __future__ import annotations

from eegpi.pipeline.stages import (  # noqa: F401
    convert,
    filters,
    impedance,
    lsl,
    recorder,
    select,
    sinks,
    source,
    spectral,
)
