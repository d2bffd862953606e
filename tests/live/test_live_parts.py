"""The parts of live parameters, one by one: stage updates, checks, the hand-over queue, slot
numbering across a chip restart, and the in-order meta notice of a client session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from scipy import signal

from eegpi.broker.session import ClientSession
from eegpi.broker.wire import DataMessage
from eegpi.exc import ConfigError, PipelineStateError
from eegpi.hardware.config import DeviceConfig
from eegpi.hardware.ring import RawFrames
from eegpi.pipeline.live import UpdateQueue, checked_params
from eegpi.pipeline.numbering import NumberedFrames
from eegpi.pipeline.spec import parse_pipeline
from eegpi.pipeline.stage import NullPublisher, Stage, StageContext
from eegpi.pipeline.stages.convert import ToVoltage, uv_per_count
from eegpi.pipeline.stages.filters import Bandpass, Notch
from eegpi.pipeline.stages.spectral import BandPower
from eegpi.stream import Block, StreamMeta

FS = 250.0
T0 = 1_700_000_000.0
META = StreamMeta(FS, ("C1", "C2"), "uV")


def _open(stage: Stage, meta: StreamMeta = META) -> StreamMeta:
    ctx = StageContext(pipeline="p", device=DeviceConfig(backend="mock"), publisher=NullPublisher())
    return stage.open({"in": meta}, ctx)["out"]


def _blocks(x: np.ndarray[Any, Any], size: int, meta: StreamMeta = META) -> list[Block]:
    return [Block(x[i : i + size], i, T0 + i / FS, meta) for i in range(0, len(x), size)]


def _tone(n: int, hz: float, offset: float = 40.0) -> np.ndarray[Any, Any]:
    t = np.arange(n) / FS
    return np.column_stack([offset + 20 * np.sin(2 * np.pi * hz * t)] * 2)


def test_a_filter_change_goes_on_from_the_new_filters_steady_state_without_a_gap() -> None:
    stage = Bandpass("filter", Bandpass.Params(low_hz=8.0, high_hz=12.0))
    _open(stage)
    x = _tone(1000, 10.0)
    new = Bandpass.Params(low_hz=20.0, high_hz=30.0)
    out = []
    for block in _blocks(x, 7):
        if block.seq == 497:  # between two ticks
            stage.update_params(new)
            stage.params = new
        out.append(stage.process({"in": block})["out"])
    seq = np.concatenate([b.seq + np.arange(b.n_samples) for b in out])
    assert np.array_equal(seq, np.arange(1000))  # every sample, in place
    y = np.concatenate([b.data for b in out])
    # After the change: exactly the new filter started at that sample from its steady state
    # for it (no step from the 40 uV offset), as a stream's first sample starts.
    sos = signal.butter(4, [20.0, 30.0], btype="bandpass", fs=FS, output="sos")
    zi = signal.sosfilt_zi(sos)[:, :, np.newaxis] * x[497]
    expected, _ = signal.sosfilt(sos, x[497:], axis=0, zi=zi)
    np.testing.assert_allclose(y[497:], expected, atol=1e-9)
    assert np.sqrt(np.mean(y[-250:] ** 2)) < 1.0  # the 10 Hz tone is now in the stop band


def test_a_change_that_does_not_fit_the_stream_keeps_the_old_filter() -> None:
    stage = Bandpass("filter", Bandpass.Params(low_hz=8.0, high_hz=12.0))
    _open(stage)
    sos = stage.sos.copy()
    with pytest.raises(ConfigError, match="high_hz: 200 Hz must be below the Nyquist"):
        stage.update_params(Bandpass.Params(low_hz=8.0, high_hz=200.0))
    assert np.array_equal(stage.sos, sos)


def test_a_notch_switched_off_passes_the_signal_unchanged() -> None:
    stage = Notch("notch", Notch.Params(freq_hz=50.0))
    _open(stage)
    off = Notch.Params(freq_hz=50.0, enabled=False)
    stage.update_params(off)
    x = _tone(100, 50.0)
    np.testing.assert_allclose(stage.process({"in": Block(x, 0, T0, META)})["out"].data, x)


def test_new_bands_apply_from_the_next_row_with_no_gap_in_rows() -> None:
    stage = BandPower("power", BandPower.Params(window_s=1.0, step_s=0.25))
    first_meta = _open(stage)
    x = _tone(1500, 10.0)
    rows = []
    for block in _blocks(x, 25):
        if block.seq == 750:
            new = BandPower.Params(bands={"alpha": [8, 13]}, window_s=1.0, step_s=0.25)
            stage.update_params(new)
            stage.params = new
        rows.append(stage.process({"in": block})["out"])
    rows = [b for b in rows if b.n_samples]
    seq = np.concatenate([b.seq + np.arange(b.n_samples) for b in rows])
    assert np.array_equal(seq, np.arange(seq[0], seq[0] + len(seq)))
    old = [b for b in rows if b.meta is first_meta]
    new_rows = [b for b in rows if b.meta is not first_meta]
    assert old and new_rows
    assert [b.meta is first_meta for b in rows] == [True] * len(old) + [False] * len(new_rows)
    assert new_rows[0].meta.channels == ("C1:alpha", "C2:alpha")
    assert new_rows[0].data.shape[1] == 2


def test_to_voltage_scales_each_block_by_the_gain_it_was_converted_with() -> None:
    counts = StreamMeta(FS, ("C1", "C2"), "counts", {"gain": (24, 24), "vref_v": 4.5})
    stage = ToVoltage("to_voltage", ToVoltage.Params())
    _open(stage, counts)
    regained = counts.with_changes(extra={**counts.extra, "gain": (6, 24)})
    data = np.full((2, 2), 1000, dtype=np.int32)
    old = stage.process({"in": Block(data, 0, T0, counts)})["out"]
    new = stage.process({"in": Block(data, 9, T0, regained)})["out"]
    np.testing.assert_allclose(old.data[0], [1000 * uv_per_count(24, 4.5)] * 2)
    np.testing.assert_allclose(
        new.data[0], [1000 * uv_per_count(6, 4.5), 1000 * uv_per_count(24, 4.5)]
    )
    assert new.meta.extra["gain"] == (6, 24) and new.meta.units == "uV"


DOC = {
    "name": "p",
    "stages": [
        {"name": "acquire", "type": "ads1299_source", "params": {"gain": 24}},
        {
            "name": "filter",
            "type": "bandpass",
            "params": {"low_hz": 1.0, "high_hz": 40.0},
            "inputs": ["acquire"],
        },
    ],
}


def _loader_says(**params: Any) -> str:
    doc = json.loads(json.dumps(DOC))
    doc["stages"][1]["params"].update(params)
    with pytest.raises(ConfigError) as info:
        parse_pipeline(doc, "p.yaml")
    return str(info.value).removeprefix("p.yaml: ")


@pytest.mark.parametrize(
    "change", [{"high_hz": 0.5}, {"order": 9}, {"low_hz": "x"}, {"order": 2.5}, {"nope": 1}]
)
def test_a_bad_value_gets_the_message_loading_the_file_gives(change: dict[str, Any]) -> None:
    spec = parse_pipeline(DOC, "p.yaml")
    stage = spec.stages[1].instantiate()
    with pytest.raises(ConfigError) as info:
        checked_params(stage, change, "p")
    assert str(info.value) == f"pipeline 'p': {_loader_says(**change)}"


def test_a_param_that_cannot_change_live_is_refused_naming_those_that_can() -> None:
    stage = parse_pipeline(DOC, "p.yaml").stages[0].instantiate()
    with pytest.raises(PipelineStateError, match=r"'chips' cannot change .*'gain', 'input'"):
        checked_params(stage, {"chips": 2, "gain": 6}, "p")
    assert checked_params(stage, {"gain": 6}, "p").gain == 6
    assert stage.params.gain == 24  # checking changes nothing


def test_the_hand_over_queue_is_bounded_in_order_and_refuses_after_close() -> None:
    stage = parse_pipeline(DOC, "p.yaml").stages[1].instantiate()
    queue = UpdateQueue(limit=2)
    first, second = queue.submit(stage, 1), queue.submit(stage, 2)
    with pytest.raises(PipelineStateError, match="2 param changes already wait"):
        queue.submit(stage, 3)
    applied: list[Any] = []

    def run(_: Stage, params: Any) -> None:
        if params == 2:
            raise ConfigError("does not fit")
        applied.append(params)

    queue.apply(run)
    assert applied == [1] and first.result(0) is None
    with pytest.raises(ConfigError, match="does not fit"):
        second.result(0)
    third = queue.submit(stage, 4)
    queue.close("pipeline 'p' stopped")
    with pytest.raises(PipelineStateError, match="stopped"):
        third.result(0)
    with pytest.raises(PipelineStateError, match="stopped"):
        queue.submit(stage, 5)


class _Run:
    """A run's frames, as a ring would hand them out."""

    def __init__(self, seq: list[int], edge_ns: list[int]) -> None:
        self.raw = RawFrames(
            np.zeros((len(seq), 27), np.uint8), np.array(seq, np.int64), np.array(edge_ns, np.int64)
        )
        self.available = len(seq)
        self.frames_read = self.missed = self.overflowed = 0
        self.running = self.priority_set = self.nice_set = False

    def wait(self, count: int, timeout: float) -> int:
        return self.available

    def take(self, limit: int | None = None) -> RawFrames:
        raw, self.raw = (
            self.raw,
            RawFrames(np.zeros((0, 27), np.uint8), *[np.zeros(0, np.int64)] * 2),
        )
        self.available = 0
        return raw

    def hurry(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_a_restarted_run_continues_the_slots_where_its_first_edge_falls() -> None:
    period = 4_000_000  # 250 SPS
    first = NumberedFrames(_Run(list(range(10)), [k * period for k in range(10)]), 250)
    assert list(first.take().seq) == list(range(10))
    # The chip restarted: its first conversion came 7 periods after the last one (+ jitter).
    edges = [(9 + 7 + k) * period + 30_000 for k in range(3)]
    second = NumberedFrames(_Run([0, 1, 2], edges), 250, after=first)
    assert list(second.take().seq) == [16, 17, 18]  # slots 10..15 lost: a gap of 6
    third = NumberedFrames(_Run([2, 3], [(18 + 1 + k) * period for k in range(2)]), 250, second)
    assert list(third.take().seq) == [19, 20]


def test_a_meta_notice_stays_behind_older_data_and_is_never_dropped() -> None:
    class Conn:
        def __init__(self) -> None:
            self.sent: list[str | bytes] = []
            self.gate = asyncio.Event()
            self.five = asyncio.Event()

        async def send(self, message: str | bytes) -> None:
            await self.gate.wait()
            self.sent.append(message)
            if len(self.sent) >= 5:
                self.five.set()

        async def close(self, code: int = 1000, reason: str = "") -> None:
            pass

    async def scenario() -> list[Any]:
        conn = Conn()
        session = ClientSession(conn, "peer", queue_limit=3, stall_timeout_s=60.0)  # type: ignore[arg-type]
        sender = asyncio.create_task(session.run_sender())
        for n in range(2):
            session.deliver(DataMessage("t", f'{{"old": {n}}}', 1))
        session.notify_in_order("t", {"topic": "t", "meta": {"gain": [6]}})
        for n in range(4):  # the queue holds 3: the old data goes first, the notice stays
            session.deliver(DataMessage("t", f'{{"new": {n}}}', 1))
        conn.gate.set()
        await asyncio.wait_for(conn.five.wait(), 30)
        sender.cancel()
        return [json.loads(m) for m in conn.sent]

    sent = asyncio.run(scenario())
    kinds = [next(iter(m)) for m in sent]
    assert kinds.index("topic") < kinds.index("new")
    assert "old" not in kinds[kinds.index("topic") :]
    assert {"lagged": 3, "samples": 3} in sent  # two old and one new were dropped, counted
