"""The emulated ADS1299: a chip model on an emulated Pi board, and stand-ins for the libraries
a driver uses to reach it (``spidev``, ``gpiod`` v2, ``RPi.GPIO``).

:class:`EmulatedBoard` is the board: its chips, their wiring (chip-selects, DRDY lines,
RESET/START/PWDN), and the library stand-ins on it. The public :class:`eegpi.emulator.Board`
is this class with a friendlier constructor and ``install()``; the ``mock`` backend builds the
same board from the ``device:`` config and runs the ``pi`` backend's classes on its stand-ins.
"""

from __future__ import annotations

import dataclasses
import errno
import types
from collections.abc import Mapping
from typing import Any

from eegpi.exc import HardwareError
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.emulator import gpiochip
from eegpi.hardware.emulator.chip import Ads1299Emulator, channels_for_id
from eegpi.hardware.emulator.clock import EmulatorClock, RealtimeClock, VirtualClock
from eegpi.hardware.emulator.kernel import EmulatedSpiDev
from eegpi.hardware.emulator.rpigpio import EmulatedRpiGpio
from eegpi.hardware.emulator.stimulus import Stimulus
from eegpi.hardware.emulator.wiring import CE_LINES, Port, Wiring, check_pins

__all__ = ["Ads1299Emulator", "EmulatedBoard", "channels_for_id", "device_pins"]


def device_pins(cfg: DeviceConfig) -> dict[str, int]:
    """The board wiring a ``device:`` config describes: chip 1's CS from ``spi_bus``/
    ``spi_device``, DRDY and a second chip's ``cs2``/``drdy2`` from ``device.board``.

    Raises:
        HardwareError: the configured SPI device has no hardware chip-select on a Pi.
    """
    ce = next((pin for pin, dev in CE_LINES.items() if dev == (cfg.spi_bus, cfg.spi_device)), None)
    if ce is None:
        raise HardwareError(
            errno.ENODEV,
            f"the emulated Pi has no {cfg.spi_path}: use spi_bus 0 (device 0 or 1) or "
            "spi_bus 1 (device 0, 1 or 2)",
        )
    named = (("reset", cfg.reset_pin), ("start", cfg.start_pin), ("pwdn", cfg.pwdn_pin))
    pins = {**cfg.board_pins(), "cs": ce}
    pins.update({name: pin for name, pin in named if pin is not None})
    return pins


class _OutputLines:
    """RESET/START/PWDN as booleans over a gpiod stand-in request (what ``pi`` wraps)."""

    def __init__(self, request: gpiochip.LineRequest) -> None:
        self._request = request

    def set_level(self, offset: int, high: bool) -> None:
        value = gpiochip.Value.ACTIVE if high else gpiochip.Value.INACTIVE
        self._request.set_value(offset, value)

    def release(self) -> None:
        self._request.release()


