"""The emulator's per-frame shortcuts give exactly what its general paths give.

A gpiod request for one DRDY line and nothing else (an acquisition loop's) is served without
the general collection, the chip answers it with ``edges_due`` (edges and the next edge's time
under one lock), and a frame read in the current chunk is a slice of it. Each is compared with
the general path on the same register state and the same reads, missed DRDYs included.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from eegpi.ads1299.commands import Opcode
from eegpi.ads1299.frames import decode_frames
from eegpi.hardware.config import EmulatorConfig
from eegpi.hardware.emulator import EmulatedBoard
from eegpi.hardware.emulator.chip import Ads1299Emulator

SPEED = 4_000_000
PERIOD_NS = 4_000_000  # 250 SPS, the power-up data rate
START_AT_NS = 10**15
"""Every board's clock is moved here first, so two boards stamp the same edges alike."""
GAPS = (1.0, 1.0, 2.5, 1.0, 7.2, 0.3, 1.0, 3.0, 1.0, 0.5, 12.0, 1.0)
"""Periods between reads: on time, late by one or more DRDYs, too late for a 4-event buffer."""


def _board(**cfg: Any) -> EmulatedBoard:
    board = EmulatedBoard(EmulatorConfig(realtime=False, stamp_index=True, **cfg))
    board.clock.sleep_until(START_AT_NS)
    return board


Event = tuple[int, int, int]


def _reads(
    board: EmulatedBoard, general: bool, buffer: int = 4
) -> tuple[list[Any], list[tuple[list[Event], list[int]]]]:
    """What a reader that reads late now and then sees in two runs, and each frame it read
    with the events it had read before it."""
    dev = board.spidev()
    dev.open(0, 0)
    dev.mode = 1
    request = board.request_drdy("/dev/gpiochip0", 26, event_buffer_size=buffer)
    assert request._drdy is not None  # the shortcut serves this request ...
    if general:
        request._drdy = None  # ... unless told not to
    seen: list[Any] = []
    frames: list[tuple[list[Event], list[int]]] = []
    for _run in range(2):
        dev.xfer2([Opcode.START], SPEED, 2)
        for gap in GAPS:
            ready = request.wait_edge_events(0.05)
            events = request.read_edge_events() if ready else []
            stamps = [(e.timestamp_ns, e.line_seqno, e.global_seqno) for e in events]
            frame = dev.xfer2([0] * 27, SPEED)
            seen += [stamps, frame, request.wait_edge_events(0)]
            frames.append((stamps, frame))
            board.clock.sleep(gap * PERIOD_NS / 1e9)
        dev.xfer2([Opcode.STOP], SPEED, 2)
        seen.append(request.wait_edge_events(0.02))
        seen.append([(e.timestamp_ns, e.line_seqno) for e in request.read_edge_events()])
    request.release()
    seen.append(sorted(board.chip.violation_counts.items()))
    return seen, frames


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"drdy_jitter_us": 900.0},
        {"clock_ppm": -80.0},
        {"drop_conversions": (3, 9), "silent_conversions": (4, 20)},
    ],
    ids=["plain", "jitter", "slow-clock", "edge-faults"],
)
def test_a_drdy_only_request_reads_what_the_general_path_reads(cfg: dict[str, Any]) -> None:
    fast, frames = _reads(_board(**cfg), general=False)
    general, _ = _reads(_board(**cfg), general=True)
    assert fast == general
    seqnos = [e[1] for events, _frame in frames for e in events]
    assert len(seqnos) >= 15
    assert seqnos != list(range(1, len(seqnos) + 1))  # DRDYs were missed: seqno gaps


def test_each_frame_read_right_after_its_edge_holds_that_conversion() -> None:
    # stamp_index puts the conversion's index in channel 1; in the first run the line seqno
    # counts conversions from 1, so the frame read after an event holds conversion seqno - 1,
    # and missed DRDYs do not shift it.
    _, frames = _reads(_board(), general=False)
    checked = 0
    for events, frame in frames[: len(GAPS)]:
        if not events:
            continue
        raw = np.frombuffer(bytes(frame), np.uint8).reshape(1, 27)
        index = int(decode_frames(raw, 1, 8).counts[0, 0])
        assert index == events[-1][1] - 1
        checked += 1
    assert checked >= 8


def _started_chip(**cfg: Any) -> tuple[Ads1299Emulator, EmulatedBoard]:
    board = _board(**cfg)
    dev = board.spidev()
    dev.open(0, 0)
    dev.mode = 1
    dev.xfer2([Opcode.START], SPEED, 2)
    return board.chip, board


@pytest.mark.parametrize(
    "cfg",
    [{}, {"drdy_jitter_us": 700.0}, {"clock_ppm": 37.5}, {"stuck_drdy_after": 12}],
    ids=["plain", "jitter", "fast-clock", "stuck-drdy"],
)
def test_edges_due_is_edges_then_next_edge_ns(cfg: dict[str, Any]) -> None:
    chip, board = _started_chip(**cfg)
    board.clock.sleep(4.5 * PERIOD_NS / 1e9)  # settled: the first conversion fell
    run = chip.run_id
    for _ in range(20):
        cases = itertools.product((run, run - 1), (0, 1, 3, 7, 30), (1, 2, 5, 1024))
        for run_id, cursor, limit in cases:  # run - 1: a reader still in an earlier run
            batch = chip.edges(run_id, cursor, limit)
            due = chip.next_edge_ns(batch.run_id, batch.next_index) or 0
            expected = (batch.run_id, batch.next_index, batch.count, batch.stamps, due)
            assert chip.edges_due(run_id, cursor, limit) == expected
        board.clock.sleep(1.37 * PERIOD_NS / 1e9)


def test_a_frame_read_is_the_conversion_the_general_lookup_gives() -> None:
    chip, board = _started_chip(corrupt_every=5)
    dev = board.spidev()
    dev.open(0, 0)
    dev.mode = 1
    board.clock.sleep(4.5 * PERIOD_NS / 1e9)
    for _ in range(600):  # across chunk boundaries (256 conversions a chunk)
        latest = chip.latest_conversion(board.clock.monotonic_ns())
        assert bytes(dev.xfer2([0] * 27, SPEED)) == chip._frame(latest)
        board.clock.sleep(PERIOD_NS / 1e9)
