"""Sans-I/O chip logic: register map, command bytes, frame decoding, settings."""

from __future__ import annotations

import numpy as np
import pytest

from eegpi.ads1299.commands import Opcode, rreg, wreg
from eegpi.ads1299.frames import decode_frames, encode_frames, frame_size, status_word
from eegpi.ads1299.registers import (
    CHSET_GAIN,
    CHSET_MUX,
    CONFIG1_DR,
    REGISTERS,
    DataRate,
    Gain,
    Mux,
    Reg,
    reset_values,
)
from eegpi.ads1299.settings import ChipSettings, TestSignal, chain_settings, lsb_uv


def test_reset_values_follow_the_datasheet() -> None:
    values = reset_values()
    assert len(values) == len(REGISTERS) == 0x18
    assert values[Reg.ID] == 0x3E
    assert values[Reg.CONFIG1] == 0x96
    assert values[Reg.CONFIG2] == 0xC0
    assert values[Reg.CONFIG3] == 0x60
    assert all(values[Reg.CH1SET + i] == 0x61 for i in range(8))
    assert values[Reg.GPIO] == 0x0F
    assert REGISTERS[Reg.LOFF_STATP].writable == 0 and REGISTERS[Reg.CONFIG3].writable == 0xFE


def test_fields_read_and_update_bits() -> None:
    assert CONFIG1_DR.get(0x96) == DataRate.SPS_250
    assert CONFIG1_DR.set(0x96, DataRate.SPS_16000) == 0x90
    assert CHSET_GAIN.get(0x61) == Gain.X24 and CHSET_MUX.get(0x61) == Mux.SHORTED
    with pytest.raises(ValueError, match="does not fit"):
        CHSET_GAIN.set(0, 8)


def test_enums_map_rates_and_gains() -> None:
    assert [r.sps for r in DataRate] == [16000, 8000, 4000, 2000, 1000, 500, 250]
    assert [g.factor for g in Gain] == [1, 2, 4, 6, 8, 12, 24]
    with pytest.raises(ValueError, match="sample_rate: 300 is not one of 250, 500"):
        DataRate.from_sps(300)
    with pytest.raises(ValueError, match="gain: 3 is not one of 1, 2, 4, 6, 8, 12, 24"):
        Gain.from_factor(3)


def test_command_encoding() -> None:
    assert rreg(0x00, 1) == bytes([0x20, 0x00, 0x00])
    assert rreg(0x05, 8) == bytes([0x25, 0x07]) + bytes(8)
    assert wreg(0x01, [0x96, 0xC0]) == bytes([0x41, 0x01, 0x96, 0xC0])
    assert Opcode.SDATAC == 0x11 and Opcode.RDATA == 0x12
    with pytest.raises(ValueError, match=r"outside 0x00\.\.0x17"):
        rreg(0x17, 2)


def test_frame_decode_sign_extension_and_status() -> None:
    raw = bytearray([0xC0 | 0x0A, 0x50 | 0x0F, 0x30 | 0x0F])  # STATP 0xA5, STATN 0xF3, GPIO 0xF
    for code in (0x7FFFFF, 0x800000, 0xFFFFFF, 0x000001, 0x04220B, 0, 0x123456, 0xFEDCBA):
        raw += code.to_bytes(3, "big")
    frames = np.frombuffer(bytes(raw) * 3, dtype=np.uint8).reshape(3, 27)
    dec = decode_frames(frames, chips=1, channels=8)
    assert dec.counts.dtype == np.int32 and dec.counts.shape == (3, 8)
    expected = [8388607, -8388608, -1, 1, 270859, 0, 0x123456, 0xFEDCBA - (1 << 24)]
    assert dec.counts[0].tolist() == expected
    assert dec.valid.all()
    assert int(dec.loff_statp[0, 0]) == 0xA5 and int(dec.loff_statn[0, 0]) == 0xF3
    assert int(dec.gpio[0, 0]) == 0xF


def test_frame_with_wrong_status_nibble_is_invalid() -> None:
    good = encode_frames(np.array([[status_word(0, 0, 0x0F)]] * 2), np.zeros((2, 8), int), 1)
    good[1, 0] = 0x00
    assert decode_frames(good, 1, 8).valid.tolist() == [True, False]
    with pytest.raises(ValueError, match="need 54 bytes per row"):
        decode_frames(good, 2, 8)


def test_encode_decode_round_trip_daisy_chain() -> None:
    rng = np.random.default_rng(1)
    for chips, channels in ((1, 4), (2, 6), (4, 8)):
        counts = rng.integers(-(2**23), 2**23, (50, chips * channels))
        status = np.full((50, chips), status_word(0x01, 0x80, 0x0F))
        raw = encode_frames(status, counts, chips)
        assert raw.shape == (50, chips * frame_size(channels))
        dec = decode_frames(raw, chips, channels)
        assert np.array_equal(dec.counts, counts) and np.array_equal(dec.status, status)


