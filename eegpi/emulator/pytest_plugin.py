"""pytest plugin (entry point ``pytest11: eegpi``): the ``eegpi_board`` fixture.

``eegpi_board`` is an installed :class:`eegpi.emulator.Board` in virtual time: inside the test,
``import spidev``, ``import RPi.GPIO`` and ``import gpiod`` reach it. Options come from the
``eegpi_board`` marker, e.g. ``@pytest.mark.eegpi_board(realtime=True, pins={"drdy": 25})``.
Loaded into every pytest run where eegpi is installed, so it imports nothing until used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from eegpi.emulator import Board

__all__ = ["eegpi_board"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "eegpi_board(**options): options of the eegpi_board fixture's emulated board "
        "(chips, pins, realtime, and any EmulatorConfig field)",
    )


@pytest.fixture
def eegpi_board(request: pytest.FixtureRequest) -> Iterator[Board]:
    """An emulated Pi with an ADS1299, its drop-in modules installed for the test."""
    from eegpi.emulator import Board

    marker = request.node.get_closest_marker("eegpi_board")
    options: dict[str, Any] = {"realtime": False}
    if marker is not None:
        options.update(marker.kwargs)
    board = Board(**options)
    with board.install():
        yield board
