"""The spidev stand-in follows py-spidev and the Pi's kernel driver."""

from __future__ import annotations

import errno
import sys

import pytest

from eegpi.emulator import Board

RREG_ID = [0x20, 0x00, 0x00]


def _spi(board: Board, mode: int = 1) -> object:
    spi = board.SpiDev()
    spi.open(0, 0)
    spi.mode = mode
    spi.max_speed_hz = 1_000_000
    return spi


def test_opens_in_mode_0_like_spidev_and_a_driver_that_forgets_mode_1_reads_garbage() -> None:
    board = Board(realtime=False)
    spi = board.SpiDev()
    spi.open(0, 0)
    assert (spi.mode, spi.bits_per_word, spi.max_speed_hz) == (0, 8, 125_000_000)
    spi.max_speed_hz = 1_000_000
    spi.xfer2([0x11], 1_000_000, 2)
    assert spi.xfer2(RREG_ID, 1_000_000, 2)[2] != 0x3E  # DOUT sampled on the wrong edge
    assert any(v.rule == "SPI mode" for v in board.violations)
    spi.mode = 1
    assert spi.xfer2(RREG_ID, 1_000_000, 2)[2] == 0x3E


def test_every_transfer_call_of_py_spidev() -> None:
    board = Board(realtime=False)
    spi = _spi(board)
    spi.writebytes([0x11])  # SDATAC
    assert spi.xfer(RREG_ID)[2] == 0x3E
    assert spi.xfer2(RREG_ID, 1_000_000, 2, 8)[2] == 0x3E
    assert spi.xfer(tuple(RREG_ID)) == (0, 0, 0x3E)  # a tuple in, a tuple out
    assert spi.xfer3(RREG_ID) == (0, 0, 0x3E)
    spi.writebytes2(bytes([0x40 | 0x01, 0x00, 0x95]))  # WREG CONFIG1 from a buffer
    assert board.registers()[0x01] == 0x95
    assert spi.readbytes(3) == [0, 0, 0]  # DIN low: NOPs, DOUT idle outside RDATAC
    with pytest.raises(TypeError, match="Empty argument list"):
        spi.xfer2([])
    with pytest.raises(OverflowError, match="4096"):
        spi.xfer2([0] * 4097)
    assert len(spi.xfer3([0] * 5000)) == 5000  # xfer3 takes any length, in blocks
    assert len(spi.readbytes(5000)) == 4096  # readbytes is capped at bufsiz
    with pytest.raises(TypeError, match="Non-Int"):
        spi.xfer2([1.5])


def test_readbytes_clocks_a_frame_with_din_low() -> None:
    board = Board(realtime=False)
    spi = _spi(board)
    spi.xfer2([0x08], 1_000_000, 2)  # START in RDATAC (power-up default)
    board.clock.sleep(0.05)
    frame = spi.readbytes(27)
    assert frame[0] >> 4 == 0xC and len(frame) == 27


def test_settings_the_pi_controller_refuses_and_closed_devices() -> None:
    board = Board(realtime=False)
    spi = board.SpiDev()
    with pytest.raises(OSError) as closed:
        spi.mode = 1
    assert closed.value.errno == errno.EBADF
    with pytest.raises(FileNotFoundError):
        spi.open(2, 0)
    spi.open(0, 0)
    for name in ("lsbfirst", "loop"):
        with pytest.raises(OSError) as refused:
            setattr(spi, name, True)
        assert refused.value.errno == errno.EINVAL
        setattr(spi, name, False)
    with pytest.raises(OSError):
        spi.bits_per_word = 16
    with pytest.raises(TypeError):
        spi.bits_per_word = 4
    with pytest.raises(TypeError, match="between 0 and 3"):
        spi.mode = 4
    with pytest.raises(TypeError, match="boolean"):
        spi.cshigh = 1
    spi.threewire = True
    assert spi.threewire
    spi.close()
    with pytest.raises(OSError) as bad:
        spi.xfer2([0])
    assert bad.value.errno == errno.EBADF


def test_cshigh_and_no_cs_leave_the_chip_deselected() -> None:
    board = Board(realtime=False)
    spi = _spi(board)
    spi.xfer2([0x11], 1_000_000, 2)
    for flag in ("cshigh", "no_cs"):
        setattr(spi, flag, True)
        assert spi.xfer2(RREG_ID, 1_000_000, 2) == [0, 0, 0]
        setattr(spi, flag, False)
    assert spi.xfer2(RREG_ID, 1_000_000, 2)[2] == 0x3E


def test_subclassable_context_manager_and_positional_open() -> None:
    board = Board(realtime=False)
    with board.install():
        import spidev

        class Ads(spidev.SpiDev):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__(0, 0)
                self.mode = 1

            def read_id(self) -> int:
                self.xfer2([0x11], 1_000_000, 2)
                return int(self.xfer2(RREG_ID, 1_000_000, 2)[2])

        with Ads() as dev:
            assert dev.read_id() == 0x3E
        with pytest.raises(OSError):
            dev.xfer2([0])  # closed on leaving the block


def test_install_puts_the_modules_back() -> None:
    before = {name: sys.modules.get(name) for name in ("spidev", "gpiod", "RPi", "RPi.GPIO")}
    board = Board(realtime=False)
    with board.install():
        import gpiod
        import spidev

        assert spidev.SpiDev is board.SpiDev
        assert gpiod.Chip is board.Chip
    assert {name: sys.modules.get(name) for name in before} == before


def test_unknown_options_and_pins_are_clear_errors() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) sede"):
        Board(sede=1)
    with pytest.raises(ValueError, match="unknown name 'drdy3'"):
        Board(pins={"drdy3": 5})
    with pytest.raises(ValueError, match="both GPIO26"):
        Board(pins={"cs": 26})
    with pytest.raises(ValueError, match="both drdy2 and cs2"):
        Board(chips=2, pins={"drdy2": 13})
