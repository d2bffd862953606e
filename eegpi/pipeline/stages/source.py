"""The ``ads1299_source`` stage: configures the chip from its params and reads its samples.

``read`` hands out blocks of int32 counts (samples x channels). A block never spans a gap: a
missed DRDY, a frame dropped from a full ring or a frame failing the status-word check makes
the next block's ``seq`` jump. The pipeline ticks at a cadence, not per sample: ``read`` waits
until the frames that arrived span ``tick_ms`` (3 samples at 250 SPS, 129 at 16 kSPS with the
default 8 ms), so the cost of a tick is spread over several samples while no sample waits more
than ``tick_ms`` for it. ``tick_ms: 0`` runs the pipeline on every frame (closed-loop uses).

Timestamps come from the sample clock (:mod:`eegpi.pipeline.clock`): a block's ``timestamp``
is the fitted time of its first sample, not that sample's DRDY stamp, so the stamps' interrupt
jitter is gone and the crystal's drift is followed; :meth:`Ads1299Source.seq_time` and
:meth:`Ads1299Source.seq_at` map samples and times both ways for events (markers). A backlog
is handed on in blocks of at most ``_MAX_BLOCK_S`` (or two ticks), so samples inside a block,
at the nominal rate from its timestamp, stay within a few microseconds of the clock.

Counters (:meth:`Ads1299Source.stats`), kept by the stage itself so they survive stop and
close: ``samples_acquired`` is the samples handed downstream by ``read``; ``samples_dropped``
the conversions lost for any reason before the newest slot the stage has dealt with (missed
DRDY, ring overflow, frames failing the status check: every ``seq`` gap a client sees, plus
failed frames at the end). So ``acquired + dropped == newest slot + 1`` at every moment;
frames still in the ring at a stop belong to no one and are not counted.

``gain`` and ``input`` may change while the stage runs (``live_params``): between two ticks the
stage stops the chip, hands on the frames already read (converted with the old settings, so with
the old meta), writes the registers through the driver as at the start, and starts the chip
again. The conversions lost meanwhile show as a ``seq`` gap and count as dropped
(:mod:`eegpi.pipeline.numbering`); blocks from the restart on carry the new meta (``gain``,
``input``), so ``to_voltage`` scales each by the gain it was converted with. Register writes
the chip does not take leave the old settings in force and refuse the change.

With ``device.acquisition: process`` (the default) the chip is opened, configured and read by
the acquisition process (:mod:`eegpi.hardware.process`) and this stage only reads its
shared-memory ring; with ``thread`` it drives the driver and an acquisition thread itself.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eegpi.ads1299.frames import decode_frames
from eegpi.ads1299.registers import DataRate
from eegpi.ads1299.settings import (
    INPUTS,
    VREF_V,
    ChipSettings,
    LeadOffSettings,
    TestSignal,
    chain_settings,
)
from eegpi.exc import ConfigError, HardwareError, PipelineStateError
from eegpi.hardware import open_device
from eegpi.hardware.acquisition import Acquisition, FrameSource
from eegpi.hardware.config import DeviceConfig
from eegpi.hardware.driver import Ads1299, DeviceSnapshot, device_report
from eegpi.hardware.process import AcquisitionProcess
from eegpi.hardware.trigger import (
    TriggerReader,
    TriggerSpec,
    open_device_and_board,
    request_trigger,
    trigger_spec,
)
from eegpi.impedance.tap import SOURCE_KEY, ImpedanceTap
from eegpi.pipeline.clock import ClockLine, SampleClock
from eegpi.pipeline.hardware_markers import HardwareMarkers
from eegpi.pipeline.labels import check_channel_name, check_unique
from eegpi.pipeline.markers import check_label
from eegpi.pipeline.numbering import NumberedFrames
from eegpi.pipeline.registry import register
from eegpi.pipeline.stage import SourceStage, SourceStats, StageContext
from eegpi.safe_yaml import short_repr
from eegpi.status import AcquisitionReport, DeviceReport
from eegpi.stream import Block, StreamMeta

__all__ = ["Ads1299Source", "Ads1299SourceParams"]

TICK_MS_DEFAULT = 8.0
"""Default ``tick_ms``: below the broker's default 10 ms batching latency, so a message still
leaves with its oldest sample under 10 ms old."""
TICK_MS_MAX = 50.0
IDLE_TICK_MS_DEFAULT = 100.0
"""Default ``idle_tick_ms``: ten wake-ups a second for a pipeline nobody watches."""
IDLE_TICK_MS_MAX = 1000.0
PATIENCE_MARGIN_MS = 2.0
"""A tick ends this long before the most demanding subscriber's deadline (``max_latency_ms``
from its oldest sample): time to run the pipeline and hand the block over. It makes the
default ``tick_ms``, 8, from the broker's default 10 ms."""
_TICK_MARGIN_S = 0.002
"""Extra wait for a tick's last frame before running on what arrived (a conversion was lost)."""
_MAX_BLOCK_S = 0.02
"""A backlog (the pipeline fell behind) is handed on in blocks of at most two ticks or this
long, whichever is more: samples within a block follow its timestamp at the nominal rate, off
the sample clock by the crystal's error over the block (2 us at 100 ppm over 20 ms)."""
_RT_PRIORITY = 50
"""SCHED_FIFO priority the acquisition thread asks for (pi backend)."""
_EMULATOR_NICE = -15
"""Nice value the acquisition thread asks for with the real-time emulator (see ``start``)."""
_GAINS = (1, 2, 4, 6, 8, 12, 24)


