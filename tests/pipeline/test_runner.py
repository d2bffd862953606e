"""The runner on the emulated chip: blocks flow, a failing stage is named, plug-ins load,
the final counters outlive the stop."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from eegpi.exc import ConfigError
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.pipeline import registry
from eegpi.pipeline.runner import PipelineRunner
from eegpi.pipeline.spec import parse_pipeline
from eegpi.pipeline.stage import Stage, StageContext
from eegpi.stream import Block, StreamMeta

VIRTUAL = DeviceConfig(
    backend="mock", acquisition="thread", emulator=EmulatorConfig(realtime=False)
)


class RecordingPublisher:
    """Collects what sinks publish; wakes the test once enough samples arrived."""

    def __init__(self, want: int) -> None:
        self.want = want
        self.blocks: dict[str, list[Block]] = {}
        self.declared: dict[str, StreamMeta] = {}
        self.retracted: list[str] = []
        self.flushes = 0
        self.ops: list[str] = []
        self.enough = threading.Event()

    def declare(self, topic: str, meta: StreamMeta) -> None:
        self.declared[topic] = meta

    def publish(self, topic: str, block: Block) -> None:
        self.ops.append(topic)
        self.blocks.setdefault(topic, []).append(block)
        if sum(b.n_samples for b in self.blocks[topic]) >= self.want:
            self.enough.set()

    def retract(self, topic: str) -> None:
        self.retracted.append(topic)

    def flush(self) -> None:
        self.ops.append("|")
        self.flushes += 1

    watching: Mapping[str, float] | None = None
    """Topics a client subscribes to, with its ``max_latency_ms``; None: every topic, with no
    latency to spare (as outside the daemon)."""

    def patience_ms(self, topic: str) -> float | None:
        return 0.0 if self.watching is None else self.watching.get(topic)

    hurry: Callable[[], None] | None = None
    """The runner's hurry callback while it runs (what the hub would call)."""

    def on_hurry(self, callback: Callable[[], None]) -> Callable[[], None]:
        self.hurry = callback

        def cancel() -> None:
            self.hurry = None

        return cancel


@dataclass(frozen=True)
class BoomParams:
    after: int = 0
    """Fail once this many samples went through."""
    hold_close: bool = False
    """Closing waits for ``Boom.release`` (after setting ``Boom.closing``)."""


class Boom(Stage):
    """Passes blocks through, then raises: a stand-in for a buggy third-party stage."""

    type_name = "test_boom"
    Params = BoomParams

    def __init__(self, name: str, params: BoomParams) -> None:
        super().__init__(name, params)
        self.seen = 0

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        return {"out": inputs["in"]}

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        self.seen += inputs["in"].n_samples
        if self.seen > self.params.after:
            raise ValueError(f"boom at sample {self.seen}")
        return {"out": inputs["in"]}

    closing = threading.Event()
    release = threading.Event()

    def close(self) -> None:
        if self.params.hold_close:
            Boom.closing.set()
            assert Boom.release.wait(30), "the test never released close()"


@pytest.fixture
def boom_registered() -> Iterator[None]:
    registry.register(Boom)
    try:
        yield
    finally:
        registry._registry.pop("test_boom", None)


def _spec(extra_stage: str = "", **extra_params: object) -> dict:  # type: ignore[type-arg]
    stages = [
        {"name": "acquire", "type": "ads1299_source", "params": {"sample_rate": 250}},
        {"name": "uv", "type": "to_voltage", "inputs": ["acquire"]},
        {"name": "lp", "type": "lowpass", "params": {"cutoff_hz": 40.0}, "inputs": ["uv"]},
        {"name": "raw", "type": "websocket_sink", "params": {"topic": "raw"}, "inputs": ["uv"]},
        {"name": "low", "type": "websocket_sink", "params": {"topic": "low"}, "inputs": ["lp"]},
    ]
    if extra_stage:
        stages.append(
            {
                "name": "bad",
                "type": extra_stage,
                "params": {"after": 50, **extra_params},
                "inputs": ["uv"],
            }
        )
    return {"name": "t", "stages": stages}


def run_until_enough(
    pub: RecordingPublisher, timeout: float = 30, device: DeviceConfig = VIRTUAL
) -> PipelineRunner:
    """Run ``_spec()`` on ``device`` until ``pub`` has what it wants; returns the stopped runner."""
    runner = PipelineRunner(parse_pipeline(_spec()), StageContext("t", device, pub))
    runner.open()
    runner.start()
    try:
        assert pub.enough.wait(timeout), "no data reached the sinks"
    finally:
        runner.stop()
    return runner


def test_blocks_flow_through_the_dag_with_fan_out() -> None:
    pub = RecordingPublisher(want=1000)
    runner = run_until_enough(pub)
    assert set(pub.declared) == {"raw", "low"} and pub.declared["low"].units == "uV"
    for topic in ("raw", "low"):
        blocks = pub.blocks[topic]
        assert all(b.seq == a.end_seq for a, b in itertools.pairwise(blocks))
    # fan-out hands the very same read-only block to both consumers of `uv`
    assert not pub.blocks["raw"][0].data.flags.writeable
    assert sorted(pub.retracted) == ["low", "raw"]
    snap = runner.snapshot()
    assert snap.error == "" and snap.stats.samples_acquired >= 1000
    assert snap.stats.samples_dropped == 0


