"""Markers from hardware: the trigger input and the chip's GPIO bits, on the emulator.

The emulated stimulus pulses at chosen conversions' true times and the emulated chip changes
its GPIO inputs at chosen conversions (``emulator.trigger_at``, ``emulator.gpio_at``), and
``stamp_index`` puts each conversion's index in channel 1; so a test knows which sample each
marker must land on from the chip's own timing, never from the sample clock under test.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hw_helpers import context, mock_config

from eegpi.ads1299.settings import chain_settings
from eegpi.exc import ConfigError
from eegpi.hardware.acquisition import Acquisition
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.native.build import build_library, compiler
from eegpi.hardware.native.library import ENV_LIBRARY
from eegpi.hardware.ring import RawFrames
from eegpi.hardware.trigger import (
    TriggerBatch,
    TriggerEdge,
    TriggerReader,
    TriggerSpec,
    open_device_and_board,
    request_trigger,
)
from eegpi.pipeline.clock import SampleClock
from eegpi.pipeline.hardware_markers import PENDING_EDGES, HardwareMarkers
from eegpi.pipeline.registry import lookup
from eegpi.pipeline.spec import build_params
from eegpi.pipeline.stages.source import Ads1299Source, Ads1299SourceParams
from eegpi.stream import Block, Marker

RATE = 250


# --- params ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ("5", "is not a mapping"),
        ({"edge": "rising"}, "pin is required"),
        ({"pin": 5, "edges": "both"}, "unknown key(s) edges; allowed: pin, edge, label, bias"),
        ({"pin": "GPIO5"}, "'GPIO5' is not a BCM GPIO number"),
        ({"pin": 28}, "28 is not a header GPIO (BCM 0-27)"),
        ({"pin": True}, "is not a BCM GPIO number"),
        ({"pin": 5, "edge": "up"}, "'up' is not one of rising, falling, both"),
        ({"pin": 5, "bias": "pulled"}, "'pulled' is not one of down, up, none"),
        ({"pin": 5, "label": ""}, "label: a marker label must be non-empty"),
        ({"pin": 5, "label": "x" * 129}, "at most 128 characters"),
        ({"pin": 5, "label": "x" * 125, "edge": "both"}, "at most 128 characters"),
        ({"pin": 5, "label": 7}, "is not a string"),
    ],
)
def test_bad_trigger_params_say_what_is_wrong(trigger: Any, message: str) -> None:
    cls = lookup("ads1299_source")
    with pytest.raises(ConfigError) as err:
        build_params(cls, {"trigger": trigger}, "stage 'acquire'")
    assert "param 'trigger'" in str(err.value) and message in str(err.value)


def test_gpio_markers_is_a_boolean() -> None:
    cls = lookup("ads1299_source")
    with pytest.raises(ConfigError, match="param 'gpio_markers': expected bool"):
        build_params(cls, {"gpio_markers": "yes"}, "stage 'acquire'")
    params = build_params(cls, {"gpio_markers": True, "trigger": {"pin": 5}}, "s")
    assert params.gpio_markers is True
    assert params.trigger == TriggerSpec(pin=5, edge="rising", label="trigger", bias="down")


@pytest.mark.parametrize(
    ("device", "pin", "what"),
    [
        (DeviceConfig(), 26, "GPIO26 is the board's DRDY line on device.board pieeg"),
        (DeviceConfig(), 8, "GPIO8 is the chip-select of /dev/spidev0.0"),
        (DeviceConfig(), 10, "GPIO10 is SPI0 MOSI"),
        (DeviceConfig(board="pieeg16"), 19, "GPIO19 is the board's chip 2's chip-select line"),
        (DeviceConfig(board="pieeg16"), 13, "GPIO13 is the board's chip 2's DRDY line"),
        (DeviceConfig(start_pin=22), 22, "GPIO22 is the board's START line (device.start_pin)"),
        (DeviceConfig(spi_bus=1, spi_device=0), 20, "GPIO20 is SPI1 MOSI"),
    ],
)
def test_a_trigger_on_a_pin_the_board_uses_is_refused(
    device: DeviceConfig, pin: int, what: str
) -> None:
    with pytest.raises(ValueError, match="wire the trigger to a free header GPIO") as err:
        device.check_trigger_pin(pin)
    assert what in str(err.value)
    device.check_trigger_pin(5)  # free on every board above


def test_the_source_refuses_a_busy_pin_when_it_opens() -> None:
    src = Ads1299Source("acquire", Ads1299SourceParams(trigger={"pin": 26}))
    try:
        with pytest.raises(ConfigError, match=r"'acquire': trigger\.pin: GPIO26 is the board"):
            src.open({}, context(mock_config()))
    finally:
        src.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trigger_at": (-1,)}, "emulator.trigger_at: -1 is not a conversion number"),
        ({"trigger_pulse_us": 0}, "emulator.trigger_pulse_us: 0 is not a number"),
        ({"trigger_latency_us": -5.0}, "emulator.trigger_latency_us: -5.0 is not"),
        ({"trigger_pin": 40}, "emulator.trigger_pin: 40 is not a header GPIO"),
        ({"gpio_at": {10: 16}}, "emulator.gpio_at: 10: 16 is not 0..15"),
        ({"gpio_at": {-3: 1}}, "emulator.gpio_at: -3 is not a conversion number"),
        ({"gpio_at": [1, 2]}, "emulator.gpio_at: [1, 2] is not a mapping"),
    ],
)
def test_bad_emulator_schedules_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        EmulatorConfig(**options)


def test_the_emulated_stimulus_cannot_sit_on_a_board_pin() -> None:
    from eegpi.emulator import Board

    with pytest.raises(ValueError, match=r"emulator\.trigger_pin: GPIO26 is one of the board's"):
        Board(trigger_pin=26)


# --- the emulated trigger line ----------------------------------------------------------------


def _settings(rate: int = RATE) -> Any:
    return chain_settings(
        sample_rate=rate, gain=24, input="normal", srb2=False, chips=1, channels_per_chip=8
    )


class _Collector:
    """Batches from a trigger reader; the first ``emit`` can be held to let the buffer fill."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[TriggerBatch] = []
        self.first = threading.Event()
        self.release = threading.Event()
        self.changed = threading.Condition()
        if not hold_first:
            self.release.set()

    def __call__(self, batch: TriggerBatch) -> None:
        self.first.set()
        self.release.wait(30)
        with self.changed:
            self.batches.append(batch)
            self.changed.notify_all()

    def wait_for(self, edges: int, timeout: float = 30.0) -> None:
        with self.changed:
            done = self.changed.wait_for(lambda: self.received >= edges, timeout)
        assert done, f"only {self.received} trigger edge(s) of {edges} arrived"

    @property
    def received(self) -> int:
        return sum(len(b.edges) + b.lost for b in self.batches)