def _run_options(snap: DeviceSnapshot) -> tuple[int | None, int | None, bool]:
    """Priority, nice value and losslessness of the acquisition thread for this device.

    SCHED_FIFO where the thread sleeps until the DRDY interrupt (a board). The real-time
    emulator busy-waits for its DRDY, and the kernel throttles a busy SCHED_FIFO thread (50 ms
    in every second: 5 % of the conversions), so it gets a low nice value instead. In virtual
    time DRDY waits for the reader: nothing can be lost.
    """
    board = snap.backend == "pi"
    priority = _RT_PRIORITY if board else None
    nice = _EMULATOR_NICE if snap.realtime and not board else None
    return priority, nice, not snap.realtime


def _channel_names(value: Any, chips: int) -> tuple[str, ...]:
    """``channel_names`` checked (one per channel, unique, fits a BDF+ label), as a tuple."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(
            f"channel_names: {short_repr(value)} is not a list of names, one per channel"
        )
    if len(value) not in {chips * n for n in (4, 6, 8)}:
        raise ValueError(
            f"channel_names: a list needs one name per channel ({chips * 8} for {chips} "
            f"chip(s)), got {len(value)}"
        )
    names = [check_channel_name("channel_names", name) for name in value]
    check_unique("channel_names", names)
    return tuple(names)


def _check_list(name: str, value: Any, chips: int, ok: Any, allowed: str) -> None:
    items = value if isinstance(value, (list, tuple)) else [value]
    if isinstance(value, (list, tuple)) and len(value) not in {chips * n for n in (4, 6, 8)}:
        raise ValueError(
            f"{name}: a list needs one entry per channel ({chips * 8} for {chips} chip(s)), "
            f"got {len(value)}"
        )
    for item in items:
        if not ok(item):
            raise ValueError(f"{name}: {item!r} is not one of {allowed}")


@dataclass(frozen=True)
class Ads1299SourceParams:
    """Parameters of ``ads1299_source`` (see docs/hardware.md for the registers each sets)."""

    sample_rate: int = 250
    """Data rate in SPS: 250, 500, 1000, 2000, 4000, 8000 or 16000 (CONFIG1.DR)."""
    gain: int | list[int] = 24
    """PGA gain 1, 2, 4, 6, 8, 12 or 24, or one per channel (CHnSET.GAIN)."""
    input: str | list[str] = "normal"
    """normal, shorted, test, temperature, supply, bias_meas or off, or one per channel."""
    chips: int = 1
    """ADS1299s in the daisy chain (1..4)."""
    test_signal: TestSignal | Mapping[str, str] | None = None
    """``{amplitude: 1x|2x, frequency: slow|fast|dc}``; default 1x at fCLK/2^21."""
    srb1: bool = True
    """Common reference: every channel's N input tied to SRB1 (MISC1.SRB1)."""
    srb2: bool | list[bool] = False
    """Route SRB2 to the channel's P input (CHnSET.SRB2), or one per channel."""
    bias: bool = True
    """Drive the bias electrode from the normal-input channels (CONFIG3, BIAS_SENSP/N)."""
    lead_off: bool | Mapping[str, Any] = False
    """Lead-off detection on normal inputs: True for DC 6 nA at 95 %, or
    ``{current: 6nA|24nA|6uA|24uA, threshold_pct: 95.0, frequency: dc}``."""
    tick_ms: float = TICK_MS_DEFAULT
    """Longest a sample waits for the pipeline to run on it, 0..50 ms: the pipeline runs once
    per this much signal instead of once per sample (0: once per frame)."""
    idle_tick_ms: float = IDLE_TICK_MS_DEFAULT
    """The tick while no stage's output is awaited (no subscriber of its topics or of
    ``markers``, no LSL inlet), 0..1000 ms: recording and counting go on, ten wake-ups a
    second instead of a hundred. It is also the longest tick subscribers that ask for more
    latency (``max_latency_ms``) get. 0, or not more than ``tick_ms``: always ``tick_ms``."""
    channel_names: Sequence[str] | None = None
    """Electrode names, one per channel of the whole chain in order (``[Fp1, Fp2, ...]``);
    unique, 1-16 printable ASCII characters. Default ``ch1`` .. ``chN``."""
    trigger: TriggerSpec | Mapping[str, Any] | None = None
    """A trigger input: ``{pin: 5, edge: rising|falling|both, label: trigger, bias:
    down|up|none}``; each edge on that header GPIO becomes a marker (source ``trigger``) on
    the sample whose DRDY fell nearest it, from the kernel's edge timestamps."""
    gpio_markers: bool = False
    """Every change of the chip's GPIO1..4 inputs in the status word becomes a marker
    ``gpio:XXXX`` (levels GPIO4..GPIO1, source ``chip_gpio``) on the frame that first shows
    it. Off by default: pins left floating would flood markers."""

    @property
    def tick_frames(self) -> int:
        """Frames one tick waits for: the first plus those due within ``tick_ms``."""
        return 1 + int(self.sample_rate * self.tick_ms / 1000.0)

    @property
    def idle_tick_frames(self) -> int:
        """Frames a tick waits for while nothing is awaited."""
        if self.idle_tick_ms <= self.tick_ms:
            return self.tick_frames
        return 1 + int(self.sample_rate * self.idle_tick_ms / 1000.0)

    def tick_frames_for(self, patience_ms: float | None) -> int:
        """Frames a tick waits for when the most demanding consumer lets a sample wait
        ``patience_ms`` (None: nobody waits, the idle tick): never fewer than ``tick_ms``
        gives, never more than ``idle_tick_ms`` does."""
        if patience_ms is None:
            return self.idle_tick_frames
        tick = min(patience_ms - PATIENCE_MARGIN_MS, self.idle_tick_ms)
        if tick <= self.tick_ms:
            return self.tick_frames
        return 1 + int(self.sample_rate * tick / 1000.0)

    def __post_init__(self) -> None:
        tick = self.tick_ms
        number = isinstance(tick, int | float) and not isinstance(tick, bool)
        if not number or not 0 <= tick <= TICK_MS_MAX:
            raise ValueError(
                f"tick_ms: {tick!r} is not a number of milliseconds from 0 to {TICK_MS_MAX:g}"
            )
        object.__setattr__(self, "tick_ms", float(tick))
        idle = self.idle_tick_ms
        number = isinstance(idle, int | float) and not isinstance(idle, bool)
        if not number or not 0 <= idle <= IDLE_TICK_MS_MAX:
            raise ValueError(
                f"idle_tick_ms: {idle!r} is not a number of milliseconds from 0 to "
                f"{IDLE_TICK_MS_MAX:g}"
            )
        object.__setattr__(self, "idle_tick_ms", float(idle))
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int):
            raise ValueError(f"sample_rate: {self.sample_rate!r} is not an integer")
        DataRate.from_sps(self.sample_rate)
        if isinstance(self.chips, bool) or self.chips not in (1, 2, 3, 4):
            raise ValueError(f"chips: {self.chips!r} is not one of 1, 2, 3, 4")
        _check_list(
            "gain",
            self.gain,
            self.chips,
            lambda g: isinstance(g, int) and not isinstance(g, bool) and g in _GAINS,
            "1, 2, 4, 6, 8, 12, 24",
        )
        _check_list("input", self.input, self.chips, lambda i: i in INPUTS, ", ".join(INPUTS))
        _check_list("srb2", self.srb2, self.chips, lambda s: isinstance(s, bool), "true, false")
        for name in ("srb1", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: {getattr(self, name)!r} is not true or false")
        self.test_settings  # noqa: B018 - validates
        self.lead_off_settings  # noqa: B018 - validates
        if self.trigger is not None:
            spec = trigger_spec(self.trigger)
            try:
                check_label(spec.label + (":falling" if spec.edge == "both" else ""))
            except ValueError as exc:
                raise ValueError(f"trigger: label: {exc}") from None
            object.__setattr__(self, "trigger", spec)
        if not isinstance(self.gpio_markers, bool):
            raise ValueError(f"gpio_markers: {self.gpio_markers!r} is not true or false")
        if self.channel_names is not None:
            object.__setattr__(
                self, "channel_names", _channel_names(self.channel_names, self.chips)
            )
        # Per-channel lists, for the part the list length implies. Whether chips may differ
        # depends on the board (shared or separate chip-selects): checked when the device opens.
        lengths = [
            len(v) for v in (self.gain, self.input, self.srb2) if isinstance(v, (list, tuple))
        ]
        self.per_chip(lengths[0] // self.chips if lengths else 8)

    @property
    def test_settings(self) -> TestSignal:
        """``test_signal`` as settings (the chip default when not given)."""
        test = self.test_signal
        if isinstance(test, TestSignal):
            return test
        if test is None:
            return TestSignal()
        if not isinstance(test, Mapping):
            raise ValueError(f"test_signal: {test!r} is not a mapping")
        unknown = set(test) - {"amplitude", "frequency"}
        if unknown:
            raise ValueError(
                f"test_signal: unknown key(s) {', '.join(sorted(unknown))}; "
                "allowed: amplitude, frequency"
            )
        return TestSignal(**test)

    @property
    def lead_off_settings(self) -> LeadOffSettings | None:
        """``lead_off`` as settings, None when detection is off."""
        loff = self.lead_off
        if isinstance(loff, bool):
            return LeadOffSettings() if loff else None
        if not isinstance(loff, Mapping):
            raise ValueError(f"lead_off: {loff!r} is not true, false or a mapping")
        unknown = set(loff) - {"current", "threshold_pct", "frequency"}
        if unknown:
            raise ValueError(
                f"lead_off: unknown key(s) {', '.join(sorted(unknown))}; "
                "allowed: current, threshold_pct, frequency"
            )
        return LeadOffSettings(**loff)

    def per_chip(self, channels_per_chip: int) -> tuple[ChipSettings, ...]:
        """Settings of each chip on its own (a board with a chip-select per chip).

        Raises:
            ValueError: a per-channel list does not fit this board.
        """
        total = self.chips * channels_per_chip
        chips = []
        for c in range(self.chips):
            part: dict[str, Any] = {}
            for name in ("gain", "input", "srb2"):
                value = getattr(self, name)
                if isinstance(value, (list, tuple)):
                    if len(value) != total:
                        raise ValueError(
                            f"{name}: a list needs one entry per channel; this board has "
                            f"{total} channels, the list has {len(value)}"
                        )
                    value = list(value[c * channels_per_chip : (c + 1) * channels_per_chip])
                part[name] = value
            chips.append(
                chain_settings(
                    sample_rate=self.sample_rate,
                    chips=1,
                    channels_per_chip=channels_per_chip,
                    test_signal=self.test_settings,
                    srb1=self.srb1,
                    bias=self.bias,
                    lead_off=self.lead_off_settings,
                    **part,
                )
            )
        return tuple(chips)

    def chain(self, channels_per_chip: int) -> ChipSettings:
        """Register settings for a chain of parts with ``channels_per_chip`` channels.

        Raises:
            ValueError: a per-channel list does not fit this chain, or differs between chips.
        """
        total = self.chips * channels_per_chip
        for name in ("gain", "input", "srb2"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)) and len(value) != total:
                raise ValueError(
                    f"{name}: a list needs one entry per channel; this chain has {total} "
                    f"channels, the list has {len(value)}"
                )
        return chain_settings(
            sample_rate=self.sample_rate,
            gain=self.gain,
            input=self.input,
            srb2=self.srb2,
            chips=self.chips,
            channels_per_chip=channels_per_chip,
            test_signal=self.test_settings,
            srb1=self.srb1,
            bias=self.bias,
            lead_off=self.lead_off_settings,
        )


@register
class Ads1299Source(SourceStage):
    """Samples of an ADS1299 chain, in counts, one column per channel."""

    type_name = "ads1299_source"
    claims_device = True
    Params = Ads1299SourceParams
    live_params = ("gain", "input")
    output_ports = ("out",)

    def __init__(self, name: str, params: Ads1299SourceParams) -> None:
        super().__init__(name, params)
        self.params: Ads1299SourceParams = params
        self._device: Ads1299 | None = None
        self._process: AcquisitionProcess | None = None
        self._snapshot: DeviceSnapshot | None = None
        self._acq: FrameSource | None = None
        self._meta: StreamMeta | None = None
        self._pending: deque[Block] = deque()
        self._corrupt = 0
        """Frames that failed the status-word check (part of ``samples_dropped``)."""
        self._bad_run = 0
        self._acquired = 0
        self._dropped = 0
        self._accounted = 0
        """The slot after the newest one counted as acquired or dropped."""
        self._taken_end = 0
        """The slot after the newest frame taken from the ring."""
        self._hurried = False
        """:meth:`hurry` came: the current read returns what waits, or None."""
        self._tick_due: float | None = None
        """When the tick being gathered ends (monotonic s), also across reads; None between."""
        self._clock = SampleClock(params.sample_rate)
        self._max_block = max(2 * params.tick_frames, math.ceil(params.sample_rate * _MAX_BLOCK_S))
        """Most samples in one block (a backlog is cut into blocks of this size)."""
        self._last_status: np.ndarray[Any, np.dtype[np.uint32]] | None = None
        self._held_by = ""
        self._cfg = DeviceConfig()
        self._board: Any = None
        """The emulated board under the device in ``thread`` mode (``mock``), for the trigger."""
        self._trigger: TriggerReader | None = None
        """The trigger reader in ``thread`` mode (in ``process`` mode the child has it)."""
        spec = params.trigger
        self.markers = HardwareMarkers(
            self,
            spec if isinstance(spec, TriggerSpec) else None,
            params.gpio_markers,
        )
        """Markers from the trigger input and the chip's GPIO bits, and their counters."""
        self.impedance = ImpedanceTap()
        """Windows of the emitted blocks for an impedance check on this running source."""

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        p = self.params
        self._held_by = ctx.pipeline
        self.markers.attach(ctx.markers, ctx.pipeline)
        ctx.extras[SOURCE_KEY] = self  # an ``impedance`` stage reads the lead-off status
        self._cfg = ctx.device
        if isinstance(p.trigger, TriggerSpec):
            try:
                ctx.device.check_trigger_pin(p.trigger.pin)
            except ValueError as exc:
                raise ConfigError(f"stage {self.name!r}: {exc}") from None
        if ctx.device.acquisition == "process":
            snap, settings = self._open_process(ctx.device)
        else:
            snap, settings = self._open_thread(ctx.device)
        self._snapshot = snap
        self._meta = self._stream_meta(snap, settings)
        return {"out": self._meta}

    def _stream_meta(self, snap: DeviceSnapshot, settings: Sequence[ChipSettings]) -> StreamMeta:
        """The output's meta: channel names and, per channel, the gain and input in force."""
        p = self.params
        n = snap.channels
        channels = [ch for one in settings for ch in one.channels]
        gains = tuple(channels[k % len(channels)].gain for k in range(n))
        kinds = tuple(channels[k % len(channels)].input for k in range(n))
        return StreamMeta(
            sample_rate=float(p.sample_rate),
            channels=tuple(p.channel_names or (f"ch{k + 1}" for k in range(n))),
            units="counts",
            extra={"gain": gains, "vref_v": VREF_V, "input": kinds, "device": "ADS1299"},
        )

    def _settings(
        self,
        channels_per_chip: int,
        cfg: DeviceConfig,
        params: Ads1299SourceParams | None = None,
    ) -> tuple[ChipSettings, ...]:
        """One settings for a daisy chain (its chips share CS and DIN, so channel k of every
        chip must be set alike), one per chip on a board with a chip-select per chip."""
        params = params or self.params
        names = params.channel_names
        total = params.chips * channels_per_chip
        if names is not None and len(names) != total:
            raise ConfigError(
                f"stage {self.name!r}: channel_names: {len(names)} names for the {total} "
                f"channels of this device ({self.params.chips} chip(s) of {channels_per_chip}); "
                "give one name per channel"
            )
        try:
            if cfg.two_chip_selects:
                return params.per_chip(channels_per_chip)
            return (params.chain(channels_per_chip),)
        except ValueError as exc:
            hint = ""
            if "set alike" in str(exc):
                hint = (
                    f" (device.board {cfg.board} shares one chip-select; per-chip settings "
                    "need a chip-select per chip, as on device.board: pieeg16)"
                )
            raise ConfigError(f"stage {self.name!r}: {exc}{hint}") from exc

    def _open_thread(self, cfg: DeviceConfig) -> tuple[DeviceSnapshot, tuple[ChipSettings, ...]]:
        if self.params.trigger is not None:
            device, self._board = open_device_and_board(cfg, self.params.chips)
        else:
            device = open_device(cfg, chips=self.params.chips)
        try:
            settings = self._settings(device.channels_per_chip, cfg)
            device.configure(settings)
        except BaseException:
            device.close()
            raise
        self._device = device
        return device.snapshot(), settings

    def _open_process(self, cfg: DeviceConfig) -> tuple[DeviceSnapshot, tuple[ChipSettings, ...]]:
        process = AcquisitionProcess(cfg, chips=self.params.chips)
        try:
            snap = process.open()
            settings = self._settings(snap.channels_per_chip, cfg)
            snap = process.configure(settings)
        except BaseException:
            process.close()
            raise
        self._process = process
        return snap, settings

    def start(self) -> None:
        if self._snapshot is None:
            raise HardwareError(f"stage {self.name!r}: the device is not open")
        self._pending.clear()
        self._corrupt = self._bad_run = 0
        self._acquired = self._dropped = self._accounted = self._taken_end = 0
        self.markers.begin()
        spec = self._trigger_spec()
        if self._process is None and self._device is not None and spec is not None:
            # Thread mode: the daemon reads the trigger, requested before conversions start.
            request = request_trigger(self._cfg, spec, self._board)
            self._trigger = TriggerReader(request, self.markers.on_trigger, f"GPIO{spec.pin}")
        offset = self._run_acquisition(after=None)
        self._clock.reset(offset)
        self.markers.set_offset(offset)
        if self._trigger is not None:
            self._trigger.start()

    def _trigger_spec(self) -> TriggerSpec | None:
        trigger = self.params.trigger
        return trigger if isinstance(trigger, TriggerSpec) else None

    def _run_acquisition(self, after: NumberedFrames | None) -> int:
        """Start conversions and their reader (in the acquisition process, or a thread here),
        slots continuing ``after``'s; returns Unix time minus the DRDY clock (ns)."""
        assert self._snapshot is not None
        rate = self.params.sample_rate
        priority, nice, lossless = _run_options(self._snapshot)
        if self._process is not None:
            reply = self._process.start(
                rate,
                priority=priority,
                nice=nice,
                lossless=lossless,
                trigger=self._trigger_spec(),
                on_trigger=self.markers.on_trigger,
            )
            self._acq = NumberedFrames(self._process, rate, after=after)
            return reply.wall_offset_ns
        device = self._device
        if device is None:
            raise HardwareError(f"stage {self.name!r}: the device is not open")
        acq = Acquisition(device, rate, priority=priority, nice=nice, lossless=lossless)
        offset = time.time_ns() - device.link.clock.monotonic_ns()
        self._acq = NumberedFrames(acq, rate, after=after)
        acq.start()
        return offset

    def update_params(self, params: Ads1299SourceParams) -> None:
        """Reprogram the chip with the new ``gain``/``input`` (see the module doc)."""
        snap, acq = self._snapshot, self._acq
        if snap is None or not isinstance(acq, NumberedFrames):
            raise PipelineStateError(f"stage {self.name!r}: the device is not acquiring")
        settings = self._settings(snap.channels_per_chip, self._cfg, params)  # before any stop
        acq.stop()  # conversions end; what the ring holds was converted with the old settings
        if acq.available:
            self._split(acq, self._max_block)  # handed on (with the old meta) before any new block
        try:
            self._restart(settings, acq)
        except HardwareError as exc:
            self._restart(self._settings(snap.channels_per_chip, self._cfg), acq)  # or fail
            raise PipelineStateError(
                f"stage {self.name!r}: the chip did not take the new settings ({exc}); the old "
                "ones are in force again"
            ) from None
        self._meta = self._stream_meta(snap, settings)

    def _restart(self, settings: tuple[ChipSettings, ...], before: NumberedFrames) -> None:
        """Write ``settings`` (the driver's path, as at the start) and start a new run whose
        slots continue ``before``'s; the sample clock and markers go on as they were."""
        if self._process is not None:
            self._snapshot = self._process.configure(settings)
        else:
            device = self._device
            if device is None:
                raise HardwareError(f"stage {self.name!r}: the device is not open")
            device.configure(settings)
            self._snapshot = device.snapshot()
        self._run_acquisition(after=before)

    def read(self, timeout: float) -> Block | None:
        if self._pending:
            return self._emit()
        acq = self._acq
        if acq is None:
            return None
        want = self.params.tick_frames_for(self.downstream_patience_ms)
        # One wait per tick: its frames arrive within want / rate of the previous tick's end;
        # the margin only matters when a conversion was lost. A tick longer than the caller's
        # timeout (an idle one, up to a second) goes on over several reads; a shorter one
        # asked for meanwhile ends it sooner.
        span = want / self.params.sample_rate + _TICK_MARGIN_S
        now = time.monotonic()
        deadline = now + timeout
        due = now + span if self._tick_due is None else min(self._tick_due, now + span)
        while True:
            self._tick_due = due
            available = acq.wait(want, max(0.0, min(due, deadline) - time.monotonic()))
            now = time.monotonic()
            if self._hurried:  # a subscriber wants samples sooner: what waits goes now
                self._hurried = False
                if not available:
                    self._tick_due = None
                    return None  # the runner asks again at once, with the new patience
            elif available == 0:
                if now >= deadline:
                    return None
                if now >= due:  # a whole tick without a frame: wait for the next one
                    due = now + span
                continue
            elif available < want and now < due and now >= deadline:
                return None  # the tick goes on in the caller's next read
            self._tick_due = None
            self._split(acq, max(self._max_block, want))
            if self._pending:
                return self._emit()
            self._account(self._taken_end)  # every frame taken failed the status check
            due = time.monotonic() + span  # keep waiting for good ones

    def hurry(self) -> None:
        """A subscriber came that wants samples sooner than the tick being gathered (an idle
        pipeline's 100 ms): what waits goes now, and the next read gathers the shorter tick."""
        acq = self._acq
        self._hurried = True  # before the ring's wake-up, which the reader may see at once
        if acq is not None:
            acq.hurry()

    def _emit(self) -> Block:
        """The next pending block, counted: the slots before it dropped, its own acquired."""
        block = self._pending.popleft()
        self._account(block.seq)
        self._acquired += block.n_samples
        self._accounted = block.end_seq
        if not self._pending:
            self._account(self._taken_end)  # failed frames after the last good one
        self.impedance.feed(block)
        return block

    def _account(self, upto: int) -> None:
        """Slots from the last counted one to ``upto`` carried no sample: dropped."""
        if upto > self._accounted:
            self._dropped += upto - self._accounted
            self._accounted = upto

    def _split(self, acq: FrameSource, cap: int) -> None:
        """Decode what waits in ``acq`` into blocks of at most ``cap`` frames (one, usually)."""
        assert self._snapshot is not None and self._meta is not None
        raw = acq.take()
        if len(raw):
            self._taken_end = int(raw.seq[-1]) + 1
        decoded = decode_frames(raw.frames, self._snapshot.chips, self._snapshot.channels_per_chip)
        valid = decoded.valid
        all_valid = bool(np.logical_and.reduce(valid))  # True for none, as ``all`` is
        if not all_valid:
            self._corrupt += int((~valid).sum())
            self._check_alignment(decoded.status, valid)
            if valid.any():
                self._last_status = decoded.status[np.flatnonzero(valid)[-1]]
        else:
            self._bad_run = 0
            if len(valid):
                self._last_status = decoded.status[-1]
        seq = raw.seq
        n = len(seq)
        clock = self._clock
        one_run = n and all_valid and int(seq[-1]) - int(seq[0]) == n - 1
        if one_run and n <= cap:  # the usual tick: one block
            clock.feed(seq, raw.edge_ns)
            self.markers.tick(seq, decoded.status, valid)
            self._pending.append(
                Block(
                    data=decoded.counts,
                    seq=int(seq[0]),
                    timestamp=clock.seq_time(int(seq[0])),
                    meta=self._meta,
                )
            )
            return
        if valid.any():
            clock.feed(seq[valid], raw.edge_ns[valid])
            self.markers.tick(seq, decoded.status, valid)
        # Run boundaries: a slot gap, or an invalid frame (dropped, so its slot becomes a gap).
        breaks = np.flatnonzero((np.diff(seq) != 1) | ~valid[1:] | ~valid[:-1]) + 1
        for run in np.split(np.arange(len(seq)), breaks):
            if len(run) == 0 or not valid[run[0]]:
                continue
            for start in range(0, len(run), cap):  # a backlog: blocks of at most ``cap``
                part = run[start : start + cap]
                self._pending.append(
                    Block(
                        data=decoded.counts[part],
                        seq=int(seq[part[0]]),
                        timestamp=clock.seq_time(int(seq[part[0]])),
                        meta=self._meta,
                    )
                )

    def _check_alignment(
        self, status: np.ndarray[Any, np.dtype[np.uint32]], valid: np.ndarray[Any, Any]
    ) -> None:
        """A run of frames without the 0xC status mark is a wiring or chain-length fault."""
        last_good = np.flatnonzero(valid)
        tail = len(valid) - 1 - int(last_good[-1]) if len(last_good) else len(valid)
        self._bad_run = tail if len(last_good) else self._bad_run + tail
        limit = max(8, self.params.sample_rate // 2)
        if self._bad_run < limit:
            return
        assert self._snapshot is not None
        self._account(self._taken_end)  # the failed frames stay counted after the error
        bad_chips = [
            f"chip {c + 1} status 0x{int(status[-1, c]):06X}"
            for c in range(status.shape[1])
            if int(status[-1, c]) >> 20 != 0xC
        ]
        raise HardwareError(
            f"{self._bad_run} consecutive frames from {self._snapshot.path} fail the status-word "
            f"check ({', '.join(bad_chips)}; every chip's word starts with 0xC): is the chain "
            f"really {self._snapshot.chips} chip(s) long with DOUT to DAISY_IN wired, and the SPI "
            "link clean?"
        )

    def stop(self) -> None:
        trigger, self._trigger = self._trigger, None
        if trigger is not None:
            trigger.stop()
        if self._acq is not None:
            self._acq.stop()
        self.markers.stop()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            process, self._process = self._process, None
            device, self._device = self._device, None
            if process is not None:
                process.close()
            if device is not None:
                device.close()

    def stats(self) -> SourceStats:
        """This run's counters and sample clock (see the module doc); they survive stop and
        close."""
        line = self._clock.line
        m = self.markers
        counts = SourceStats(
            samples_acquired=self._acquired,
            samples_dropped=self._dropped,
            trigger_markers=m.trigger_markers,
            trigger_lost=m.trigger_lost,
            gpio_markers=m.gpio_markers,
        )
        if line is None:
            return counts
        return dataclasses.replace(
            counts,
            sample_rate_measured_hz=line.rate_hz,
            clock_ppm=line.ppm,
            timestamp_residual_us=line.residual_ns / 1e3,
        )

    @property
    def clock(self) -> ClockLine | None:
        """The sample clock's current fit (None before the first sample of a run)."""
        return self._clock.line

    def seq_time(self, seq: int) -> float:
        """Unix time of sample ``seq`` on the sample clock (thread-safe).

        Raises:
            ClockNotReady: no sample of this run has arrived yet.
        """
        return self._clock.seq_time(seq)

    def seq_at(self, unix_time: float) -> int:
        """The sample nearest to ``unix_time`` on the sample clock (thread-safe; may be a
        sample still to come, or one before the run).

        Raises:
            ClockNotReady: no sample of this run has arrived yet.
        """
        return self._clock.seq_at(unix_time)

    @property
    def next_slot(self) -> int:
        """The slot after the newest one counted: ``acquired + dropped`` always equals it."""
        return self._accounted

    def acquisition_report(self) -> AcquisitionReport | None:
        """The running acquisition's reader, scheduling and memory lock; None while stopped."""
        acq = self._acq
        if acq is None or not acq.running:
            return None
        scheduling = "SCHED_FIFO" if acq.priority_set else "nice" if acq.nice_set else "normal"
        process = self._process
        if process is None:  # a thread of the daemon: the Python reader, memory not locked
            return AcquisitionReport("python", scheduling, False, "thread")
        return AcquisitionReport(process.reader, scheduling, process.memory_locked, "process")

    def device_report(self) -> DeviceReport | None:
        if self._snapshot is None or (self._device is None and self._process is None):
            return None
        return device_report(
            self._snapshot,
            sample_rate=self.params.sample_rate,
            held_by=self._held_by,
            status=self._last_status,
        )

    @property
    def device(self) -> Ads1299 | None:
        """The driver while open in ``thread`` mode (for diagnostics and tests); None in
        ``process`` mode, where only the acquisition process holds it."""
        return self._device
