"""The emulated ADS1299 does what the datasheet (SBAS499) says where real drivers rely on it.

Each test names the datasheet section, or the shipped firmware, whose behaviour it checks;
ads1299.md is the project's digest of both.
"""

from __future__ import annotations

import numpy as np
import pytest
from emu_host import DATA_SPEED, TCLK_NS, Host

from eegpi.ads1299.commands import Opcode
from eegpi.ads1299.registers import Reg

GAIN1_CODES_PER_V = 2**23 / 4.5


def _rdata(host: Host) -> list[int]:
    return host.xfer([Opcode.RDATA] + [0] * 27)[1:]


# --- commands in RDATAC -------------------------------------------------------------------------


def test_start_and_stop_are_honoured_in_rdatac() -> None:
    """Datasheet "RDATAC: Read Data Continuous" (issue START after RDATAC); OpenBCI Cyton
    firmware sends RDATAC then START and STOP then SDATAC; only RREG/WREG are ignored."""
    host = Host()
    host.power_up()
    host.cmd(Opcode.RDATAC)  # power-up is RDATAC already; hobby drivers send it anyway
    host.cmd(Opcode.START)
    assert host.chip.running and host.chip.rdatac
    host.at(host.edge_ns(0))
    assert host.frame()[0] >> 4 == 0xC
    host.cmd(Opcode.STOP)
    host.at(host.edge_ns(1))  # the conversion in progress finishes ...
    assert host.chip.next_edge_ns(host.chip.run_id, 2) is None  # ... and nothing after it
    host.cmd(Opcode.SDATAC)
    assert not host.chip.rdatac
    assert host.chip.violations == []


def test_register_access_is_still_ignored_in_rdatac() -> None:
    """Datasheet command table: "RREG is ignored in RDATAC mode"; WREG likewise."""
    host = Host()
    host.power_up()
    host.wreg(Reg.CONFIG1, 0x90)
    assert host.rreg(Reg.ID) == [0]
    host.cmd(Opcode.SDATAC)
    assert host.rreg(Reg.CONFIG1) == [0x96] and host.rreg(Reg.ID) == [0x3E]


def test_a_command_without_cs_hold_is_executed_and_recorded() -> None:
    """tSCCS (datasheet timing table): a Pi's CS release adds the latency, and shipped products
    send single-byte SDATAC/START with delay 0 and work, so the command runs; the breach is
    kept with its rule, time and bytes."""
    host = Host()
    host.power_up()
    t0 = host.clock.monotonic_ns()
    host.cmd(Opcode.SDATAC, delay_us=0)
    assert not host.chip.rdatac
    host.cmd(Opcode.START, delay_us=0)
    assert host.chip.running
    (first, second) = host.chip.violations
    assert (first.rule, first.time_ns, first.data) == ("tSCCS", t0, b"\x11")
    assert (second.rule, second.data) == ("tSCCS", b"\x08")
    assert host.chip.violation_counts == {"tSCCS": 2}


# --- SPI modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0, 2])
def test_modes_0_and_2_execute_commands_and_return_dout_a_bit_late(mode: int) -> None:
    """Datasheet "Serial Interface" (Figure 1 note): DIN is latched on the SCLK falling edge,
    DOUT changes on the rising edge. A mode-0 or mode-2 host drives DIN so it is stable at the
    falling edge (commands work) but samples DOUT on the rising edge, one bit before the
    chip shifts it: every byte arrives one bit late (0x3E reads 0x1F)."""
    host = Host()
    host.power_up()
    host.chip.spi_mode = mode
    host.cmd(Opcode.SDATAC)
    assert not host.chip.rdatac
    assert host.rreg(Reg.ID) == [0x1F]
    host.wreg(Reg.CONFIG1, 0x95)
    assert host.rreg(Reg.CONFIG1, 2) == [0x95 >> 1, ((0x95 & 1) << 7) | (0xC0 >> 1)]
    host.chip.spi_mode = 1
    assert host.rreg(Reg.CONFIG1) == [0x95]
    assert set(host.rules()) == {"SPI mode"} and host.chip.violations[0].detail == f"mode {mode}"


def test_mode_3_reads_din_and_dout_a_bit_late() -> None:
    """Datasheet edge definitions: a mode-3 host changes DIN on the falling edge the chip
    latches it on, so the chip takes each bit one clock late: SDATAC (0x11) arrives as 0x08,
    START."""
    host = Host()
    host.power_up()
    host.chip.spi_mode = 3
    host.cmd(Opcode.SDATAC)
    assert host.chip.rdatac and host.chip.running
    host.at(host.edge_ns(0))
    frame = host.frame()
    host.chip.spi_mode = 1
    host.cmd(Opcode.SDATAC)
    assert frame[0] == 0xC0 >> 1  # the status word, a bit late
    assert host.rules() == ["SPI mode", "SPI mode"]


