"""The emulated electrodes: the chip's lead-off current through each electrode's impedance and
the board's series resistor shows on the channel as LOFF, LOFF_SENSP/N, LOFF_FLIP, MISC1.SRB1
and CONFIG4.PD_LOFF_COMP program it (a bare SPI host, no driver)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from eegpi.ads1299.commands import Opcode
from eegpi.ads1299.registers import Reg
from eegpi.hardware.config import EmulatorConfig
from eegpi.hardware.emulator.electrodes import excitation_periods, filtered_square
from tests.hardware.emu_host import Host

UV_PER_COUNT = 4.5e6 / (24 * 2**23)
QUIET = {"alpha_uv": 0.0, "mains_uv": 0.0, "noise_uv": 0.0, "offset_uv": 0.0}
"""No synthetic EEG: what is left is the excitation and the shorted-input noise (0.14 uV)."""


def _run(regs: dict[int, int], n: int = 64, **cfg: Any) -> tuple[npt.NDArray[Any], list[int]]:
    """Program ``regs`` (every channel normal input, gain 24), start, and read ``n`` frames:
    the channels in uV and the status words."""
    host = Host(**{**QUIET, **cfg})
    host.power_up()
    host.cmd(Opcode.SDATAC)
    for k in range(8):
        host.wreg(Reg.CH1SET + k, 0x60)
    for address, value in regs.items():
        host.wreg(address, value)
    host.cmd(Opcode.START)
    host.cmd(Opcode.RDATAC)
    rows, words = [], []
    for k in range(n):
        host.at(host.edge_ns(k))
        raw = host.frame()
        rows.append(host.counts(raw))
        words.append(host.status(raw))
    return np.array(rows, dtype=np.float64) * UV_PER_COUNT, words


def test_the_sinc3_filter_turns_the_fdr4_square_into_two_thirds() -> None:
    wave = filtered_square(np.arange(8, dtype=np.int64), 4)
    assert np.allclose(wave, [-2 / 3, -2 / 3, 2 / 3, 2 / 3] * 2)  # +/-1 square, 2/3 of it
    slow = filtered_square(np.arange(32, dtype=np.int64), 32)  # 7.8 Hz at 250 SPS
    assert np.allclose(slow[3:16], 1.0) and np.allclose(slow[19:32], -1.0)
    assert excitation_periods(3, 6) == 4
    assert excitation_periods(1, 6) == 32 and excitation_periods(2, 6) == 8  # 7.8, 31.25 Hz
    assert excitation_periods(2, 0) == 512 and excitation_periods(0, 6) is None


def test_ac_fdr4_current_through_each_electrode_reads_on_its_channel() -> None:
    z = [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
    # 6 nA (ILEAD 00), AC at fDR/4 (FLEAD 11), P side of every channel, SRB1 reference
    uv, words = _run(
        {Reg.LOFF: 0x03, Reg.LOFF_SENSP: 0xFF, Reg.MISC1: 0x20}, electrode_impedance_kohm=z
    )
    expected = 6e-9 * (np.array(z) + 2.2) * 1e3 * 1e6 * (2 / 3)  # uV at the +2/3 level
    pattern = filtered_square(np.arange(len(uv), dtype=np.int64), 4) * 1.5  # +/-1
    seen = (uv * pattern[:, None]).mean(axis=0)
    assert np.allclose(seen, expected, rtol=0.01, atol=0.2), (seen, expected)
    assert all(w >> 4 & 0xFFFF == 0 for w in words)  # no comparator: no lead-off bits


def test_no_sensing_bit_no_current() -> None:
    uv, _ = _run({Reg.LOFF: 0x03, Reg.LOFF_SENSP: 0x01}, electrode_impedance_kohm=1000.0)
    assert abs(uv[:, 0]).mean() > 1000  # channel 1 excited: 6 nA x 1 MOhm = 6 mV
    assert abs(uv[:, 1:]).max() < 2  # the others read their 0.14 uV noise


def test_flip_reverses_and_dc_is_a_level() -> None:
    z = {"electrode_impedance_kohm": 97.8}  # + 2.2 = 100 kOhm
    dc, _ = _run({Reg.LOFF: 0x00, Reg.LOFF_SENSP: 0x03, Reg.LOFF_FLIP: 0x02}, **z)
    assert np.allclose(dc[:, 0], 600.0, atol=2) and np.allclose(dc[:, 1], -600.0, atol=2)
    ac, _ = _run({Reg.LOFF: 0x03, Reg.LOFF_SENSP: 0x03, Reg.LOFF_FLIP: 0x02}, **z)
    assert np.allclose(ac[:, 0], -ac[:, 1], atol=2) and abs(ac[:, 0]).min() > 390


def test_srb1_sums_the_n_currents_in_the_reference_electrode() -> None:
    cfg = {"electrode_impedance_kohm": 7.8, "reference_impedance_kohm": 17.8}  # 10 and 20 total
    regs = {Reg.LOFF: 0x00, Reg.LOFF_SENSP: 0x01, Reg.LOFF_SENSN: 0x0F}  # 6 nA, DC
    common = _run({**regs, Reg.MISC1: 0x20}, **cfg)[0].mean(axis=0)
    # SRB1: one N node for all channels, 4 sinks x 6 nA x 20 kOhm = 480 uV on every channel
    assert np.allclose(common, [540] + [480] * 7, atol=1), common
    bipolar = _run(regs, **cfg)[0].mean(axis=0)  # each N input its own electrode
    assert np.allclose(bipolar, [180] + [120] * 3 + [0] * 4, atol=1), bipolar


def test_a_pin_driven_past_the_comparator_threshold_reads_as_lead_off() -> None:
    # 24 uA through 200 kOhm would be 4.8 V: the pin stops at the rail, past 95 % of AVDD
    regs = {Reg.LOFF: 0x0F, Reg.LOFF_SENSP: 0x03, Reg.CONFIG4: 0x02, Reg.MISC1: 0x20}
    uv, words = _run(regs, electrode_impedance_kohm=[200.0, 5.0] + [5.0] * 6)
    statp = (words[-1] >> 12) & 0xFF
    assert statp == 0x01  # channel 1 only: 24 uA x 7.2 kOhm = 173 mV stays inside
    assert abs(uv[:, 0]).max() >= 187_000  # and channel 1 is railed
    quiet = _run({**regs, Reg.CONFIG4: 0x00}, electrode_impedance_kohm=200.0)[1]
    assert all((w >> 12) & 0xFF == 0 for w in quiet)  # comparators powered down: no bits


def test_leads_off_channels_stay_saturated_under_the_excitation() -> None:
    regs = {Reg.LOFF: 0x03, Reg.LOFF_SENSP: 0xFF, Reg.CONFIG4: 0x02, Reg.MISC1: 0x20}
    uv, words = _run(regs, leads_off=(2,))
    assert (uv[:, 1] >= 187_000).all()
    assert (words[-1] >> 12) & 0xFF == 0x02


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"electrode_impedance_kohm": -1.0}, "electrode_impedance_kohm: -1.0 is not a number"),
        ({"electrode_impedance_kohm": [5.0] * 33}, "33 values; give one per channel"),
        ({"series_resistance_kohm": "2k"}, "series_resistance_kohm: '2k' is not a number"),
        ({"reference_impedance_kohm": True}, "reference_impedance_kohm: True is not a number"),
    ],
)
def test_bad_electrode_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EmulatorConfig(**options)


def test_a_list_shorter_than_the_chain_is_refused() -> None:
    with pytest.raises(ValueError, match="8 values for the chain's 16 channels"):
        Host(chips=2, electrode_impedance_kohm=[5.0] * 8)