@pytest.fixture
def thread_board() -> Iterator[list[Any]]:
    """Devices and readers a test opens; always stopped and closed."""
    opened: list[Any] = []
    yield opened
    for thing in reversed(opened):
        if isinstance(thing, TriggerReader | Acquisition):
            thing.stop()
        else:
            thing.close()


def _take_until(acq: Acquisition, conversion: int) -> list[RawFrames]:
    parts: list[RawFrames] = []
    while not parts or len(parts[-1]) == 0 or int(parts[-1].seq[-1]) <= conversion:
        assert acq.wait(1, 10.0) >= 1, "no frames"
        parts.append(acq.take())
    return parts


def test_trigger_edges_carry_the_stamp_of_their_conversions_drdy(
    thread_board: list[Any],
) -> None:
    """With no interrupt latency, a pulse at conversion K is stamped exactly as K's DRDY
    edge is (plus the configured stimulus latency), both edges when both are asked for."""
    at, latency_us, pulse_us = (40, 95), 300.0, 1500.0
    cfg = mock_config(trigger_at=at, trigger_latency_us=latency_us, trigger_pulse_us=pulse_us)
    device, board = open_device_and_board(cfg, 1)
    thread_board.append(device)
    device.configure(_settings())
    got = _Collector()
    request = request_trigger(cfg, TriggerSpec(pin=6, edge="both"), board)
    reader = TriggerReader(request, got, "GPIO6")
    thread_board.append(reader)
    acq = Acquisition(device, RATE, lossless=True)
    thread_board.append(acq)
    acq.start()
    reader.start()
    parts = _take_until(acq, 100)
    got.wait_for(4)
    seq = np.concatenate([p.seq for p in parts])
    edge_ns = np.concatenate([p.edge_ns for p in parts])
    drdy = {int(s): int(t) for s, t in zip(seq, edge_ns, strict=True)}
    edges = [e for b in got.batches for e in b.edges]
    assert sum(b.lost for b in got.batches) == 0
    assert [e.rising for e in edges] == [True, False, True, False]
    for k, (rise, fall) in zip(at, zip(edges[::2], edges[1::2], strict=True), strict=True):
        assert abs(rise.timestamp_ns - (drdy[k] + latency_us * 1000)) <= 1
        assert abs(fall.timestamp_ns - rise.timestamp_ns - pulse_us * 1000) <= 1
    assert board.wiring.stimulus is not None and board.wiring.stimulus.pin == 6


