"""An emulated Raspberry Pi with an ADS1299 on it, for testing EEG drivers without a board.

>>> from eegpi.emulator import Board
>>> board = Board(realtime=False)
>>> with board.install():
...     import spidev                      # the emulated one, while installed
...     spi = spidev.SpiDev()
...     spi.open(0, 0)
...     spi.mode = 1
...     _ = spi.xfer2([0x11], 1_000_000, 2)  # SDATAC
...     hex(spi.xfer2([0x20, 0x00, 0x00], 1_000_000, 2)[2])
'0x3e'

``Board(chips=1, pins=None, realtime=True, **options)``:

* ``chips``: ADS1299s in a daisy chain on one chip-select (1-4), or 2 with ``cs2``/``drdy2``;
* ``pins``: BCM GPIO of ``drdy`` (26), ``cs`` (8 = CE0 of /dev/spidev0.0; 7 = CE1; any other
  GPIO is a chip-select the driver drives by hand), ``reset``, ``start``, ``pwdn`` (not wired
  unless given), and for two-chip-select boards ``cs2`` and ``drdy2``;
* ``realtime``: DRDY at the programmed rate in wall-clock time; False runs in virtual time,
  as fast as the driver reads;
* ``options``: any :class:`~eegpi.hardware.config.EmulatorConfig` field (``seed``,
  ``id_register``, ``clock_ppm``, ``strict``, ``leads_off``, faults, ...).

See docs/emulator.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import types
from collections.abc import Iterator, Mapping
from typing import Any

from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.emulator import EmulatedBoard, device_pins

__all__ = ["Board"]

_OPTIONS = frozenset(f.name for f in dataclasses.fields(EmulatorConfig)) - {"realtime", "chips"}


class Board(EmulatedBoard):
    """A Pi wired to emulated ADS1299s; see the module docstring."""

    def __init__(
        self,
        chips: int = 1,
        pins: Mapping[str, int] | None = None,
        realtime: bool = True,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise TypeError(
                f"Board: unknown option(s) {', '.join(unknown)}; options are "
                f"{', '.join(sorted(_OPTIONS))}"
            )
        if not 1 <= chips <= 4:
            raise ValueError(f"Board: chips={chips} is not 1..4")
        super().__init__(EmulatorConfig(realtime=realtime, **options), chips, pins)

    @classmethod
    def from_device(cls, cfg: DeviceConfig, chips: int = 1) -> Board:
        """The board the ``mock`` backend runs for a ``device:`` config."""
        emu = cfg.emulator
        options = {n: getattr(emu, n) for n in _OPTIONS}
        return cls(emu.chips or chips, device_pins(cfg), emu.realtime, **options)

    @contextlib.contextmanager
    def install(self) -> Iterator[Board]:
        """Put ``spidev``, ``RPi``, ``RPi.GPIO`` and ``gpiod`` for this board into
        ``sys.modules``; on exit put back what was there and release the GPIO state.

        In virtual time ``time.sleep`` moves the board's clock instead of waiting, while
        installed. Code that imports those modules inside the block reaches this board.
        Modules imported before it keep what they imported then, so import the driver inside
        the block; modules first imported inside it that use the drop-ins are forgotten on
        exit.
        """
        modules = self.modules()
        gpio = self.gpio
        saved: dict[str, types.ModuleType | None] = {n: sys.modules.get(n) for n in modules}
        before = set(sys.modules)
        sys.modules.update(modules)
        real_sleep = time.sleep
        if not self.clock.realtime:
            time.sleep = self._virtual_sleep  # type: ignore[assignment]
        try:
            yield self
        finally:
            time.sleep = real_sleep
            for name, previous in saved.items():
                if previous is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = previous
            # Drivers first imported in the block hold this board's modules: forget them, so
            # the next block (the next test) imports them afresh onto its own board.
            dropins = set(map(id, modules.values()))
            for name in set(sys.modules) - before:
                if _uses(sys.modules.get(name), dropins, gpio):
                    del sys.modules[name]
            if gpio is not None:
                gpio.cleanup()

    def _virtual_sleep(self, seconds: float) -> None:
        """``time.sleep`` while a virtual-time board is installed: the driver's waits (after a
        RESET, for the reference) pass in virtual time, at once and deterministically."""
        self.clock.sleep(seconds)
        _REAL_SLEEP(0)  # let other threads run, as a sleep would


_REAL_SLEEP = time.sleep


def _uses(module: object, dropins: set[int], gpio: object) -> bool:
    """Whether ``module`` imported one of the drop-in modules or a name from one."""
    for value in list(getattr(module, "__dict__", {}).values()):
        if id(value) in dropins or getattr(value, "__self__", None) is gpio:
            return True
        if getattr(value, "__module__", None) in _DROPIN_NAMES and isinstance(value, type):
            return True
    return False


_DROPIN_NAMES = frozenset({"spidev", "gpiod"})
