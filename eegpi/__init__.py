"""eegpi: a Raspberry Pi + TI ADS1299 EEG amplifier appliance."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
