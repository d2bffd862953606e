"""Loss accounting against the emulator's ground truth: every frame says which conversion it is
(``stamp_index``), so a test knows exactly which conversions were lost and checks each label.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from eegpi.ads1299.frames import decode_frames
from eegpi.ads1299.settings import chain_settings
from eegpi.daemon.config import AppConfig, from_mapping
from eegpi.exc import ConfigError
from eegpi.hardware import open_device
from eegpi.hardware.acquisition import Acquisition
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.emulator.rpigpio import EmulatedRpiGpio
from eegpi.hardware.process import AcquisitionProcess
from eegpi.hardware.ring import RawFrames
from eegpi.hardware.rpigpio import RpiGpioDrdy
from eegpi.hardware.slots import CadenceSlots, KernelSlots

GPIOS = ["gpiod", "rpigpio"]


def _config(gpio: str, acquisition: str = "thread", **emulator: Any) -> DeviceConfig:
    """Virtual time, each frame stamped with its conversion index."""
    return DeviceConfig(
        backend="mock",
        gpio=gpio,  # type: ignore[arg-type]
        acquisition=acquisition,  # type: ignore[arg-type]
        emulator=EmulatorConfig(realtime=False, stamp_index=True, **emulator),
    )


def _settings(rate: int) -> Any:
    return chain_settings(
        sample_rate=rate, gain=24, input="normal", srb2=False, chips=1, channels_per_chip=8
    )


@dataclass
class Run:
    seq: np.ndarray[Any, Any]
    conversion: np.ndarray[Any, Any]
    """The conversion each frame holds, from the emulator."""
    missed: int
    frames_read: int

    @property
    def offset(self) -> int:
        return int(self.conversion[0] - self.seq[0])

    def lost(self) -> list[int]:
        """Conversions of the run (from its slot 0) that no frame carries."""
        first = self.offset
        return sorted(set(range(first, first + int(self.seq[-1]) + 1)) - set(self.conversion))


def _run(
    cfg: DeviceConfig, rate: int, until: int, stalls: Callable[[int], int] | None = None
) -> Run:
    """Acquire in virtual time until a frame past conversion ``until`` arrived, then stop.

    ``stalls``: keeps the RPi.GPIO stand-in's callback thread away after some callback rounds
    (see :meth:`EmulatedRpiGpio.stall_callbacks`); thread mode only.
    """
    parts: list[RawFrames] = []

    def done() -> bool:
        return bool(parts) and len(parts[-1]) > 0 and _conversions(parts[-1])[-1] > until

    if cfg.acquisition == "process":
        proc = AcquisitionProcess(cfg)
        try:
            proc.open()
            proc.configure(_settings(rate))
            proc.start(rate, lossless=True)
            while not done():
                assert proc.wait(1, 10.0) >= 1
                parts.append(proc.take())
            proc.stop()
            parts.append(proc.take())
            missed, frames_read = proc.missed, proc.frames_read
        finally:
            proc.close()
    else:
        device = open_device(cfg)
        try:
            if stalls is not None:
                drdy = device.link.drdy
                assert isinstance(drdy, RpiGpioDrdy) and isinstance(drdy.gpio, EmulatedRpiGpio)
                drdy.gpio.stall_callbacks(stalls)
            device.configure(_settings(rate))
            acq = Acquisition(device, rate, lossless=True)
            acq.start()
            try:
                while not done():
                    assert acq.wait(1, 10.0) >= 1
                    parts.append(acq.take())
            finally:
                acq.stop()
            parts.append(acq.take())
            missed, frames_read = acq.missed, acq.frames_read
        finally:
            device.close()
    seq = np.concatenate([p.seq for p in parts])
    frames = np.concatenate([p.frames for p in parts])
    return Run(seq, _conversions_of(frames), missed, frames_read)


def _conversions(raw: RawFrames) -> np.ndarray[Any, Any]:
    return _conversions_of(raw.frames)


def _conversions_of(frames: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return decode_frames(frames, 1, 8).counts[:, 0].astype(np.int64)


def _check_labels_and_counts(run: Run) -> None:
    """Every frame carries its true slot; every slot up to the newest is a frame or counted."""
    wrong = np.flatnonzero(run.conversion - run.seq != run.offset)
    pairs = [(int(run.seq[i]), int(run.conversion[i])) for i in wrong[:10]]
    assert len(wrong) == 0, f"mislabelled frames (slot, conversion): {pairs}"
    assert np.all(np.diff(run.seq) > 0)
    assert run.frames_read == len(run.seq)
    assert run.frames_read + run.missed == run.seq[-1] + 1


# --- K chosen conversions lost, exactly K counted -----------------------------------------------


@pytest.mark.parametrize("knob", ["drop_conversions", "silent_conversions"])
@pytest.mark.parametrize("mode", ["thread", "process"])
@pytest.mark.parametrize("gpio", GPIOS)
def test_chosen_conversions_are_lost_and_counted_exactly(gpio: str, mode: str, knob: str) -> None:
    chosen = (40, 41, 97, 150, 151, 152)
    run = _run(_config(gpio, mode, **{knob: chosen}), 1000, until=200)
    _check_labels_and_counts(run)
    assert run.lost() == list(chosen)
    assert run.missed == len(chosen)
    # The gaps in the slots are exactly where the chosen conversions were.
    gaps = [int(s) + 1 for a, s in zip(run.seq[1:], run.seq[:-1], strict=True) if a != s + 1]
    assert [g + run.offset for g in gaps] == [40, 97, 150]


# --- host stalls around the read: labels never depend on where the reader was preempted --------


@pytest.mark.parametrize("at", ["events", "before", "during", "after"])
@pytest.mark.parametrize("gpio", GPIOS)
def test_frames_keep_their_true_slot_whatever_the_reader_stalls(gpio: str, at: str) -> None:
    if gpio == "rpigpio" and at == "events":
        pytest.skip("RPi.GPIO hands events over in the backend's own code: no stand-in to stall")
    periods = 3
    cfg = _config(gpio, late_read_every=7, late_read_periods=periods, late_read_at=at)
    run = _run(cfg, 1000, until=400)
    _check_labels_and_counts(run)
    stalls = sorted(set(run.lost()))
    assert stalls, "the fault never hit"
    runs = np.split(np.array(stalls), np.flatnonzero(np.diff(stalls) != 1) + 1)
    # Each stall loses the conversions that went by, wherever it hit: a frame read across an
    # edge cannot be named and is discarded, and the next read takes the newest conversion.
    assert {len(r) for r in runs} == {periods}
    assert run.missed == len(stalls)


# --- RPi.GPIO: callbacks merge edges that pass while the callback thread is away ---------------


@pytest.mark.parametrize("ppm", [0, 10_000, -10_000])
@pytest.mark.parametrize("merged", [1, 2, 5])
def test_merged_callbacks_keep_labels_and_count_each_lost_conversion(merged: int, ppm: int) -> None:
    # Every 50th callback round the thread stays away while ``merged`` + 1 edges fall and comes
    # back at a different point of the period each time: those edges make one callback, stamped
    # that late, and the callback count falls short by ``merged`` for good.
    rate = 1000
    period = 1_000_000
    ends = [0.05, 0.3, 0.6, 0.85]  # where in the period after the last merged edge it returns

    rounds: list[int] = []

    def stalls(n: int) -> int:
        rounds.append(n)
        if n % 50:
            return 0
        return int((merged + 1 + ends[n // 50 % len(ends)]) * period)

    run = _run(_config("rpigpio", clock_ppm=ppm), rate, until=2000, stalls=stalls)
    _check_labels_and_counts(run)
    assert run.missed == len(run.lost())
    # The merges happened: a stall's edges came with one callback (with a slow chip clock the
    # stall may end just before its last edge). On a loaded host the poll thread may come back
    # within a stall now and then (a poll round of its own): most stalls must still merge.
    edges = int(run.conversion[-1]) + 1
    merges = (merged - 1 if ppm < 0 else merged) * (len(rounds) // 50)
    assert len(rounds) <= edges + 3 - merges * 9 // 10


def test_a_kernel_buffer_overflow_is_seen_from_line_seqno() -> None:
    # A 40-period stall with a 16-event kernel buffer: only line_seqno tells how many went by.
    cfg = _config("gpiod", event_buffer_size=16, late_read_every=100, late_read_periods=40)
    run = _run(cfg, 1000, until=300)
    _check_labels_and_counts(run)
    assert run.missed >= 40


# --- the slot rules on their own, with jittered stamps ------------------------------------------


@dataclass(frozen=True)
class Edge:
    timestamp_ns: int
    line_seqno: int
    global_seqno: int = 0
    event_type: Any = None


P = 1_000_000  # 1000 SPS


def _kernel_run(stamps: list[tuple[int, int]]) -> list[int | None]:
    """Slots KernelSlots gives one frame per edge (read right after it, no late events)."""
    slots = KernelSlots(P)
    out: list[int | None] = []
    for t, seqno in stamps:
        out.append(slots.place([Edge(t, seqno)], [], t + 1000, t + 2000).slot)
    return out


def test_kernel_jitter_below_three_quarters_of_a_period_is_not_a_miss() -> None:
    rng = np.random.default_rng(1)
    lag = rng.uniform(0, 0.7 * P, 500).astype(int)  # interrupt latency: stamps only ever late
    stamps = [(k * P + int(lag[k]), k + 1) for k in range(500)]
    assert _kernel_run(stamps) == list(range(500))
    # A 1.6-period gap from one late stamp is jitter: the seqno says one step, time agrees.
    assert _kernel_run([(0, 1), (P, 2), (int(2.6 * P), 3), (3 * P, 4)]) == [0, 1, 2, 3]


def test_kernel_counts_seqno_gaps_and_edges_that_never_came() -> None:
    # seqno 3 missing: the kernel lost the event; edge 5 never came (time gap, no seqno gap).
    stamps = [(0, 1), (P, 2), (3 * P, 4), (4 * P, 5), (6 * P, 6), (7 * P + P // 2, 7)]
    assert _kernel_run(stamps) == [0, 1, 3, 4, 6, 7]


def test_kernel_discards_a_frame_an_edge_may_have_overtaken() -> None:
    slots = KernelSlots(P)
    assert slots.place([Edge(0, 1)], [], 100, 200).slot == 0
    # Preempted around the read: edge 2 fell between the clock readings, on an unknown side.
    where = slots.place([Edge(P, 2)], [Edge(2 * P, 3)], P + 100, 2 * P + 50)
    assert where.slot is None and where.lost == 1 and [e.line_seqno for e in where.carry] == [3]
    # The edge that fell after the read is the next frame's, unharmed.
    assert slots.place(where.carry, [], 2 * P + 60, 2 * P + 90).slot == 2


def test_cadence_labels_ignore_late_callbacks() -> None:
    """RPi.GPIO: stamps late by up to several periods move neither labels nor counts."""
    rng = np.random.default_rng(2)
    slots = CadenceSlots(P)
    pairs: list[tuple[int, int]] = []
    lost = 0
    for k in range(400):
        late = rng.random() < 0.2
        lag = int(rng.uniform(0, 3 * P) if late else rng.uniform(0, 0.05 * P))
        event = Edge(k * P + lag, k + 1)
        slots.observe([event])
        began = event.timestamp_ns + 10_000  # the reader wakes on the callback
        where = slots.place([event], [], began, began + 30_000)
        lost += where.lost
        if where.slot is not None:
            pairs.append((began // P, where.slot))  # the conversion the frame really holds
    assert len(pairs) > 250
    assert len({conversion - slot for conversion, slot in pairs}) == 1, "a frame mislabelled"
    assert len(pairs) + lost == pairs[-1][1] + 1  # every slot a frame or counted


@pytest.mark.parametrize("seed", [0, 3])
def test_cadence_labels_hold_when_late_callbacks_merge_edges(seed: int) -> None:
    """RPi.GPIO's one edge-triggered poll thread: the edges that fall before a late callback
    returns make one callback more, so the callbacks fall short of the edges, for good."""
    rng = np.random.default_rng(seed)
    chip_period = float(P)
    slots = CadenceSlots(P)
    pairs: list[tuple[int, int]] = []
    lost = pending = edge = callbacks = 0
    back = 0.0  # when the poll thread is back at epoll
    while edge < 4000:
        woke = max(edge * chip_period, back)
        late = rng.random() < 0.2
        stamp = int(woke + rng.uniform(0, 3 * P) if late else woke + rng.uniform(0, 0.05 * P))
        callbacks += 1
        event = Edge(stamp, callbacks)
        back = stamp + 5_000
        # The next callback: at once for edges that fell meanwhile, else at the next edge.
        edge = max(math.floor(back / chip_period), edge + 1)
        slots.observe([event])
        began = stamp + 10_000  # the reader wakes on the callback
        where = slots.place([event], [], began, began + 30_000)
        pending += where.lost
        if where.slot is not None:  # losses count with the next frame, as in the acquisition
            lost, pending = lost + pending, 0
            pairs.append((math.floor(began / chip_period), where.slot))
    assert callbacks < 3800  # edges merged
    assert len(pairs) > 1500
    assert len({conversion - slot for conversion, slot in pairs}) == 1, "a frame mislabelled"
    assert len(pairs) + lost == pairs[-1][1] + 1  # every slot a frame or counted


def test_fault_options_load_from_the_daemon_config() -> None:
    emulator = {"drop_conversions": [3, 4], "silent_conversions": [9], "late_read_at": "after"}
    app = from_mapping(AppConfig, {"device": {"emulator": emulator}}, "")
    assert app.device.emulator.drop_conversions == (3, 4)
    assert app.device.emulator.silent_conversions == (9,)
    with pytest.raises(ConfigError, match=r"drop_conversions: -1 is not a conversion number"):
        from_mapping(AppConfig, {"device": {"emulator": {"drop_conversions": [-1]}}}, "")
    with pytest.raises(ConfigError, match=r"late_read_at: 'later' is not one of events, before"):
        from_mapping(AppConfig, {"device": {"emulator": {"late_read_at": "later"}}}, "")
