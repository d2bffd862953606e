"""Encodings and the batching rule, without sockets."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from eegpi.broker.batching import Batcher, chunk_cap
from eegpi.broker.codec import CodecError, decode_binary_data, encode_binary_data, encode_json_data

from .conftest import META, make_block


def test_binary_header_layout_byte_by_byte() -> None:
    data = np.array([[1.0, -2.5], [3.25, 4.0], [5.0, 6.0]])
    frame = encode_binary_data("eeg", 42, 1.5, data)
    assert frame[:4] == b"EGPI"
    assert frame[4] == 1 and frame[5] == 1
    header_len = struct.unpack_from("<H", frame, 6)[0]
    assert header_len == 36  # 32 fixed + "eeg" padded to 4
    assert struct.unpack_from("<QdIHH", frame, 8) == (42, 1.5, 3, 2, 3)
    assert frame[32:36] == b"eeg\0"
    payload = np.frombuffer(frame, "<f4", offset=header_len)
    np.testing.assert_array_equal(payload, [1.0, -2.5, 3.25, 4.0, 5.0, 6.0])
    message = decode_binary_data(frame)
    assert (message.topic, message.seq, message.timestamp) == ("eeg", 42, 1.5)
    np.testing.assert_array_equal(message.data, data.astype(np.float32))


def test_binary_decode_rejects_damaged_frames() -> None:
    frame = encode_binary_data("eeg", 0, 0.0, np.zeros((2, 2)))
    with pytest.raises(CodecError, match="magic"):
        decode_binary_data(b"XXXX" + frame[4:])
    with pytest.raises(CodecError, match="bytes"):
        decode_binary_data(frame[:-1])


def test_json_data_maps_non_finite_values_to_null() -> None:
    text = encode_json_data("eeg", 3, 2.0, np.array([[1.0, np.nan], [np.inf, 2.0]]))
    assert json.loads(text) == {
        "topic": "eeg",
        "seq": 3,
        "timestamp": 2.0,
        "data": [[1.0, None], [None, 2.0]],
    }


def test_json_data_round_trips_every_float64_exactly_whatever_the_array_layout() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.standard_normal((6, 8)) * 10.0 ** rng.integers(-12, 12, (6, 8)),
            [[0.0, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 1e-7, 0.1, -187500.0]],
        ]
    )
    layouts = {
        "C order": values,
        "Fortran order": np.asfortranarray(values),
        "every other row": values[::2],
        "big-endian": values.astype(">f8"),
        "float32": values[:6].astype(np.float32),  # the extremes overflow float32
    }
    for name, data in layouts.items():
        text = encode_json_data("eeg", np.int64(2**40), 1.7e9 + 0.123, data)
        message = json.loads(text)
        assert (message["seq"], message["timestamp"]) == (2**40, 1.7e9 + 0.123), name
        decoded = np.array(message["data"], dtype=np.float64)
        expected = np.asarray(data, dtype=np.float64)
        assert decoded.shape == expected.shape, name
        assert decoded.tobytes() == expected.tobytes(), name  # bit for bit, signed zero too
    assert encode_json_data("eeg", 0, 0.0, np.zeros((0, 8))).endswith('"data":[]}')


def test_cap_is_100_ms_or_the_byte_budget() -> None:
    assert chunk_cap(250, 8) == 25
    assert chunk_cap(16000, 8) == 1600
    assert chunk_cap(16000, 32) == 512
    assert chunk_cap(1, 8) == 1


def test_batcher_waits_for_latency_then_sends_what_is_pending() -> None:
    batcher = Batcher(250.0, 4, 0.010)
    assert batcher.add(make_block(0, 1), now=0.000) == []
    assert batcher.add(make_block(1, 1), now=0.004) == []
    assert batcher.due_at == pytest.approx(0.010)
    assert batcher.poll(0.009) == []
    [chunk] = batcher.poll(0.010)
    assert (chunk.seq, chunk.n_samples) == (0, 2)
    np.testing.assert_array_equal(chunk.data, make_block(0, 2).data)
    assert batcher.due_at is None


def test_batcher_splits_at_cap_and_keeps_the_rest_with_its_arrival() -> None:
    batcher = Batcher(250.0, 4, 1.0)
    chunks = batcher.add(make_block(0, 60), now=1.0)
    assert [(c.seq, c.n_samples) for c in chunks] == [(0, 25), (25, 25)]
    assert chunks[1].timestamp == pytest.approx(make_block(25, 1).timestamp)
    assert batcher.pending_samples == 10 and batcher.due_at == pytest.approx(2.0)


def test_the_rest_of_a_split_block_leaves_when_the_next_block_comes_too_late() -> None:
    batcher = Batcher(250.0, 4, 0.010)
    chunks = batcher.add(make_block(0, 60), now=1.0)  # the next block is 240 ms away
    assert [(c.seq, c.n_samples) for c in chunks] == [(0, 25), (25, 25), (50, 10)]
    assert batcher.due_at is None


def test_batcher_never_joins_samples_across_a_gap() -> None:
    batcher = Batcher(250.0, 4, 0.100)
    batcher.add(make_block(0, 3), now=0.0)
    [flushed] = batcher.add(make_block(5, 3), now=0.001)
    assert (flushed.seq, flushed.n_samples) == (0, 3)
    [rest] = batcher.flush()
    assert (rest.seq, rest.n_samples) == (5, 3)


def test_zero_latency_sends_every_block_at_once() -> None:
    batcher = Batcher(META.sample_rate, 4, 0.0)
    assert [c.n_samples for c in batcher.add(make_block(0, 3), now=0.0)] == [3]


# ---- deadlines from sample time (times below are Unix seconds, as Block.timestamp) ---------

T0 = make_block(0, 1).timestamp  # sample seq s was taken at T0 + s / 250


def test_deadline_counts_from_the_samples_own_time_not_its_arrival() -> None:
    batcher = Batcher(250.0, 4, 0.020)
    # Two samples reach the hub 6 ms after the first was taken (one upstream tick of two).
    assert batcher.add(make_block(0, 2), now=T0 + 0.006) == []
    assert batcher.due_at == pytest.approx(T0 + 0.020)
    assert batcher.poll(T0 + 0.0199) == []
    [chunk] = batcher.poll(T0 + 0.020)
    assert (chunk.seq, chunk.n_samples) == (0, 2)


def test_a_block_that_arrives_past_its_deadline_leaves_at_once() -> None:
    batcher = Batcher(250.0, 4, 0.010)
    [chunk] = batcher.add(make_block(0, 3), now=T0 + 0.011)
    assert (chunk.seq, chunk.n_samples) == (0, 3)
    assert batcher.due_at is None


def test_sends_now_when_the_next_sample_cannot_arrive_in_time() -> None:
    """250 SPS, 10 ms, one sample per tick 1 ms after its DRDY: messages of 2-3, no timer."""
    batcher = Batcher(250.0, 4, 0.010)
    sent: list[tuple[int, int]] = []
    for seq in range(12):
        now = T0 + seq / 250.0 + 0.0005
        sent += [(c.seq, c.n_samples) for c in batcher.add(make_block(seq, 1), now=now)]
        due = batcher.due_at
        # The next sample arrives before the deadline whenever the batcher waits for it.
        assert due is None or now + 1 / 250.0 <= due
    assert sent == [(0, 3), (3, 3), (6, 3), (9, 3)]


def test_ticks_of_several_samples_are_sent_when_the_next_tick_comes_too_late() -> None:
    """Upstream ticks of 3 samples (12 ms at 250 SPS): every tick leaves at once."""
    batcher = Batcher(250.0, 4, 0.010)
    for tick in range(4):
        seq = 3 * tick
        now = T0 + (seq + 2) / 250.0 + 0.001  # the tick ends with its newest sample
        block = make_block(seq, 3)
        [chunk] = batcher.add(block, now=now)
        assert (chunk.seq, chunk.n_samples, chunk.timestamp) == (seq, 3, block.timestamp)
        np.testing.assert_array_equal(chunk.data, block.data)
        assert batcher.pending_samples == 0 and batcher.due_at is None


def test_a_timestamp_from_another_clock_never_holds_samples_past_their_arrival() -> None:
    batcher = Batcher(250.0, 4, 0.010)
    # Sample time one hour ahead of the host clock: the arrival bound still applies.
    block = make_block(0, 1, t0=T0 + 3600.0)
    assert batcher.add(block, now=T0) == []
    assert batcher.due_at == pytest.approx(T0 + 0.010)