def test_edges_a_full_kernel_buffer_drops_are_counted_exactly(thread_board: list[Any]) -> None:
    """20 pulses, a buffer of 2 and a reader held after its first batch: every pulse is either
    delivered or counted lost (from the line_seqno gap), and the held stretch loses some."""
    pulses = tuple(range(20, 60, 2))
    cfg = mock_config(trigger_at=pulses, trigger_pulse_us=500.0)
    device, board = open_device_and_board(cfg, 1)
    thread_board.append(device)
    device.configure(_settings())
    got = _Collector(hold_first=True)
    spec = TriggerSpec(pin=6, edge="rising", event_buffer_size=2)
    reader = TriggerReader(request_trigger(cfg, spec, board), got, "GPIO6")
    thread_board.append(reader)
    acq = Acquisition(device, RATE, lossless=True)
    thread_board.append(acq)
    acq.start()
    reader.start()
    assert got.first.wait(30), "no trigger edge arrived"
    _take_until(acq, pulses[-1] + 2)  # every pulse has fallen while the reader is held
    got.release.set()
    got.wait_for(len(pulses))
    delivered = sum(len(b.edges) for b in got.batches)
    lost = sum(b.lost for b in got.batches)
    assert delivered + lost == len(pulses)
    assert lost >= len(pulses) - 2 - 2  # at most one buffer before the hold, one after
    assert reader.edges == delivered and reader.lost == lost


# --- the source: markers on their samples -----------------------------------------------------


@pytest.fixture(scope="module")
def native_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if compiler() is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build the native reader")
    return build_library(tmp_path_factory.mktemp("native"))


def _run_source(
    cfg: DeviceConfig, until: int, want_markers: int = 0, **params: Any
) -> tuple[list[Block], list[Marker]]:
    """Blocks past slot ``until``, and on until ``want_markers`` markers came: trigger edges
    travel from the acquisition process on a pipe of their own, and in virtual time the
    samples may run far ahead of them on a busy host (at most 60 s of signal more)."""
    markers: list[Marker] = []
    lock = threading.Lock()

    def take(found: Any) -> None:
        with lock:
            markers.extend(found)

    src = Ads1299Source("acquire", Ads1299SourceParams(sample_rate=RATE, **params))
    blocks: list[Block] = []
    try:
        src.open({}, dataclasses.replace(context(cfg), markers=take))
        src.start()

        def more() -> bool:
            if not blocks or blocks[-1].end_seq <= until:
                return True
            with lock:
                missing = len(markers) < want_markers
            return missing and blocks[-1].end_seq <= until + 60 * RATE

        while more():
            block = src.read(10.0)
            assert block is not None, "no data"
            blocks.append(block)
    finally:
        src.close()
    return blocks, markers


@pytest.mark.parametrize(
    ("acquisition", "reader", "realtime"),
    [
        ("thread", "python", False),
        ("process", "python", False),
        ("process", "native", False),
        ("process", "python", True),
    ],
)
def test_trigger_and_gpio_markers_land_on_their_conversions(
    acquisition: str, reader: str, realtime: bool, request: pytest.FixtureRequest
) -> None:
    if reader == "native":
        lib = request.getfixturevalue("native_lib")
        request.getfixturevalue("monkeypatch").setenv(ENV_LIBRARY, str(lib))
    trigger_at = (60, 130)
    # 256 is the emulator's chunk boundary: a change there and one just before it
    gpio_at = {100: 0b0101, 255: 0b1101, 256: 0b0011, 300: 0}
    cfg = dataclasses.replace(
        mock_config(
            realtime=realtime,
            acquisition=acquisition,  # type: ignore[arg-type]
            stamp_index=True,
            trigger_at=trigger_at,
            gpio_at=gpio_at,
            drdy_jitter_us=50.0,
        ),
        reader=reader,  # type: ignore[arg-type]
    )
    blocks, markers = _run_source(
        cfg,
        320,
        want_markers=len(trigger_at) + len(gpio_at),
        trigger={"pin": 5, "label": "stim"},
        gpio_markers=True,
    )
    conversion = {int(b.seq + k): int(b.data[k, 0]) for b in blocks for k in range(b.n_samples)}
    assert all(conversion[s] == s for s in conversion), "stamp_index and seq disagree"
    trig = sorted((m.seq, m.label) for m in markers if m.source == "trigger")
    assert trig == [(k, "stim") for k in trigger_at]
    gpio = sorted((m.seq, m.label) for m in markers if m.source == "chip_gpio")
    assert gpio == [(k, f"gpio:{levels:04b}") for k, levels in gpio_at.items()]
    times = {int(b.seq + k): b.timestamp + k / RATE for b in blocks for k in range(b.n_samples)}
    for m in markers:
        assert abs(m.timestamp - times[m.seq]) < 1.0 / RATE / 2, m


