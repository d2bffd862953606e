"""Built-in stage types; importing this package registers them."""

from __future__ import annotations

from eegpi.pipeline.stages import convert, filters, sinks, source, spectral  # noqa: F401
