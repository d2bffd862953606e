"""The emulated chip at byte level, through the spidev and gpiod stand-ins."""

from __future__ import annotations

import itertools

from eegpi.ads1299.commands import Opcode, rreg, wreg
from eegpi.ads1299.registers import Reg
from eegpi.hardware.config import EmulatorConfig
from eegpi.hardware.emulator import EmulatedBoard
from eegpi.hardware.emulator.kernel import EmulatedSpiDev

SPEED = 4_000_000


def _board(**kw: object) -> tuple[EmulatedBoard, EmulatedSpiDev]:
    board = EmulatedBoard(EmulatorConfig(realtime=False, **kw))  # type: ignore[arg-type]
    dev = board.spidev()
    dev.open(0, 0)
    dev.mode = 1
    return board, dev


def _cmd(dev: EmulatedSpiDev, op: int) -> None:
    dev.xfer2([op], SPEED, 2)


def _read(dev: EmulatedSpiDev, start: int, count: int) -> list[int]:
    return dev.xfer2(list(rreg(start, count)), SPEED, 2)[2:]


def test_registers_ignored_in_rdatac_until_sdatac() -> None:
    _, dev = _board()
    assert _read(dev, 0, 1) == [0]  # power-up is RDATAC: RREG ignored
    dev.xfer2(list(wreg(Reg.CONFIG1, [0x90])), SPEED, 2)
    _cmd(dev, Opcode.SDATAC)
    assert _read(dev, Reg.CONFIG1, 1) == [0x96]  # the WREG above was ignored
    dev.xfer2(list(wreg(Reg.CONFIG1, [0x90])), SPEED, 2)
    assert _read(dev, Reg.CONFIG1, 1) == [0x90]


def test_read_only_bits_and_undefined_addresses() -> None:
    board, dev = _board()
    _cmd(dev, Opcode.SDATAC)
    dev.xfer2(list(wreg(Reg.ID, [0x00])), SPEED, 2)
    dev.xfer2(list(wreg(Reg.LOFF_STATP, [0xFF])), SPEED, 2)
    dev.xfer2(list(wreg(Reg.CONFIG3, [0xFF])), SPEED, 2)
    assert _read(dev, Reg.ID, 1) == [0x3E]
    assert _read(dev, Reg.LOFF_STATP, 1) == [0x00]
    assert _read(dev, Reg.CONFIG3, 1) == [0xFE]  # BIAS_STAT is read-only
    reply = dev.xfer2([0x20 | 0x17, 0x01, 0, 0], SPEED, 2)  # 0x17 and the missing 0x18
    assert reply[2:] == [0x00, 0x00] and board.chip.undefined_reads == 1


def test_standby_accepts_only_wakeup_and_reset_restores_defaults() -> None:
    _, dev = _board()
    _cmd(dev, Opcode.SDATAC)
    dev.xfer2(list(wreg(Reg.CH1SET, [0x05])), SPEED, 2)
    _cmd(dev, Opcode.STANDBY)
    assert _read(dev, Reg.CH1SET, 1) == [0x00]
    _cmd(dev, Opcode.WAKEUP)
    assert _read(dev, Reg.CH1SET, 1) == [0x05]
    _cmd(dev, Opcode.RESET)
    _cmd(dev, Opcode.SDATAC)  # within 18 tCLK of RESET: not decoded
    assert _read(dev, Reg.CH1SET, 1) == [0x00]
    _cmd(dev, Opcode.SDATAC)  # reset put the chip back in RDATAC


def test_reset_deaf_time_in_real_time() -> None:
    board = EmulatedBoard(EmulatorConfig(realtime=False))
    dev = board.spidev()
    dev.open(0, 0)
    _cmd(dev, Opcode.SDATAC)
    _cmd(dev, Opcode.RESET)
    _cmd(dev, Opcode.SDATAC)  # sent inside the 8.8 us reset time
    assert board.chip.rdatac and board.chip.ignored_commands == 1
    board.clock.sleep(10e-6)
    _cmd(dev, Opcode.SDATAC)
    assert not board.chip.rdatac