# --- the daemon-side queue ----------------------------------------------------------------------


def test_edges_the_queue_refuses_or_the_run_cannot_hold_are_counted_exactly() -> None:
    """Edges beyond the pending bound, edges before the run's first conversion and edges
    still waiting at a stop are each counted once; the rest land on their samples."""
    period_ns = 1_000_000_000 // RATE
    clock = SampleClock(RATE)
    clock.reset(1_700_000_000 * 10**9)
    markers: list[Marker] = []
    hw = HardwareMarkers(clock, TriggerSpec(pin=5, label="stim"), gpio=False)
    hw.attach(markers.extend, "test")
    hw.begin()
    hw.set_offset(1_700_000_000 * 10**9)
    seq = np.arange(100)
    clock.update(seq, 5 * period_ns + seq * period_ns)  # conversion 0's DRDY fell at 5 periods
    at = [TriggerEdge(5 * period_ns + k * period_ns, True) for k in (3, 40)]
    early = TriggerEdge(period_ns, True)  # four periods before conversion 0
    flood = [TriggerEdge(5 * period_ns + 50 * period_ns, True)] * (PENDING_EDGES - 3)
    hw.on_trigger(TriggerBatch((*at, early, *flood), lost=2))
    hw.on_trigger(TriggerBatch(tuple(flood[:7])))  # the queue is full: all 7 refused
    status = np.full((100, 1), 0xC00000, np.uint32)
    hw.tick(seq, status, np.ones(100, bool))
    assert hw.trigger_lost == 2 + 7 + 1
    assert hw.trigger_markers == len(markers) == 2 + PENDING_EDGES - 3
    assert sorted({(m.seq, m.label, m.source) for m in markers}) == [
        (3, "stim", "trigger"),
        (40, "stim", "trigger"),
        (50, "stim", "trigger"),
    ]
    hw.on_trigger(TriggerBatch(tuple(flood[:4])))
    hw.stop()  # no tick took them
    assert hw.trigger_lost == 2 + 7 + 1 + 4 and hw.trigger_markers == len(markers)


def test_gpio_markers_mark_each_change_once_and_not_the_first_frame() -> None:
    clock = SampleClock(RATE)
    clock.reset(0)
    markers: list[Marker] = []
    hw = HardwareMarkers(clock, None, gpio=True)
    hw.attach(markers.extend, "test")
    hw.begin()
    period_ns = 1_000_000_000 // RATE
    levels = np.array([3, 3, 3, 1, 1, 9, 9, 9, 0, 0], np.uint32)
    valid = np.ones(10, bool)
    valid[5] = False  # a torn frame says nothing about the pins
    for part in (slice(0, 4), slice(4, 10)):  # a change at a tick boundary counts once
        seq = np.arange(10)[part] + 100
        clock.update(seq, seq * period_ns)
        hw.tick(seq, (0xC00000 | levels[part])[:, None], valid[part])
    assert [(m.seq, m.label, m.source) for m in markers] == [
        (103, "gpio:0001", "chip_gpio"),
        (106, "gpio:1001", "chip_gpio"),
        (108, "gpio:0000", "chip_gpio"),
    ]
    assert hw.gpio_markers == 3