class EmulatedBoard:
    """A Pi wired to one ADS1299 daisy chain (one chip-select), or to two chips on their own
    chip-selects and DRDY lines when ``pins`` names ``cs2`` and ``drdy2``."""

    def __init__(
        self, cfg: EmulatorConfig, chips: int = 1, pins: Mapping[str, int] | None = None
    ) -> None:
        self.cfg = cfg
        self.pins = check_pins(pins)
        self.clock: EmulatorClock = (
            RealtimeClock() if cfg.realtime else VirtualClock(cfg.virtual_speed)
        )
        n = cfg.chips or chips
        if "cs2" in self.pins:
            if n != 2:
                raise ValueError(f"pins: cs2/drdy2 wire a second chip, but chips is {n}")
            ppm = cfg.clock_ppm if cfg.chip2_clock_ppm is None else cfg.chip2_clock_ppm
            second = dataclasses.replace(cfg, seed=cfg.seed + 1, clock_ppm=ppm)
            ports = [
                Port(Ads1299Emulator(cfg, 1, self.clock), self.pins["cs"], self.pins["drdy"]),
                Port(Ads1299Emulator(second, 1, self.clock), self.pins["cs2"], self.pins["drdy2"]),
            ]
        else:
            ports = [Port(Ads1299Emulator(cfg, n, self.clock), self.pins["cs"], self.pins["drdy"])]
        self.wiring = Wiring(ports, self.pins, self.clock)
        if cfg.trigger_pin is not None and cfg.trigger_pin in self.pins.values():
            raise ValueError(
                f"emulator.trigger_pin: GPIO{cfg.trigger_pin} is one of the board's own pins "
                f"({', '.join(f'{n}={p}' for n, p in self.pins.items())})"
            )
        self.wiring.stimulus = Stimulus(ports[0].chip, cfg)
        self.chips = [p.chip for p in ports]
        self.chip = self.chips[0]
        """The chain on the first chip-select."""
        self.SpiDev: type[EmulatedSpiDev] = type(
            "SpiDev", (EmulatedSpiDev,), {"wiring": self.wiring, "__module__": "spidev"}
        )
        """``spidev.SpiDev`` on this board."""
        self._gpiochip = gpiochip.make_chip_model(self.wiring, cfg.event_buffer_size)
        self.Chip = gpiochip.chip_class(self._gpiochip)
        """``gpiod.Chip`` on this board."""
        self.request_lines = gpiochip.request_lines_of(self.Chip)
        """``gpiod.request_lines`` on this board."""
        self.gpio: EmulatedRpiGpio | None = None
        """The ``RPi.GPIO`` state behind the latest :meth:`modules`."""

    @classmethod
    def for_device(cls, cfg: DeviceConfig, chips: int = 1) -> EmulatedBoard:
        """The board a ``device:`` config with ``backend: mock`` describes."""
        return cls(cfg.emulator, chips, device_pins(cfg))

    # --- ground truth ------------------------------------------------------------------------

    def _port(self, chip: int) -> Port:
        ports = self.wiring.ports
        if len(ports) > 1:
            if not 0 <= chip < len(ports):
                raise IndexError(f"chip {chip}: this board has chips 0..{len(ports) - 1}")
            return ports[chip]
        if not 0 <= chip < ports[0].chip.chips:
            raise IndexError(f"chip {chip}: this board has chips 0..{ports[0].chip.chips - 1}")
        return ports[0]  # a daisy chain converts in step and shares CS, DIN and the registers

    def drdy_level(self, chip: int = 0) -> int:
        """The DRDY pin of ``chip`` now: 0 from a conversion until the first SCLK of a read
        (or until 4 tCLK before the next conversion if nobody reads), else 1."""
        return int(self.wiring.drdy_high(self._port(chip)))

    def registers(self, chip: int = 0) -> bytes:
        """``chip``'s register file (0x00-0x17) as written; chips of a daisy chain share one."""
        return bytes(self._port(chip).chip.regs)

    @property
    def violations(self) -> list[Any]:
        """Every datasheet timing rule the host broke, oldest first (from the chip model)."""
        found: list[Any] = []
        for c in self.chips:
            found += list(getattr(c, "violations", ()))
        return found

    # --- factories the pi backend classes accept ---------------------------------------------

    def spidev(self) -> EmulatedSpiDev:
        """Stand-in for ``spidev.SpiDev()``."""
        return self.SpiDev()

    def request_drdy(
        self, chip_path: str, offset: int, event_buffer_size: int | None = None
    ) -> gpiochip.LineRequest:
        """``gpiod.request_lines`` with falling-edge detection on DRDY, as the pi backend asks:
        keeps the events asked for (the kernel's 16 when not asked), at most the emulator's
        ``event_buffer_size``."""
        settings = gpiochip.LineSettings(
            direction=gpiochip.Direction.INPUT,
            edge_detection=gpiochip.Edge.FALLING,
            bias=gpiochip.Bias.PULL_UP,
        )
        return self.request_lines(
            chip_path,
            config={offset: settings},
            consumer="eegpi-drdy",
            event_buffer_size=event_buffer_size,
        )

    def request_outputs(self, chip_path: str, lines: Mapping[str, int]) -> _OutputLines:
        """``gpiod.request_lines`` of RESET/START/PWDN: RESET and PWDN high, START low."""
        config = {
            offset: gpiochip.LineSettings(
                direction=gpiochip.Direction.OUTPUT,
                output_value=gpiochip.Value.INACTIVE if name == "start" else gpiochip.Value.ACTIVE,
            )
            for name, offset in lines.items()
        }
        return _OutputLines(self.request_lines(chip_path, config=config, consumer="eegpi-ctl"))

    def connect_trigger(self, pin: int) -> None:
        """Wire the emulated stimulus to ``pin`` (the trigger input's), unless
        ``emulator.trigger_pin`` already wired it elsewhere."""
        stimulus = self.wiring.stimulus
        if stimulus is not None:
            stimulus.connect(pin)

    def rpi_gpio(self, self_paced: bool = False) -> EmulatedRpiGpio:
        """A fresh ``RPi.GPIO`` module state on this board (see :class:`EmulatedRpiGpio`)."""
        return EmulatedRpiGpio(self.wiring, self_paced=self_paced)

    def find_gpiochip(self, spec: str) -> str:
        return gpiochip.CHIP_PATH if spec == "auto" else spec

    # --- drop-in modules ---------------------------------------------------------------------

    def modules(self) -> dict[str, types.ModuleType]:
        """Modules ``spidev``, ``RPi``, ``RPi.GPIO``, ``gpiod`` (and its submodules) that reach
        this board; :meth:`eegpi.emulator.Board.install` puts them into ``sys.modules``."""
        spidev = types.ModuleType("spidev", "Emulated spidev: SPI buses of an eegpi board.")
        spidev.SpiDev = self.SpiDev  # type: ignore[attr-defined]
        spidev.__version__ = "3.8"  # type: ignore[attr-defined]

        gpio = self.gpio = self.rpi_gpio(self_paced=True)
        rpi_gpio = types.ModuleType("RPi.GPIO", "Emulated RPi.GPIO on an eegpi board.")
        rpi_gpio.__dict__.update(gpio.module_attributes())
        rpi = types.ModuleType("RPi", "Emulated RPi package.")
        rpi.__path__ = []  # a package, so RPi.GPIO resolves
        rpi.GPIO = rpi_gpio  # type: ignore[attr-defined]

        g = gpiochip
        parts: dict[str, dict[str, Any]] = {
            "line": {
                n: getattr(g, n) for n in ("Value", "Direction", "Bias", "Drive", "Edge", "Clock")
            },
            "line_settings": {"LineSettings": g.LineSettings},
            "edge_event": {"EdgeEvent": g.EdgeEvent},
            "chip_info": {"ChipInfo": g.ChipInfo},
            "line_info": {"LineInfo": g.LineInfo},
            "line_request": {"LineRequest": g.LineRequest},
            "chip": {"Chip": self.Chip},
            "exception": {n: getattr(g, n) for n in ("ChipClosedError", "RequestReleasedError")},
        }
        gpiod = types.ModuleType("gpiod", "Emulated gpiod (libgpiod v2) on an eegpi board.")
        gpiod.__path__ = []
        found: dict[str, types.ModuleType] = {
            "spidev": spidev,
            "RPi": rpi,
            "RPi.GPIO": rpi_gpio,
            "gpiod": gpiod,
        }
        for sub, names in parts.items():
            module = types.ModuleType(f"gpiod.{sub}")
            module.__dict__.update(names)
            module.__all__ = list(names)  # type: ignore[attr-defined]
            setattr(gpiod, sub, module)
            gpiod.__dict__.update({n: v for n, v in names.items() if sub != "line"})
            found[f"gpiod.{sub}"] = module
        chip_path = gpiochip.CHIP_PATH
        gpiod.request_lines = self.request_lines  # type: ignore[attr-defined]
        gpiod.is_gpiochip_device = lambda path: path == chip_path  # type: ignore[attr-defined]
        gpiod.api_version = "2.3"  # type: ignore[attr-defined]
        gpiod.__version__ = "2.5.0"  # type: ignore[attr-defined]
        return found