def test_register_timing_breaches_are_recorded_and_the_commands_run() -> None:
    board, dev = _board()
    dev.xfer2([Opcode.SDATAC], SPEED, 0)  # CS released at once (E2E 845509): runs on a Pi
    assert not board.chip.rdatac
    dev.xfer2(list(wreg(Reg.CONFIG1, [0x90])), 8_000_000, 2)  # 1 us/byte < tSDECODE
    assert _read(dev, Reg.CONFIG1, 1) == [0x90]
    counts = board.chip.violation_counts
    assert counts["tSCCS"] == 1 and counts["tSDECODE"] == 1


def test_conversions_only_while_started_and_edges_at_the_data_rate() -> None:
    board, dev = _board()
    drdy = board.request_drdy("/dev/gpiochip0", 26)
    assert not drdy.wait_edge_events(0.1)  # no START, no DRDY
    _cmd(dev, Opcode.SDATAC)
    dev.xfer2(list(wreg(Reg.CONFIG1, [0x94])), SPEED, 2)  # 1 kSPS
    t0 = board.clock.monotonic_ns()
    _cmd(dev, Opcode.START)
    assert drdy.wait_edge_events(1.0)
    (first,) = drdy.read_edge_events()
    tclk = 1e9 / 2.048e6
    assert abs(first.timestamp_ns - t0 - (4 * 1e6 + 9 * tclk)) < 2  # 4 tDR + 9 tCLK
    _cmd(dev, Opcode.STOP)
    assert drdy.wait_edge_events(0.1)  # the conversion in progress finishes
    drdy.read_edge_events()
    assert not drdy.wait_edge_events(0.1)


def test_event_buffer_keeps_16_and_drops_the_oldest() -> None:
    board, dev = _board()
    drdy = board.request_drdy("/dev/gpiochip0", 26)
    _cmd(dev, Opcode.SDATAC)
    _cmd(dev, Opcode.START)
    board.clock.sleep(0.016 + 40 * 0.004)  # settle + 40 periods unread
    events = drdy.read_edge_events()
    assert len(events) == 16
    assert [e.line_seqno for e in events] == list(range(25, 41))  # edges 1..40 happened
    assert all(b.timestamp_ns - a.timestamp_ns == 4_000_000 for a, b in itertools.pairwise(events))


def test_rdata_snapshot_and_bytes_beyond_the_chain() -> None:
    board, dev = _board(chips=2)
    _cmd(dev, Opcode.SDATAC)
    _cmd(dev, Opcode.START)
    board.clock.sleep(0.02)
    reply = dev.xfer2([Opcode.RDATA] + [0] * 60, SPEED, 2)[1:]
    assert reply[0] >> 4 == 0xC and reply[27] >> 4 == 0xC  # two chips, chip 1 first
    assert reply[54:] == [0] * 6  # DAISY_IN grounded: zeros beyond the chain
    dev.xfer2(list(wreg(Reg.CONFIG1, [0xD6])), SPEED, 2)  # multiple readback
    board.clock.sleep(0.02)
    reply = dev.xfer2([Opcode.RDATA] + [0] * 60, SPEED, 2)[1:]
    assert reply[27:54] == reply[:27]


def test_full_duplex_sdatac_during_a_frame_read() -> None:
    board, dev = _board()
    _cmd(dev, Opcode.SDATAC)
    _cmd(dev, Opcode.START)
    _cmd(dev, Opcode.RDATAC)
    board.clock.sleep(0.02)
    frame = dev.xfer2([0] * 26 + [Opcode.SDATAC], 8_000_000, 2)
    assert frame[0] >> 4 == 0xC and not board.chip.rdatac


def test_no_chip_reads_stuck_miso() -> None:
    _, dev = _board(miso_stuck=0xFF)
    assert dev.xfer2([0x11, 0x20, 0x00, 0x00], SPEED, 2) == [0xFF] * 4
