"""The ADS1299 hardware layer: backend selection, driver, acquisition.

``open_device`` builds the Pi backend classes over either the real libraries (``pi``: spidev +
gpiod, or RPi.GPIO / rpi-lgpio for DRDY on old images) or the emulator's stand-ins (``mock``);
``auto`` means ``pi`` when ``/dev/spidev*`` exists and is otherwise an error, never a silent
fall-back to the emulator.
"""

from __future__ import annotations

import errno
import functools
import glob
import importlib.util
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from eegpi.exc import HardwareError
from eegpi.hardware.base import (
    Clock,
    ControlPins,
    DrdyLine,
    EdgeRequestLike,
    HardwareLink,
    OutputRequestLike,
    SpiBus,
    SpiDevLike,
)
from eegpi.hardware.chipselect import CS2, HandSelectedBus
from eegpi.hardware.config import DeviceConfig
from eegpi.hardware.driver import Ads1299
from eegpi.hardware.pi import (
    DRDY_EVENT_BUFFER,
    GpiodDrdy,
    GpiodPins,
    MonotonicClock,
    SpidevBus,
    find_gpiochip,
    gpiod_request_drdy,
    gpiod_request_outputs,
    real_spidev,
)
from eegpi.hardware.rpigpio import RpiGpioDrdy, RpiGpioLike, RpiGpioPins, real_rpi_gpio
from eegpi.status import DeviceReport

if TYPE_CHECKING:
    from eegpi.hardware.emulator import EmulatedBoard

__all__ = ["open_device", "open_link", "probe", "resolve_backend", "resolve_gpio"]


def resolve_backend(cfg: DeviceConfig) -> str:
    """``pi`` or ``mock`` for the configured backend.

    Raises:
        HardwareError: ``auto`` on a machine without /dev/spidev*.
    """
    if cfg.backend in ("pi", "mock"):
        return cfg.backend
    if cfg.backend != "auto":
        raise HardwareError(f"device.backend: {cfg.backend!r} is not one of auto, pi, mock")
    if glob.glob("/dev/spidev*"):
        return "pi"
    raise HardwareError(
        errno.ENODEV,
        "no SPI device (/dev/spidev*) on this machine, so device.backend: auto cannot use an "
        "ADS1299; enable SPI (dtparam=spi=on) on a Pi, or pass --mock / set device.backend: mock "
        "to run on the emulated ADS1299",
    )


def resolve_gpio(cfg: DeviceConfig, backend: str) -> str:
    """``gpiod`` or ``rpigpio`` for the configured GPIO library.

    ``auto`` is gpiod when it is installed, else RPi.GPIO (or rpi-lgpio); the ``mock`` backend
    uses the gpiod stand-in unless ``rpigpio`` is asked for.

    Raises:
        HardwareError: ``auto`` on the pi backend with neither library installed.
    """
    if cfg.gpio != "auto":
        return cfg.gpio
    if backend == "mock" or _importable("gpiod"):
        return "gpiod"
    if _importable("RPi.GPIO"):
        return "rpigpio"
    raise HardwareError(
        errno.ENOENT,
        "device.gpio: auto found neither the Python package gpiod (libgpiod v2) nor RPi.GPIO / "
        "rpi-lgpio to watch DRDY; install eegpi[pi] (spidev + gpiod)",
    )


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package of a dotted name
        return False


def _control_lines(cfg: DeviceConfig) -> dict[str, int]:
    named = (("reset", cfg.reset_pin), ("start", cfg.start_pin), ("pwdn", cfg.pwdn_pin))
    return {name: pin for name, pin in named if pin is not None}


