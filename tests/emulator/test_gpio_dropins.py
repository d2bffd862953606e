"""The RPi.GPIO and gpiod v2 stand-ins, and the DRDY level they read."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest

from eegpi.emulator import Board
from eegpi.hardware.emulator.gpiochip import LineRequest

TCLK_NS = 1e9 / 2.048e6
PERIOD_NS = 4_000_000  # 250 SPS


def _started(board: Board) -> Any:
    """An open SPI device after START in RDATAC, and the time of the first DRDY."""
    spi = board.SpiDev()
    spi.open(0, 0)
    spi.mode = 1
    spi.max_speed_hz = 4_000_000
    t0 = board.clock.monotonic_ns()
    spi.xfer2([0x08], 4_000_000, 2)
    first = t0 + 4 * PERIOD_NS + 9 * TCLK_NS
    return spi, first


# --- the DRDY level (datasheet: low at a conversion, high on the first SCLK of a read, high
# --- 4 tCLK before the next conversion if nobody read) -----------------------------------------


def test_drdy_level_follows_the_datasheet_on_every_interface() -> None:
    board = Board(realtime=False)
    with board.install():
        import gpiod
        import RPi.GPIO as GPIO
        from gpiod.line import Direction

        GPIO.setmode(GPIO.BCM)
        GPIO.setup(26, GPIO.IN, pull_up_down=GPIO.PUD_UP)
        req = gpiod.request_lines(
            "/dev/gpiochip0",
            consumer="t",
            config={26: gpiod.LineSettings(direction=Direction.INPUT)},
        )

        def levels() -> tuple[int, int, int]:
            return board.drdy_level(), GPIO.input(26), int(bool(req.get_value(26)))

        spi, first = _started(board)
        assert board.drdy_level() == 1  # settling: no conversion yet
        board.clock.sleep_until(int(first) + 1)
        assert board.drdy_level() == 0  # a conversion: DRDY low
        board.clock.sleep_until(int(first + PERIOD_NS - 5 * TCLK_NS))
        assert board.drdy_level() == 0  # unread, still low 5 tCLK before the next
        board.clock.sleep_until(int(first + PERIOD_NS - 3 * TCLK_NS))
        assert board.drdy_level() == 1  # unread: high 4 tCLK before the next conversion
        board.clock.sleep_until(int(first + PERIOD_NS) + 1)
        assert levels() == (0, 0, 0)  # the next conversion
        spi.readbytes(27)
        assert levels() == (1, 1, 1)  # the read's first SCLK took it high
        req.release()


def test_a_read_of_another_chip_on_the_bus_clears_drdy_too() -> None:
    board = Board(realtime=False)
    _spi, first = _started(board)
    other = board.SpiDev()
    other.open(0, 1)  # CE1: nothing wired there, but SCLK runs on the bus
    board.clock.sleep_until(int(first) + 1)
    assert board.drdy_level() == 0
    other.readbytes(3)
    assert board.drdy_level() == 1


def test_polling_the_level_in_virtual_time_sees_every_conversion_once() -> None:
    board = Board(realtime=False, stamp_index=True)
    with board.install():
        import RPi.GPIO as GPIO

        GPIO.setmode(GPIO.BCM)
        GPIO.setup(26, GPIO.IN)
        spi, _ = _started(board)
        seen = []
        for _ in range(50):
            while GPIO.input(26):
                pass
            frame = spi.readbytes(27)
            seen.append(frame[3] << 16 | frame[4] << 8 | frame[5])
    assert seen == list(range(50))


# --- RPi.GPIO -----------------------------------------------------------------------------------


def test_rpi_gpio_rules_and_functions() -> None:
    board = Board(realtime=False)
    gpio = board.rpi_gpio()
    assert gpio.getmode() is None
    with pytest.raises(RuntimeError, match="setmode"):
        gpio.setup(26, gpio.IN)
    gpio.setmode(gpio.BOARD)
    assert gpio.getmode() == gpio.BOARD
    with pytest.raises(ValueError, match="invalid on a Raspberry Pi"):
        gpio.setup(1, gpio.IN)  # header pin 1 is 3V3
    with pytest.raises(RuntimeError, match="setup"):
        gpio.input(37)
    gpio.setup(37, gpio.IN, pull_up_down=gpio.PUD_UP)  # GPIO26
    assert gpio.directions == {26: gpio.IN}
    assert gpio.input(37) == gpio.HIGH
    assert gpio.gpio_function(37) == gpio.IN
    assert gpio.gpio_function(24) == gpio.SPI  # GPIO8, CE0
    with pytest.raises(ValueError, match="pull_up_down parameter is not valid for outputs"):
        gpio.setup(15, gpio.OUT, pull_up_down=gpio.PUD_UP)
    gpio.setup([15, 16], gpio.OUT, initial=gpio.HIGH)
    gpio.output([15, 16], [gpio.LOW, gpio.HIGH])
    assert (gpio.input(15), gpio.input(16)) == (0, 1)
    with pytest.raises(ValueError, match="Bouncetime"):
        gpio.add_event_detect(37, gpio.FALLING, bouncetime=0)
    with pytest.raises(ValueError, match="falling edges only"):
        gpio.add_event_detect(37, gpio.RISING)
    gpio.add_event_detect(37, gpio.FALLING)
    with pytest.raises(RuntimeError, match="Conflicting"):
        gpio.wait_for_edge(37, gpio.FALLING)
    gpio.remove_event_detect(37)
    gpio.cleanup()
    assert gpio.getmode() is None and gpio.directions == {}


def test_wait_for_edge_and_event_detected() -> None:
    board = Board(realtime=False)
    with board.install():
        import RPi.GPIO as GPIO

        GPIO.setmode(GPIO.BCM)
        GPIO.setup(26, GPIO.IN)
        assert GPIO.wait_for_edge(26, GPIO.FALLING, timeout=100) is None  # not converting
        _spi, first = _started(board)
        assert GPIO.wait_for_edge(26, GPIO.FALLING, timeout=100) == 26
        assert board.clock.monotonic_ns() == pytest.approx(first, abs=1)
        GPIO.add_event_detect(26, GPIO.FALLING)
        assert GPIO.event_detected(26)  # polled: time moved to the next edge
        assert GPIO.event_detected(26)
        board.clock.sleep(10 * PERIOD_NS / 1e9)
        assert GPIO.event_detected(26)  # ten edges since the last look: one event
        GPIO.remove_event_detect(26)
        GPIO.add_event_detect(26, GPIO.FALLING, bouncetime=10)  # ms
        hits = []
        while len(hits) < 4:
            if GPIO.event_detected(26):  # each poll that finds nothing moves to the next edge
                hits.append(board.clock.monotonic_ns())
        # Edges every 4 ms; one is accepted only more than 10 ms after the last: every third.
        assert [b - a for a, b in itertools.pairwise(hits)] == [3 * PERIOD_NS] * 3


def test_callbacks_merge_edges_that_pass_while_one_runs() -> None:
    # Real RPi.GPIO: one poll thread, edge-triggered epoll. A callback that takes 20 periods
    # gets ONE more call for the 20 edges that fell meanwhile, never 20 repeats.
    board = Board(realtime=False)
    calls: list[int] = []
    done = threading.Event()
    with board.install():
        import RPi.GPIO as GPIO

        spi, _ = _started(board)

        def on_drdy(channel: int) -> None:
            calls.append(board.clock.monotonic_ns())
            if len(calls) == 1:
                spi.readbytes(27 * 20)  # 20 periods of 4 ms at 1 MHz... and more
                spi.max_speed_hz = 4_000_000
            if len(calls) == 4:
                done.set()

        spi.max_speed_hz = 100_000  # the first read takes 43 ms: ~10.8 periods
        GPIO.setmode(GPIO.BCM)
        GPIO.setup(26, GPIO.IN)
        GPIO.add_event_detect(26, GPIO.FALLING, callback=on_drdy)
        assert done.wait(30.0)
        GPIO.remove_event_detect(26)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] == pytest.approx(27 * 20 * 8 / 100_000 * 1e9, abs=1e3)  # right after it
    assert gaps[1] < PERIOD_NS and gaps[2] == pytest.approx(PERIOD_NS, abs=2)


def test_a_raising_callback_does_not_stop_the_poll_thread(
    capsys: pytest.CaptureFixture[str],
) -> None:
    board = Board(realtime=False)
    calls: list[int] = []
    done = threading.Event()
    with board.install():
        import RPi.GPIO as GPIO

        _started(board)

        def bad(channel: int) -> None:
            calls.append(channel)
            if len(calls) == 3:
                done.set()
            raise ValueError("driver bug")

        GPIO.setmode(GPIO.BCM)
        GPIO.setup(26, GPIO.IN)
        GPIO.add_event_detect(26, GPIO.FALLING, callback=bad)
        assert done.wait(30.0)
    assert "driver bug" in capsys.readouterr().err


# --- gpiod v2 -----------------------------------------------------------------------------------


def test_gpiod_edge_events_and_output_lines_drive_the_chip() -> None:
    board = Board(realtime=False, pins={"start": 23, "reset": 22})
    with board.install():
        import gpiod
        from gpiod.line import Direction, Edge, Value

        with gpiod.Chip("/dev/gpiochip0") as chip:
            assert chip.get_info().label == "pinctrl-rp1"
            assert chip.line_offset_from_id("GPIO26") == 26
        ctl = gpiod.request_lines(
            "/dev/gpiochip0",
            consumer="drv",
            config={
                (22, 23): gpiod.LineSettings(direction=Direction.OUTPUT),
            },
            output_values={22: Value.ACTIVE},
        )
        drdy = gpiod.request_lines(
            "/dev/gpiochip0",
            consumer="drv",
            config={"GPIO26": gpiod.LineSettings(edge_detection=Edge.FALLING)},
        )
        assert isinstance(drdy, LineRequest) and drdy.event_buffer_size == 16
        with pytest.raises(OSError, match="busy"):
            gpiod.request_lines("/dev/gpiochip0", config={26: None})
        assert not drdy.wait_edge_events(0.1)  # START pin low: no conversions
        ctl.set_value(23, Value.ACTIVE)  # START high
        assert drdy.wait_edge_events(1.0)
        (event,) = drdy.read_edge_events()
        assert event.event_type is gpiod.EdgeEvent.Type.FALLING_EDGE
        assert (event.line_offset, event.line_seqno, event.global_seqno) == (26, 1, 1)
        board.clock.sleep(40 * PERIOD_NS / 1e9)  # 40 unread: the buffer keeps the newest 16
        events = drdy.read_edge_events()
        assert [e.line_seqno for e in events] == list(range(26, 42))
        assert all(
            b.timestamp_ns - a.timestamp_ns == PERIOD_NS for a, b in itertools.pairwise(events)
        )
        drdy.release()
        with pytest.raises(gpiod.RequestReleasedError):
            drdy.read_edge_events()
        ctl.release()
        with pytest.raises(FileNotFoundError):
            gpiod.Chip("/dev/gpiochip4")


def test_our_pi_backend_runs_on_the_dropins() -> None:
    # eegpi/hardware/pi.py imports the real libraries by name: installed, it gets ours.
    from eegpi.ads1299.settings import chain_settings
    from eegpi.hardware.acquisition import Acquisition
    from eegpi.hardware.base import HardwareLink
    from eegpi.hardware.driver import Ads1299
    from eegpi.hardware.pi import (
        GpiodDrdy,
        GpiodPins,
        SpidevBus,
        gpiod_request_drdy,
        gpiod_request_outputs,
    )

    board = Board(realtime=False, pins={"start": 23}, stamp_index=True)
    with board.install():
        link = HardwareLink(
            backend="pi",
            path="/dev/spidev0.0",
            spi=SpidevBus(0, 0, 4_000_000),
            drdy=GpiodDrdy(gpiod_request_drdy("/dev/gpiochip0", 26)),
            pins=GpiodPins(gpiod_request_outputs("/dev/gpiochip0", {"start": 23}), {"start": 23}),
            clock=board.clock,
        )
        device = Ads1299(link, chips=1, register_speed_hz=4_000_000, data_speed_hz=8_000_000)
        device.power_up()
        device.configure(
            chain_settings(
                sample_rate=500, gain=24, input="normal", srb2=False, chips=1, channels_per_chip=8
            )
        )
        acq = Acquisition(device, 500, lossless=True)
        acq.start()
        try:
            assert acq.wait(200, 30.0) >= 200
        finally:
            acq.stop()
            device.close()
    raw = acq.take()
    assert list(raw.seq[:200]) == list(range(200)) and acq.missed == 0
    assert board.violations == []  # our driver keeps every timing rule
