"""What the benchmark clients count: every missing sample exactly, lag notices, latency."""

from __future__ import annotations

import pytest

from bench.wsclients import Tally, merge

ACK = {"subscribed": "eeg_filtered", "meta": {"sample_rate": 250.0}, "format": "json"}


def _msg(seq: int, n: int, ts: float = 100.0) -> dict[str, object]:
    return {"topic": "eeg_filtered", "seq": seq, "timestamp": ts, "data": [[0.0] * 8] * n}


def test_k_missing_samples_are_counted_exactly() -> None:
    t = Tally()
    t.eegpi(ACK, 0.0)
    seq, lost = 0, 0
    for i in range(50):
        n = 1 + i % 4
        skip = 3 if i % 7 == 6 else 0  # the server skipped these samples
        seq += skip
        lost += skip
        assert t.eegpi(_msg(seq, n), 0.0)
        seq += n
    assert lost > 0
    assert t.gap_samples == lost
    assert t.samples == seq - lost
    assert t.messages == 50


def test_lagged_notices_count_messages_and_samples() -> None:
    t = Tally()
    assert not t.eegpi({"lagged": 2, "samples": 7}, 0.0)
    assert not t.eegpi({"lagged": 1, "samples": 3}, 0.0)
    assert (t.lagged_notices, t.lagged_samples, t.messages) == (2, 10, 0)


def test_latency_is_of_the_newest_sample_at_the_acknowledged_rate() -> None:
    t = Tally()
    t.eegpi({**ACK, "meta": {"sample_rate": 500.0}}, 0.0)
    t.eegpi(_msg(0, 5, ts=10.0), now=10.020)  # newest sample at 10.0 + 4/500 = 10.008
    assert t.latencies_ms == [pytest.approx(12.0)]


def test_a_pending_ack_keeps_the_rate() -> None:
    t = Tally(rate=250.0)
    t.eegpi({"subscribed": "eeg_filtered", "meta": None, "pending": True}, 0.0)
    assert t.rate == 250.0


def test_a_new_window_invents_no_gap() -> None:
    t = Tally()
    t.eegpi(_msg(0, 3), 0.0)
    t.clear()
    t.eegpi(_msg(3, 3), 0.0)
    t.eegpi(_msg(10, 3), 0.0)
    assert (t.messages, t.samples, t.gap_samples) == (2, 6, 4)


def test_pieeg_frames_count_gaps_by_their_counter() -> None:
    t = Tally()
    for n in (1, 2, 3, 7, 8, 20):
        assert t.pieeg({"t": 5.0, "n": n, "channels": [0.0] * 8}, now=5.002)
    assert not t.pieeg({"status": "connected"}, 0.0)
    assert (t.messages, t.gap_samples) == (6, 3 + 11)
    assert t.latencies_ms[0] == pytest.approx(2.0)


def test_merge_adds_clients_up() -> None:
    a, b = Tally(), Tally()
    a.eegpi(_msg(0, 2), 0.0)
    b.eegpi(_msg(0, 2), 0.0)
    b.eegpi(_msg(5, 1), 0.0)
    m = merge([a.report(), b.report()])
    assert (m["clients"], m["messages"], m["samples"], m["gap_samples"]) == (2, 3, 5, 3)
    assert len(m["latencies_ms"]) == 3
