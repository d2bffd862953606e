"""The eegpi_board fixture reaches pytest through the ``pytest11`` entry point."""

from __future__ import annotations

import importlib.metadata
import sys

import pytest

from eegpi.emulator import Board


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert plugins.get("eegpi") == "eegpi.emulator.pytest_plugin"


def test_the_fixture_is_an_installed_board_in_virtual_time(eegpi_board: Board) -> None:
    import spidev

    assert sys.modules["spidev"].SpiDev is eegpi_board.SpiDev
    assert not eegpi_board.clock.realtime
    with spidev.SpiDev(0, 0) as spi:
        spi.mode = 1
        spi.xfer2([0x11], 1_000_000, 2)
        assert spi.xfer2([0x20, 0, 0], 1_000_000, 2)[2] == 0x3E


@pytest.mark.eegpi_board(id_register=0x3C, pins={"drdy": 25})
def test_the_marker_passes_options(eegpi_board: Board) -> None:
    import RPi.GPIO as GPIO
    import spidev

    assert eegpi_board.pins["drdy"] == 25
    spi = spidev.SpiDev()
    spi.open(0, 0)
    spi.mode = 1
    spi.xfer2([0x11], 1_000_000, 2)
    assert spi.xfer2([0x20, 0, 0], 1_000_000, 2)[2] == 0x3C
    GPIO.setmode(GPIO.BCM)
    GPIO.setup(25, GPIO.IN)
    assert GPIO.input(25) == 1  # DRDY idles high