def test_the_publisher_is_flushed_once_per_tick_after_every_sink_published() -> None:
    pub = RecordingPublisher(want=300)
    run_until_enough(pub)
    ticks = "".join(op if op == "|" else op[0] for op in pub.ops).split("|")
    assert ticks[-1] == "", "something was published after the last flush"
    # one flush per tick, and each tick published both topics before it
    assert all(sorted(tick) == ["l", "r"] for tick in ticks[:-1]), ticks[:5]
    assert pub.flushes == len(pub.blocks["raw"]) == len(pub.blocks["low"])


def test_a_failing_stage_is_named_and_everything_is_closed(boom_registered: None) -> None:
    pub = RecordingPublisher(want=10**9)
    ended = threading.Event()
    runner = PipelineRunner(
        parse_pipeline(_spec("test_boom")), StageContext("t", VIRTUAL, pub), on_change=ended.set
    )
    runner.open()
    runner.start()
    assert ended.wait(30), "the failure was not reported"
    snap = runner.snapshot()
    assert not snap.running
    assert "stage 'bad' (test_boom) failed: ValueError: boom at sample" in snap.error
    assert sorted(pub.retracted) == ["low", "raw"]  # sinks closed: subscribers are told
    runner.stop()  # idempotent after a failure


def test_stop_returns_only_once_a_failing_thread_has_closed_everything(
    boom_registered: None,
) -> None:
    Boom.closing.clear()
    Boom.release.clear()
    pub = RecordingPublisher(want=10**9)
    runner = PipelineRunner(
        parse_pipeline(_spec("test_boom", hold_close=True)), StageContext("t", VIRTUAL, pub)
    )
    runner.open()
    runner.start()
    assert Boom.closing.wait(30), "the failing thread never closed its stages"
    stopped = threading.Event()

    def stop() -> None:
        runner.stop(timeout=0.1)  # the thread is still closing: join gives up at once
        stopped.set()

    stopper = threading.Thread(target=stop)
    stopper.start()
    try:
        assert not stopped.wait(0.5), "stop() returned while a stage was still closing"
    finally:
        Boom.release.set()
        stopper.join(30)
    assert stopped.is_set() and "boom" in runner.snapshot().error


def test_final_counters_outlive_the_stop_in_process_mode() -> None:
    """The acquisition process's ring holds the counters and goes at close: they are kept."""
    device = DeviceConfig(
        backend="mock",
        acquisition="process",
        emulator=EmulatorConfig(realtime=False, corrupt_every=10),
    )
    pub = RecordingPublisher(want=2000)
    runner = PipelineRunner(parse_pipeline(_spec()), StageContext("t", device, pub))
    runner.open()
    runner.start()
    try:
        assert pub.enough.wait(60), "no data reached the sinks"
        running = runner.snapshot().stats
    finally:
        runner.stop()
    final = runner.snapshot().stats
    assert final.samples_acquired >= running.samples_acquired >= 2000
    assert final.samples_dropped >= running.samples_dropped > 0
    assert runner.snapshot().stats == final  # kept


def test_open_failure_closes_what_was_opened() -> None:
    doc = _spec()
    doc["stages"][2]["params"] = {"cutoff_hz": 200.0}  # above Nyquist at 250 SPS
    pub = RecordingPublisher(want=1)
    runner = PipelineRunner(parse_pipeline(doc), StageContext("t", VIRTUAL, pub))
    with pytest.raises(ConfigError, match=r"stage 'lp' \(lowpass\).*cutoff_hz"):
        runner.open()
    source = runner.source
    assert source is not None and getattr(source, "device", "open") is None  # device released


def test_third_party_stage_from_an_entry_point(tmp_path: Path) -> None:
    # a tiny installed distribution: a module and its entry point in the eegpi.stages group
    (tmp_path / "eegpi_plugin_demo.py").write_text(
        "from eegpi.pipeline.stages.convert import ToVoltage\n"
        "class Scaled(ToVoltage):\n"
        "    type_name = 'demo_scaled'\n"
    )
    info = tmp_path / "eegpi_plugin_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: eegpi-plugin-demo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[eegpi.stages]\ndemo_scaled = eegpi_plugin_demo:Scaled\n"
        "broken = eegpi_plugin_demo:DoesNotExist\n"
    )
    sys.path.insert(0, str(tmp_path))
    saved = dict(registry._registry)
    registry._loaded = False
    try:
        assert "demo_scaled" in registry.available()  # the broken one is logged, not fatal
        doc = _spec()
        doc["stages"][1]["type"] = "demo_scaled"
        spec = parse_pipeline(doc)
        assert spec.stages[1].type_name == "demo_scaled"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("eegpi_plugin_demo", None)
        registry._registry.clear()
        registry._registry.update(saved)
        registry._loaded = True