# --- conversions --------------------------------------------------------------------------------


def test_a_channel_setting_change_settles_over_three_periods() -> None:
    """Datasheet "Settling Time": after a step at the input the sinc3 filter needs 3 tDR; the
    4th DRDY carries settled data. Changing CHnSET.MUX from shorted to the DC test signal is
    such a step: the next conversions mix old and new by the sinc3 step response."""
    host = Host(alpha_uv=0, mains_uv=0, noise_uv=0, offset_uv=0)
    host.power_up()
    host.cmd(Opcode.SDATAC)
    host.wreg(Reg.CONFIG2, 0xD3)  # internal test signal, 1x, DC
    host.wreg(Reg.CH1SET, 0x01)  # gain 1, shorted
    host.cmd(Opcode.START)
    tdr = host.edge_ns(1) - host.edge_ns(0)
    host.at(host.edge_ns(10))
    assert abs(host.counts(_rdata(host))[0]) < 20
    t_change = host.edge_ns(10) + 0.1 * tdr
    host.at(t_change)
    host.wreg(Reg.CH1SET, 0x05)  # gain 1, test signal
    settled = 4.5 / 2400 * GAIN1_CODES_PER_V
    seen = []
    for k in range(11, 16):
        host.at(host.edge_ns(k))
        seen.append(int(host.counts(_rdata(host))[0]))
    x = np.array([(host.edge_ns(k) - t_change) / tdr for k in range(11, 16)])  # 0.9 .. 4.9
    share = np.where(x < 1, x**3 / 6, np.where(x < 2, (-2 * x**3 + 9 * x**2 - 9 * x + 3) / 6, 1))
    share = np.where((x >= 2) & (x < 3), 1 - (3 - x) ** 3 / 6, share)
    assert np.allclose(seen, share * settled, atol=20), (seen, share * settled)
    assert seen[0] < 0.2 * settled < 0.7 * settled < seen[1] < 0.9 * settled  # unsettled
    assert abs(seen[3] - settled) < 20  # the 4th DRDY after the change is settled


def test_shorted_inputs_carry_the_configured_offset() -> None:
    """A shorted channel (MUX 001) reads its input offset; the emulator gives each channel the
    same offset on its shorted and its normal input (ads1299.md section 3.3)."""

    def means(chset: int) -> np.ndarray:
        host = Host(seed=7, alpha_uv=0, mains_uv=0, noise_uv=0, offset_uv=50)
        host.power_up()
        host.cmd(Opcode.SDATAC)
        for k in range(8):
            host.wreg(Reg.CH1SET + k, chset)
        host.cmd(Opcode.START)
        host.cmd(Opcode.RDATAC)
        rows = []
        for k in range(200):
            host.at(host.edge_ns(k))
            rows.append(host.counts(host.frame()))
        return np.mean(rows, axis=0) * 4.5e6 / (24 * 2**23)  # uV at gain 24

    normal, shorted = means(0x60), means(0x61)
    assert np.all(np.abs(normal) > 5)
    assert np.allclose(shorted, normal, atol=0.5), (shorted, normal)


def test_gpio_bits_read_pin_levels_inputs_from_the_board_outputs_as_written() -> None:
    """Datasheet GPIO register: GPIOC 1 = input; reading GPIOD returns the pin levels, and a
    write only drives pins set as outputs. The status word's low nibble is GPIOD."""
    host = Host(gpio_inputs=0b0101)  # the board drives GPIO1 and GPIO3 high
    host.power_up()
    host.cmd(Opcode.SDATAC)
    assert host.rreg(Reg.GPIO) == [0x5F]  # reset: all inputs
    host.wreg(Reg.GPIO, 0xF3)  # GPIO1, 2 inputs; GPIO3, 4 outputs driven high
    assert host.rreg(Reg.GPIO) == [0xD3]
    host.chip.drive_gpio(0b0010)
    assert host.rreg(Reg.GPIO) == [0xE3]
    host.cmd(Opcode.START)
    host.cmd(Opcode.RDATAC)
    host.at(host.edge_ns(0))
    assert host.status(host.frame()) == 0xC0000E


def test_clksel_low_without_a_clock_never_converts() -> None:
    """Datasheet "Clock": CLKSEL = 0 selects the CLK pin; with nothing there the modulator
    has no clock, so START yields no DRDY (registers still answer in the emulator)."""
    host = Host(clksel=False)
    host.power_up()
    host.cmd(Opcode.SDATAC)
    assert host.rreg(Reg.ID) == [0x3E]
    host.cmd(Opcode.START)
    assert not host.chip.running
    assert host.chip.next_edge_ns(host.chip.run_id, 0) is None
    assert host.chip.drdy_level()


