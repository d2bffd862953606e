"""A driver written only against spidev + RPi.GPIO, in the style of common hobby drivers, runs
unmodified on the emulated board through ``Board.install()``."""

from __future__ import annotations

import numpy as np

from eegpi.emulator import Board

HOBBY_DRIVER = """
import time

import spidev
import RPi.GPIO as GPIO

DRDY = 37  # header pin 37 = GPIO26

WAKEUP, STOP, RESET, SDATAC, RDATAC, START = 0x02, 0x0A, 0x06, 0x11, 0x10, 0x08

spi = spidev.SpiDev()
spi.open(0, 0)
spi.max_speed_hz = 600000
spi.mode = 0b01

GPIO.setwarnings(False)
GPIO.setmode(GPIO.BOARD)
GPIO.setup(DRDY, GPIO.IN, pull_up_down=GPIO.PUD_UP)


def send_command(command):
    spi.xfer([command])  # no CS hold delay


def write_byte(register, data):
    spi.xfer([0x40 | register, 0x00, data])


def read_byte(register):
    return spi.xfer([0x20 | register, 0x00, 0x00])[2]


def setup():
    send_command(WAKEUP)
    send_command(STOP)
    send_command(RESET)
    time.sleep(0.001)
    send_command(SDATAC)
    write_byte(0x14, 0x80)  # GPIO
    write_byte(0x01, 0x96)  # CONFIG1: 250 SPS
    write_byte(0x02, 0xD0)  # CONFIG2: internal test signal, 1x, fCLK/2^21
    write_byte(0x03, 0xE0)  # CONFIG3: reference buffer on
    for channel in range(8):
        write_byte(0x05 + channel, 0x05)  # gain 1, test signal
    send_command(RDATAC)
    send_command(START)


def read_frames(n):
    frames = []
    while len(frames) < n:
        while GPIO.input(DRDY) == 1:  # poll the DRDY level
            pass
        frames.append(spi.readbytes(27))
    return frames
"""


def _run_driver(board: Board, frames: int) -> tuple[dict[str, object], list[list[int]]]:
    with board.install():
        namespace: dict[str, object] = {}
        exec(compile(HOBBY_DRIVER, "hobby_driver.py", "exec"), namespace)
        setup = namespace["setup"]
        read_byte = namespace["read_byte"]
        read_frames = namespace["read_frames"]
        assert callable(setup) and callable(read_byte) and callable(read_frames)
        send = namespace["send_command"]
        assert callable(send)
        setup()
        data = read_frames(frames)
        send(0x0A)  # STOP
        send(0x11)  # SDATAC
        regs = {
            "id": read_byte(0x00),
            "config1": read_byte(0x01),
            "config2": read_byte(0x02),
            "config3": read_byte(0x03),
            "ch1set": read_byte(0x05),
            "ch8set": read_byte(0x0C),
        }
    return regs, data


def _counts(frames: list[list[int]]) -> np.ndarray:
    raw = np.array(frames, dtype=np.int64)[:, 3:].reshape(len(frames), 8, 3)
    v = raw[:, :, 0] << 16 | raw[:, :, 1] << 8 | raw[:, :, 2]
    return np.where(v & 0x800000, v - (1 << 24), v)


def test_a_hobby_driver_configures_the_chip_and_streams_the_test_signal() -> None:
    board = Board(realtime=False)
    regs, frames = _run_driver(board, 250 * 5)
    assert regs["id"] == 0x3E
    assert regs == {
        "id": 0x3E,
        "config1": 0x96,
        "config2": 0xD0,
        "config3": 0xE0,
        "ch1set": 0x05,
        "ch8set": 0x05,
    }
    assert board.registers(0)[0x01] == 0x96 and board.registers(0)[0x05] == 0x05
    assert all(frame[0] >> 4 == 0xC for frame in frames)
    # Status: C0 00 0g with the GPIO register's upper nibble (0x80 written: GPIO4 high).
    assert {tuple(frame[:3]) for frame in frames} == {(0xC0, 0x00, 0x08)}

    volts = _counts(frames) * 4.5 / 2**23  # gain 1: input-referred already
    settled = volts[250:]  # skip the first second (filter settling after START)
    amplitude = 4.5 / 2400
    for channel in range(8):
        v = settled[:, channel]
        high, low = v[v > 0], v[v < 0]
        assert abs(np.median(high) - amplitude) < 0.02 * amplitude
        assert abs(np.median(low) + amplitude) < 0.02 * amplitude
    # fCLK / 2^21 = 0.977 Hz: sign changes twice a period.
    signs = np.sign(settled[:, 0])
    flips = np.flatnonzero(np.diff(signs) != 0)
    periods_in_samples = np.diff(flips) * 2
    assert np.allclose(periods_in_samples, 250 * 2**21 / 2.048e6, atol=2)


def test_the_internal_test_signal_is_input_referred_at_any_gain() -> None:
    # At gain 24 the codes are 24x larger; divided by the gain it is still VREF/2400.
    board = Board(realtime=False)
    with board.install():
        import spidev

        spi = spidev.SpiDev()
        spi.open(0, 0)
        spi.mode = 1
        spi.max_speed_hz = 1_000_000
        spi.xfer([0x11])
        spi.xfer([0x40 | 0x02, 0x00, 0xD0])
        spi.xfer([0x40 | 0x05, 0x00, 0x65])  # gain 24, test signal
        spi.xfer([0x10])
        spi.xfer([0x08])
        frames = []
        import RPi.GPIO as GPIO

        GPIO.setmode(GPIO.BCM)
        GPIO.setup(26, GPIO.IN)
        while len(frames) < 500:
            while GPIO.input(26):
                pass
            frames.append(spi.readbytes(27))
    volts = _counts(frames)[250:, 0] * 4.5 / 2**23 / 24
    assert abs(np.median(volts[volts > 0]) - 4.5 / 2400) < 0.02 * 4.5 / 2400
