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
    batcher = Batcher(250.0, 4, 0.010)
    chunks = batcher.add(make_block(0, 60), now=1.0)
    assert [(c.seq, c.n_samples) for c in chunks] == [(0, 25), (25, 25)]
    assert chunks[1].timestamp == pytest.approx(make_block(25, 1).timestamp)
    assert batcher.pending_samples == 10 and batcher.due_at == pytest.approx(1.010)


def test_batcher_never_joins_samples_across_a_gap() -> None:
    batcher = Batcher(250.0, 4, 0.010)
    batcher.add(make_block(0, 3), now=0.0)
    [flushed] = batcher.add(make_block(5, 3), now=0.001)
    assert (flushed.seq, flushed.n_samples) == (0, 3)
    [rest] = batcher.flush()
    assert (rest.seq, rest.n_samples) == (5, 3)


def test_zero_latency_sends_every_block_at_once() -> None:
    batcher = Batcher(META.sample_rate, 4, 0.0)
    assert [c.n_samples for c in batcher.add(make_block(0, 3), now=0.0)] == [3]