def test_an_external_clock_sets_the_data_rate() -> None:
    """Datasheet: fDR = fCLK / (128 * 2^DR) and the first DRDY 4 tDR + 9 tCLK after START, with
    fCLK the CLK pin's clock when CLKSEL is low; CONFIG1.CLK_EN drives the oscillator out."""
    host = Host(clksel=False, external_clock_hz=2.0e6)
    host.power_up()
    host.cmd(Opcode.SDATAC)
    t0 = host.clock.monotonic_ns()
    host.cmd(Opcode.START)
    tdr = 128 * 64 / 2.0e6 * 1e9  # 250 SPS setting: 4.096 ms at 2.0 MHz
    assert abs(host.edge_ns(0) - t0 - (4 * tdr + 9 * 500)) < 2
    assert abs(host.edge_ns(1) - host.edge_ns(0) - tdr) < 2
    assert host.chip.clock_out_hz() is None  # CLKSEL low: nothing to drive out
    board = Host()
    board.power_up()
    board.cmd(Opcode.SDATAC)
    assert board.chip.clock_out_hz() is None
    board.wreg(Reg.CONFIG1, 0xB6)  # CLK_EN
    assert board.chip.clock_out_hz() == 2.048e6


def test_drdy_level_falls_at_a_conversion_and_rises_on_a_read_or_before_the_next() -> None:
    """Datasheet "Data Ready (DRDY)": DRDY goes low when data are ready, high on the first
    SCLK falling edge of a read, and, if no read, high 4 tCLK before the next conversion."""
    host = Host()
    host.power_up()
    host.cmd(Opcode.SDATAC)
    host.cmd(Opcode.START)
    host.cmd(Opcode.RDATAC)
    level = host.chip.drdy_level
    assert level()  # settling: high
    host.at(host.edge_ns(0))
    assert not level()
    host.frame()
    assert level()  # read
    host.at(host.edge_ns(1))
    assert not level()
    host.at(host.edge_ns(2) - 4 * TCLK_NS - 10)
    assert not level()  # not read: still low ...
    host.at(host.edge_ns(2) - 4 * TCLK_NS + 10)
    assert level()  # ... high 4 tCLK before the next conversion
    host.at(host.edge_ns(2))
    assert not level()
    host.chip.bus_clocked()  # SCLK to another chip on the bus clears it too
    assert level()
    host.xfer([0] * 27, DATA_SPEED, 0)
    assert level()


def test_a_hobby_driver_sequence_streams_the_test_signal() -> None:
    """The PiEEG style: single-byte commands with no CS hold, WAKEUP/STOP/RESET/SDATAC, register
    writes, RDATAC then START, 27-byte reads at each DRDY. Datasheet CONFIG2: the 1x test
    signal is +-VREF/2400 (1.875 mV) at fCLK/2^21; every status word starts with 0xC."""
    host = Host()
    host.power_up()
    for op in (Opcode.WAKEUP, Opcode.STOP, Opcode.RESET):
        host.xfer([op], 600_000, 0)
    host.clock.sleep(20e-6)  # a Pi's next ioctl comes tens of microseconds later
    host.xfer([Opcode.SDATAC], 600_000, 0)
    for address, value in ((Reg.CONFIG1, 0x96), (Reg.CONFIG2, 0xD0), (Reg.CONFIG3, 0xE0)):
        host.xfer([0x40 | address, 0x00, value], 600_000, 0)
    for k in range(8):
        host.xfer([0x40 | (Reg.CH1SET + k), 0x00, 0x05], 600_000, 0)  # gain 1, test signal
    host.xfer([0x20 | Reg.ID, 0x00, 0x00], 600_000, 0)
    assert host.xfer([0x20 | Reg.CONFIG2, 0x00, 0x00], 600_000, 0)[2] == 0xD0
    host.xfer([Opcode.RDATAC], 600_000, 0)
    host.xfer([Opcode.START], 600_000, 0)
    rows, marks = [], set()
    for k in range(600):  # 2.4 s at 250 SPS
        host.at(host.edge_ns(k))
        raw = host.xfer([0] * 27, 600_000, 0)
        marks.add(raw[0] >> 4)
        rows.append(host.counts(raw))
    codes = np.array(rows)[:, 0].astype(float)
    assert marks == {0xC}
    volts = codes * 4.5 / 2**23
    assert abs(np.max(volts) - 4.5 / 2400) < 20e-6 and abs(np.min(volts) + 4.5 / 2400) < 20e-6
    flips = np.flatnonzero(np.diff(np.sign(codes)) != 0)
    half_period_s = np.median(np.diff(flips)) / 250
    assert abs(half_period_s - 2**20 / 2.048e6) < 2 / 250  # 0.512 s: a 0.977 Hz square
    assert set(host.rules()) == {"tSCCS"}  # no CS hold: recorded, every command ran