def test_a_paused_reader_keeps_the_line_and_the_next_reads_what_fell_meanwhile(
    thread_board: list[Any],
) -> None:
    """Between two runs (new chip settings) the trigger line stays requested: the kernel queues
    the edges that fall while no reader reads, and the next reader hands them on with their own
    stamps, its ``line_seqno`` count continuing (nothing counted lost that was not)."""
    pulses = (20, 50, 80, 110)
    cfg = mock_config(trigger_at=pulses, trigger_pulse_us=500.0)
    device, board = open_device_and_board(cfg, 1)
    thread_board.append(device)
    device.configure(_settings())
    spec = TriggerSpec(pin=6, edge="rising")
    first, second = _Collector(), _Collector()
    reader = TriggerReader(request_trigger(cfg, spec, board), first, "GPIO6")
    # A small lossless ring: in virtual time the chip runs at most 8 conversions ahead of
    # what the test took, so it decides which pulses fall while the line is not read.
    acq = Acquisition(device, RATE, lossless=True, capacity=8)
    thread_board.append(acq)
    acq.start()
    reader.start()
    parts = _take_until(acq, 30)
    first.wait_for(1)
    held = reader.pause(spec)
    assert held.spec == spec and held.last_seqno == 1
    parts += _take_until(acq, pulses[-1] + 2)  # three pulses fall while nobody reads the line
    resumed = TriggerReader(held.request, second, "GPIO6", after=held)
    thread_board.append(resumed)
    resumed.start()
    second.wait_for(3)
    seq = np.concatenate([p.seq for p in parts])
    edge_ns = np.concatenate([p.edge_ns for p in parts])
    drdy = {int(s): int(t) for s, t in zip(seq, edge_ns, strict=True)}
    stamps = [e.timestamp_ns for b in first.batches + second.batches for e in b.edges]
    assert len(stamps) == len(pulses)
    assert all(abs(t - drdy[k]) <= 1 for t, k in zip(stamps, pulses, strict=True))
    assert sum(b.lost for b in first.batches + second.batches) == 0
    assert resumed.edges == 3 and resumed.lost == 0


def test_new_chip_settings_keep_the_trigger_line_of_the_acquisition_process() -> None:
    """A gain change restarts conversions in the acquisition process; its trigger line stays
    requested across the restart, and the pulses of both runs land with none counted lost."""
    trigger_at = (40, 90)
    cfg = mock_config(acquisition="process", stamp_index=True, trigger_at=trigger_at)
    markers: list[Marker] = []
    lock = threading.Lock()

    def take(found: Any) -> None:
        with lock:
            markers.extend(found)

    src = Ads1299Source(
        "acquire", Ads1299SourceParams(sample_rate=RATE, trigger={"pin": 5, "label": "stim"})
    )
    blocks: list[Block] = []
    try:
        src.open({}, dataclasses.replace(context(cfg), markers=take))
        src.start()

        def read_until(slot: int, want: int) -> None:
            deadline = slot + 60 * RATE  # samples may run ahead of the edges' pipe
            while not blocks or blocks[-1].end_seq <= slot or len(markers) < want:
                assert not blocks or blocks[-1].end_seq <= deadline, f"{len(markers)} markers"
                block = src.read(10.0)
                assert block is not None, "no data"
                blocks.append(block)

        read_until(120, len(trigger_at))
        src.update_params(dataclasses.replace(src.params, gain=12))
        restart = blocks[-1].end_seq
        read_until(restart + 150, 2 * len(trigger_at))
    finally:
        src.close()
    stim = [m for m in markers if m.source == "trigger"]
    assert len(stim) == 2 * len(trigger_at)
    assert src.markers.trigger_lost == 0
    before = sorted(m.seq for m in stim)[: len(trigger_at)]
    assert before == list(trigger_at)


def test_the_emulated_kernel_queues_a_runs_edges_that_nobody_read_before_it_ended(
    thread_board: list[Any],
) -> None:
    """As a kernel queues an edge in its interrupt, the emulated trigger line keeps the edges of
    a run that gave way to the next (new chip settings) before anyone read them: a reader
    that reads only after the restart gets them, with their stamps and seqnos, then the new
    run's own."""
    pulses = (20, 30)
    cfg = mock_config(trigger_at=pulses, trigger_pulse_us=500.0)
    device, board = open_device_and_board(cfg, 1)
    thread_board.append(device)
    device.configure(_settings())
    request = request_trigger(cfg, TriggerSpec(pin=6, edge="rising"), board)
    acq = Acquisition(device, RATE, lossless=True, capacity=8)
    acq.start()
    parts = _take_until(acq, 40)  # both pulses have fallen; nobody has read the line
    acq.stop()
    seq = np.concatenate([p.seq for p in parts])
    edge_ns = np.concatenate([p.edge_ns for p in parts])
    drdy = {int(s): int(t) for s, t in zip(seq, edge_ns, strict=True)}
    device.configure(_settings())  # new settings: the chip stops and starts a new run
    second = Acquisition(device, RATE, lossless=True, capacity=8)
    thread_board.append(second)
    second.start()
    _take_until(second, 40)  # the new run's pulses fall too
    events = request.read_edge_events()
    request.release()
    assert [int(e.line_seqno) for e in events] == [1, 2, 3, 4]
    old = [int(e.timestamp_ns) for e in events[:2]]
    assert all(abs(t - drdy[k]) <= 1 for t, k in zip(old, pulses, strict=True))
    assert all(int(e.timestamp_ns) > max(old) for e in events[2:])