def open_link(
    cfg: DeviceConfig, chips: int = 1, board: EmulatedBoard | None = None
) -> HardwareLink:
    """Open SPI, DRDY and the control pins of the configured backend and GPIO library.

    ``board``: the emulated board the ``mock`` backend runs on (default: a new one built from
    ``cfg``), for tests that read its ground truth (``registers(chip=...)``, ``violations``).
    """
    try:
        cfg.check_chips(chips)
    except ValueError as exc:
        raise HardwareError(errno.EINVAL, str(exc)) from exc
    backend = resolve_backend(cfg)
    gpio = resolve_gpio(cfg, backend)
    lines = _control_lines(cfg)
    board_pins = cfg.board_pins()
    if CS2 in board_pins:
        lines[CS2] = board_pins[CS2]
    spidev_factory: Callable[[], SpiDevLike]
    request_drdy: Callable[[str, int, int], EdgeRequestLike]
    request_outputs: Callable[[str, Mapping[str, int]], OutputRequestLike]
    rpi_gpio: Callable[[], RpiGpioLike]
    idle: Callable[[float], None] | None = None
    clock: Clock
    if backend == "mock":
        from eegpi.emulator import Board

        board = board or Board.from_device(cfg, chips)
        spidev_factory, request_drdy = board.spidev, board.request_drdy
        request_outputs, find_chip, clock = board.request_outputs, board.find_gpiochip, board.clock
        rpi_gpio = board.rpi_gpio
        path = "emulator"
    else:
        spidev_factory, request_drdy = real_spidev, gpiod_request_drdy
        request_outputs, find_chip, clock = gpiod_request_outputs, find_gpiochip, MonotonicClock()
        rpi_gpio = functools.partial(real_rpi_gpio, cfg.gpiochip)
        path = cfg.spi_path
    spi = SpidevBus(cfg.spi_bus, cfg.spi_device, cfg.spi_speed_hz, spidev_factory)
    drdy: DrdyLine
    pins: ControlPins
    try:
        if gpio == "rpigpio":
            module = rpi_gpio()
            if backend == "mock":
                idle = getattr(module, "idle", None)  # the stand-in moves virtual time there
            drdy = RpiGpioDrdy(module, cfg.drdy_pin, clock.monotonic_ns, idle=idle)
            drdy_name = f"GPIO{cfg.drdy_pin} (RPi.GPIO)"
            try:
                pins = RpiGpioPins(module, lines)
            except BaseException:
                drdy.close()
                raise
        else:
            chip_path = find_chip(cfg.gpiochip)
            drdy = GpiodDrdy(request_drdy(chip_path, cfg.drdy_pin, DRDY_EVENT_BUFFER))
            drdy_name = f"GPIO{cfg.drdy_pin} on {chip_path}"
            try:
                pins = GpiodPins(request_outputs(chip_path, lines) if lines else None, lines)
            except BaseException:
                drdy.close()
                raise
    except BaseException:
        spi.close()
        raise
    spi2: SpiBus | None = None
    if CS2 in lines:
        spi2 = HandSelectedBus(spi, pins, lines[CS2])
        drdy_name += f" (chip 1; chip 2's DRDY is GPIO{board_pins['drdy2']})"
    return HardwareLink(
        backend=backend,
        path=path,
        spi=spi,
        drdy=drdy,
        pins=pins,
        clock=clock,
        drdy_name=drdy_name,
        spi2=spi2,
    )


def open_device(cfg: DeviceConfig, chips: int = 1, board: EmulatedBoard | None = None) -> Ads1299:
    """A driver for the configured ADS1299 chain, powered up and identified (``board``: see
    :func:`open_link`).

    Raises:
        HardwareError: the backend cannot be opened or no ADS1299 answers.
    """
    link = open_link(cfg, chips, board)
    device = Ads1299(
        link,
        chips=chips,
        register_speed_hz=cfg.spi_speed_hz,
        data_speed_hz=cfg.spi_data_speed_hz,
    )
    try:
        device.power_up()
    except BaseException:
        link.close()
        raise
    return device


def probe(cfg: DeviceConfig) -> DeviceReport:
    """Open the device briefly (reset, SDATAC, ID, register dump) and close it again (both
    chips of a board with two chip-selects)."""
    device = open_device(cfg, 2 if cfg.two_chip_selects else 1)
    try:
        return device.report()
    finally:
        device.close()
