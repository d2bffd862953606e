"""Sans-I/O ADS1299 chip logic: register map, command encoding, frame decoding, settings.

Nothing here touches a file descriptor, so the Pi backend and the emulator share it.
"""

from __future__ import annotations

__all__: list[str] = []