def test_any_bytes_decode_as_big_endian_twos_complement_words_of_every_chain() -> None:
    rng = np.random.default_rng(7)
    for chips in (1, 2, 3, 4):
        for channels in (4, 6, 8):
            for n in (0, 1, 3, 160):
                raw = rng.integers(0, 256, (n, chips * frame_size(channels)), dtype=np.uint8)
                dec = decode_frames(raw, chips, channels)
                words = [
                    [int.from_bytes(bytes(row[i : i + 3]), "big") for i in range(0, len(row), 3)]
                    for row in raw
                ]
                per_chip = channels + 1
                status = [[w[c * per_chip] for c in range(chips)] for w in words]
                counts = [
                    [
                        w[c * per_chip + 1 + k] - ((w[c * per_chip + 1 + k] >> 23) << 24)
                        for c in range(chips)
                        for k in range(channels)
                    ]
                    for w in words
                ]
                assert dec.status.dtype == np.uint32 and dec.counts.dtype == np.int32
                assert dec.status.shape == (n, chips) and dec.counts.shape == (n, chips * channels)
                assert dec.status.tolist() == status and dec.counts.tolist() == counts


def test_decoding_reads_the_bytes_not_their_layout_and_keeps_nothing_of_them() -> None:
    rng = np.random.default_rng(3)
    wide = rng.integers(0, 256, (12, 2 * 27 + 5), dtype=np.uint8)
    expected = decode_frames(np.ascontiguousarray(wide[::2, 5:]), 2, 8)
    layouts = {
        "rows and columns of a wider buffer": wide[::2, 5:],
        "Fortran order": np.asfortranarray(wide[::2, 5:]),
        "byte values in int64": wide[::2, 5:].astype(np.int64),
        "read-only": np.frombuffer(wide[::2, 5:].tobytes(), np.uint8).reshape(6, 54),
    }
    for name, raw in layouts.items():
        dec = decode_frames(raw, 2, 8)
        assert np.array_equal(dec.counts, expected.counts), name
        assert np.array_equal(dec.status, expected.status), name
        assert dec.counts.flags.c_contiguous and not np.shares_memory(dec.counts, raw), name
    raw = np.ascontiguousarray(wide[::2, 5:])
    dec = decode_frames(raw, 2, 8)
    raw[:] = 0  # the ring's slots are reused: a decoded block must not change with them
    assert np.array_equal(dec.counts, expected.counts)
    assert np.array_equal(dec.status, expected.status)


def test_lsb_matches_the_datasheet_table() -> None:
    table = {1: 0.53644, 2: 0.26822, 4: 0.13411, 6: 0.08941, 8: 0.06706, 12: 0.04470, 24: 0.02235}
    for gain, lsb in table.items():
        assert lsb_uv(gain) == pytest.approx(lsb, abs=1e-5)


def test_settings_registers_for_eeg_defaults() -> None:
    regs = dict(
        chain_settings(
            sample_rate=1000, gain=24, input="normal", srb2=False, chips=1, channels_per_chip=8
        ).registers()
    )
    assert regs[Reg.CONFIG1] == 0x94
    assert regs[Reg.CONFIG2] == 0xC0
    assert regs[Reg.CONFIG3] == 0xEC
    assert regs[Reg.CH1SET] == 0x60
    assert regs[Reg.MISC1] == 0x20
    assert regs[Reg.BIAS_SENSP] == 0xFF and regs[Reg.BIAS_SENSN] == 0x00
    assert list(dict(ChipSettings().registers()))[-1] == Reg.CONFIG1  # filter restart last


def test_settings_test_signal_and_per_channel() -> None:
    s = chain_settings(
        sample_rate=250,
        gain=[1, 2, 4, 6, 8, 12, 24, 24],
        input=["test", "shorted", "temperature", "supply", "bias_meas", "off", "normal", "normal"],
        srb2=[False] * 7 + [True],
        chips=1,
        channels_per_chip=8,
        test_signal=TestSignal(amplitude="2x", frequency="fast"),
    )
    regs = dict(s.registers())
    assert regs[Reg.CONFIG2] == 0xD5
    assert [regs[Reg.CH1SET + i] for i in range(8)] == [
        0x05,
        0x11,
        0x24,
        0x33,
        0x42,
        0xD1,
        0x60,
        0x68,
    ]
    assert regs[Reg.CONFIG3] & 0x10  # BIAS_MEAS for the bias_meas channel


def test_settings_refuse_bad_lists_and_differing_chips() -> None:
    with pytest.raises(ValueError, match=r"one entry per channel \(16\), got 8"):
        chain_settings(
            sample_rate=250,
            gain=[24] * 8,
            input="normal",
            srb2=False,
            chips=2,
            channels_per_chip=8,
        )
    with pytest.raises(ValueError, match=r"channel 9 \(chip 2 channel 1\).*set alike"):
        chain_settings(
            sample_rate=250,
            gain=[24] * 8 + [12] + [24] * 7,
            input="normal",
            srb2=False,
            chips=2,
            channels_per_chip=8,
        )
    with pytest.raises(ValueError, match=r"test_signal\.frequency: 'medium' is not one of"):
        TestSignal(frequency="medium")
