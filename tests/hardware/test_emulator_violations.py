"""Timing-rule breaches are recorded (rule, time, bytes), counted, logged once per rule, and
raise in ``timing: raise`` mode; our own driver commits none, on every configuration path."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from emu_host import DATA_SPEED, SPEED, TCLK_NS, Host
from hw_helpers import SourceRunner, mock_config

from eegpi.ads1299.commands import Opcode, wreg
from eegpi.ads1299.registers import Reg
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.emulator.chip import Ads1299Emulator
from eegpi.hardware.emulator.clock import EmulatorClock
from eegpi.hardware.emulator.timing import RULES, TimingViolationError

# --- each rule ----------------------------------------------------------------------------------


def _ready() -> Host:
    host = Host()
    host.power_up()
    host.cmd(Opcode.SDATAC)
    return host


def test_each_rule_is_recorded_with_its_time_and_bytes() -> None:
    host = Host()
    t0 = host.clock.monotonic_ns()
    host.cmd(Opcode.SDATAC)  # tPOR: 2^18 tCLK after power-up not over
    host.power_up()
    host.xfer(wreg(Reg.CONFIG1, [0x95]), speed=8_000_000)  # tSDECODE: 1 us per byte
    host.xfer([Opcode.RDATAC, Opcode.SDATAC], speed=8_000_000)  # tSDECODE between commands
    host.xfer([Opcode.WAKEUP], speed=25_000_000)  # tSCLK
    host.xfer([Opcode.WAKEUP], cs_setup_ns=2)  # tCSSC
    host.xfer(wreg(Reg.CONFIG2, [0xC0]), delay_us=0)  # tSCCS after a register write
    host.cmd(Opcode.RESET)
    host.cmd(Opcode.SDATAC)  # within 18 tCLK of RESET: the reset time
    host.clock.sleep(20e-6)
    host.chip.set_pin("reset", False)
    host.chip.set_pin("reset", True)  # tRST: a 0 ns pulse
    host.clock.sleep(20e-6)
    host.cmd(Opcode.START)
    host.at(host.edge_ns(0) - 2 * TCLK_NS)
    host.cmd(Opcode.RDATAC)  # RDATAC keep-out
    host.at(host.edge_ns(1) - 10_000)
    host.xfer([0] * 27, DATA_SPEED, 0)  # tUPDATE: 27 us read, DRDY in 10 us
    host.chip.spi_mode = 2
    host.xfer([0])  # SPI mode
    counts = host.chip.violation_counts
    assert set(counts) == set(RULES), set(RULES) - set(counts)
    first = host.chip.violations[0]
    assert (first.rule, first.time_ns, first.data) == ("tPOR", t0, b"\x11")
    by_rule = {v.rule: v for v in reversed(host.chip.violations)}  # the first of each rule
    assert by_rule["tSDECODE"].data == bytes(wreg(Reg.CONFIG1, [0x95]))
    assert by_rule["tSCCS"].data == bytes(wreg(Reg.CONFIG2, [0xC0]))
    assert by_rule["RDATAC keep-out"].data == b"\x10" and by_rule["tRST"].data == b""
    assert by_rule["tUPDATE"].detail == "read began 977 ns before DRDY"  # RDATAC reads too
    assert host.chip.violations[-2].detail == "read began 10000 ns before DRDY"


def test_dummy_bytes_are_not_commands() -> None:
    """Drivers that clock frames out with 0xFF dummies: no opcode, so no timing rule applies."""
    host = _ready()
    host.cmd(Opcode.START)
    host.cmd(Opcode.RDATAC)
    host.at(host.edge_ns(0))
    frame = host.xfer([0xFF] * 27, DATA_SPEED, 0)
    assert frame[0] >> 4 == 0xC and host.chip.rdatac
    assert host.chip.violations == []


def test_breaches_are_counted_exactly_logged_once_per_rule_and_kept_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = _ready()
    caplog.set_level(logging.WARNING, logger="eegpi.hardware.emulator")
    for _ in range(1200):
        host.cmd(Opcode.WAKEUP, delay_us=0)
    host.xfer([Opcode.WAKEUP], speed=25_000_000)
    assert host.chip.violation_counts == {"tSCCS": 1200, "tSCLK": 1}
    kept = host.chip.violations
    assert len(kept) == 1000 and kept[-1].rule == "tSCLK"
    warnings = [r.getMessage() for r in caplog.records if "timing violation" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].startswith("emulated ADS1299: timing violation tSCCS")


def test_raise_mode_raises_at_the_first_breach_and_strict_is_its_old_name() -> None:
    assert EmulatorConfig(strict=True).timing == "raise"
    assert EmulatorConfig(timing="raise").strict
    assert EmulatorConfig().timing == "record" and not EmulatorConfig().strict
    with pytest.raises(ValueError, match=r"emulator\.timing"):
        EmulatorConfig(timing="loud")  # type: ignore[arg-type]
    host = Host(timing="raise")
    with pytest.raises(TimingViolationError, match="tPOR"):
        host.cmd(Opcode.SDATAC)
    host.power_up()
    host.cmd(Opcode.SDATAC)
    with pytest.raises(TimingViolationError, match=r"tSCCS .*CS hold 0 ns sending 08"):
        host.cmd(Opcode.START, delay_us=0)


def test_a_torn_read_in_real_time_is_a_tupdate_breach() -> None:
    """In real time a read that straddles the reload is torn (ads1299.md section 4)."""
    cfg = EmulatorConfig(realtime=True)

    class Frozen(EmulatorClock):
        now = 10**12

        def monotonic_ns(self) -> int:
            return self.now

    clock = Frozen()
    chip = Ads1299Emulator(cfg, 1, clock)
    clock.now += 10**9
    chip.transfer([Opcode.SDATAC], SPEED, 2)
    chip.transfer([Opcode.START], SPEED, 2)
    chip.transfer([Opcode.RDATAC], SPEED, 2)
    t1 = chip.next_edge_ns(chip.run_id, 1)
    assert t1 is not None
    clock.now = t1 - 5_000
    chip.transfer([0] * 27, 8_000_000, 0)
    assert chip.violation_counts == {"tUPDATE": 1}


# --- our driver ---------------------------------------------------------------------------------

PATHS: list[dict[str, Any]] = [
    {},
    {"sample_rate": 16000},
    {"input": "test", "gain": 1, "test_signal": {"amplitude": "2x", "frequency": "fast"}},
    {"input": ["normal", "shorted", "test", "temperature", "supply", "bias_meas", "off", "normal"]},
    {"lead_off": {"current": "24nA", "threshold_pct": 90.0, "frequency": "ac_31.2hz"}},
    {"lead_off": True, "srb1": False, "srb2": True, "bias": False},
    {"chips": 2, "sample_rate": 1000},
]


def _no_violations_logged(text: str) -> None:
    assert "timing violation" not in text, text


@pytest.mark.parametrize("params", PATHS, ids=lambda p: ",".join(p) or "defaults")
def test_our_driver_keeps_every_timing_rule_in_thread_mode(
    params: dict[str, Any], runner: SourceRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eegpi.hardware.emulator")
    src = runner.open(mock_config(timing="raise"), **params)
    runner.collect(src, 300)
    src.stop()
    src.start()
    runner.collect(src, 100)
    runner.close()
    _no_violations_logged(caplog.text)
    assert src.stats().samples_dropped == 0


@pytest.mark.parametrize("gpio", ["gpiod", "rpigpio"])
def test_our_driver_keeps_every_timing_rule_with_control_pins(
    gpio: str, runner: SourceRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eegpi.hardware.emulator")
    cfg = DeviceConfig(
        backend="mock",
        acquisition="thread",
        gpio=gpio,  # type: ignore[arg-type]
        reset_pin=22,
        start_pin=23,
        pwdn_pin=24,
        emulator=EmulatorConfig(realtime=False, timing="raise"),
    )
    src = runner.open(cfg, lead_off=True, input=["normal"] * 7 + ["test"])
    runner.collect(src, 300)
    runner.close()
    _no_violations_logged(caplog.text)


def test_our_driver_keeps_every_timing_rule_in_process_mode(
    runner: SourceRunner, capfd: pytest.CaptureFixture[str]
) -> None:
    """The acquisition process logs to its stderr; a breach would also raise there."""
    cfg = mock_config(acquisition="process", timing="raise")
    src = runner.open(cfg, lead_off=True, input=["test"] + ["normal"] * 7, sample_rate=2000)
    runner.collect(src, 2000)
    src.stop()
    src.start()
    runner.collect(src, 500)
    runner.close()
    out, err = capfd.readouterr()
    _no_violations_logged(out + err)
    assert src.stats().samples_dropped == 0
