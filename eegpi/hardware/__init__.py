"""The ADS1299 hardware layer: backend selection, driver, acquisition.

``open_device`` builds the Pi backend classes over either the real libraries (``pi``: spidev +
gpiod) or the emulator's stand-ins (``mock``); ``auto`` means ``pi`` when ``/dev/spidev*``
exists and is otherwise an error, never a silent fall-back to the emulator.
"""

from __future__ import annotations

import errno
import glob
from collections.abc import Callable, Mapping

from eegpi.daemon.status import DeviceReport
from eegpi.exc import HardwareError
from eegpi.hardware.base import (
    Clock,
    EdgeRequestLike,
    HardwareLink,
    OutputRequestLike,
    SpiDevLike,
)
from eegpi.hardware.config import DeviceConfig
from eegpi.hardware.driver import Ads1299
from eegpi.hardware.pi import (
    GpiodDrdy,
    GpiodPins,
    MonotonicClock,
    SpidevBus,
    find_gpiochip,
    gpiod_request_drdy,
    gpiod_request_outputs,
    real_spidev,
)

__all__ = ["open_device", "open_link", "probe", "resolve_backend"]


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


def open_link(cfg: DeviceConfig, chips: int = 1) -> HardwareLink:
    """Open SPI, DRDY and the control pins of the configured backend."""
    backend = resolve_backend(cfg)
    spidev_factory: Callable[[], SpiDevLike]
    request_drdy: Callable[[str, int], EdgeRequestLike]
    request_outputs: Callable[[str, Mapping[str, int]], OutputRequestLike]
    clock: Clock
    if backend == "mock":
        from eegpi.hardware.emulator import EmulatedBoard

        board = EmulatedBoard(cfg.emulator, chips)
        spidev_factory, request_drdy = board.spidev, board.request_drdy
        request_outputs, find_chip, clock = board.request_outputs, board.find_gpiochip, board.clock
        path = "emulator"
    else:
        spidev_factory, request_drdy = real_spidev, gpiod_request_drdy
        request_outputs, find_chip, clock = gpiod_request_outputs, find_gpiochip, MonotonicClock()
        path = cfg.spi_path
    spi = SpidevBus(cfg.spi_bus, cfg.spi_device, cfg.spi_speed_hz, spidev_factory)
    try:
        chip_path = find_chip(cfg.gpiochip)
        drdy = GpiodDrdy(request_drdy(chip_path, cfg.drdy_pin))
        try:
            lines = {
                name: pin
                for name, pin in (
                    ("reset", cfg.reset_pin),
                    ("start", cfg.start_pin),
                    ("pwdn", cfg.pwdn_pin),
                )
                if pin is not None
            }
            pins = GpiodPins(request_outputs(chip_path, lines) if lines else None, lines)
        except BaseException:
            drdy.close()
            raise
    except BaseException:
        spi.close()
        raise
    return HardwareLink(
        backend=backend,
        path=path,
        spi=spi,
        drdy=drdy,
        pins=pins,
        clock=clock,
        drdy_name=f"GPIO{cfg.drdy_pin} on {chip_path}",
    )


def open_device(cfg: DeviceConfig, chips: int = 1) -> Ads1299:
    """A driver for the configured ADS1299 chain, powered up and identified.

    Raises:
        HardwareError: the backend cannot be opened or no ADS1299 answers.
    """
    link = open_link(cfg, chips)
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
    """Open the device briefly (reset, SDATAC, ID, register dump) and close it again."""
    device = open_device(cfg)
    try:
        return device.report()
    finally:
        device.close()
