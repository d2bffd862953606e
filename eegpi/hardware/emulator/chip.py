"""A byte-level model of an ADS1299 daisy chain, driven by SPI transactions and a clock.

What the model keeps (ads1299.md section 7): the register file with reset values and read-only
bits; RDATAC (power-up default) / SDATAC / STANDBY modes with RREG and WREG ignored in RDATAC
(every other command is honoured there, as on the chips shipped drivers run on); RESET with its
18 tCLK deaf time; START/STOP and single-shot; a conversion engine that only runs while started
and clocked (CLKSEL, an external clock), settles 4 tDR + 9 tCLK, reloads the output register
every tDR (an unread result is lost, a read straddling a reload is torn) and lets a channel
setting change settle through the sinc3 filter; the DRDY pin level; RDATA snapshots; 27-byte
frames per chip with status word (GPIO bits: pin levels), chip 1 first, zeros (daisy) or
repeats (multiple readback) beyond the chain; what each SPI mode does with the chip's edges;
and the faults of :class:`~eegpi.hardware.config.EmulatorConfig`.

Timing rules (tSCCS, tSDECODE, tCSSC, the SCLK limit, the reload window, RDATAC's keep-out,
tPOR, the reset time, tRST, the SPI mode) are checked on every transfer; a breach is recorded
(:mod:`~eegpi.hardware.emulator.timing`) and the transfer does what a real chip most likely
does with it, or it raises in ``timing: raise`` mode.

All chips of a chain share CS and DIN, so one register file serves them all; RREG answers from
chip 1, as on the real chain.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eegpi.ads1299.commands import Opcode
from eegpi.ads1299.frames import decode_frames, encode_frames, frame_size, status_word
from eegpi.ads1299.registers import (
    CHSET_GAIN,
    CHSET_MUX,
    CHSET_PD,
    CONFIG1_DAISY_EN,
    CONFIG1_DR,
    CONFIG2_CAL_AMP,
    CONFIG2_CAL_FREQ,
    CONFIG3_BIAS_STAT,
    CONFIG4_PD_LOFF_COMP,
    CONFIG4_SINGLE_SHOT,
    REGISTER_COUNT,
    REGISTERS,
    DataRate,
    Gain,
    Reg,
    reset_values,
)
from eegpi.ads1299.settings import VREF_V
from eegpi.hardware.config import EmulatorConfig
from eegpi.hardware.emulator.chunks import ChunkSource, ChunkSteps
from eegpi.hardware.emulator.clock import EmulatorClock
from eegpi.hardware.emulator.electrodes import Electrodes, Excitation
from eegpi.hardware.emulator.latency import stamp_latency_ns
from eegpi.hardware.emulator.signals import FCLK_HZ, ChannelPlan, SignalGenerator
from eegpi.hardware.emulator.timing import Violation, ViolationLog

__all__ = ["Ads1299Emulator", "EdgeBatch", "channels_for_id", "late_by_a_bit", "sinc3_step"]

log = logging.getLogger("eegpi.hardware.emulator")

_CHUNK = 256
"""Conversions generated per chunk; in real time a chunk is made in ~10 steps of at most a few
tens of microseconds, done between DRDYs."""
_IDLE_NS = 30_000
"""Generate only when the next DRDY is at least this far away (a step takes up to ~25 us)."""
_FULL_SCALE = 2**23
_DECODE_TCLK = 4
"""tSDECODE, tSCCS, tUPDATE and RDATAC's keep-out, in tCLK."""
_RESET_TCLK = 18
_TPOR_TCLK = 2**18
_TRST_TCLK = 2
_SETTLE_PERIODS = 3
"""A sinc3 filter forgets an input step after 3 data periods (the 4th DRDY is settled)."""
_CHSET = range(Reg.CH1SET, Reg.CH1SET + 8)
_COMMANDS = frozenset(int(op) for op in Opcode if op not in (Opcode.RREG, Opcode.WREG))
"""Single-byte opcodes; any other byte that is not RREG/WREG decodes as nothing."""
_SLACK = 0.999
"""Rounding allowance on timing limits (a 2 us hold meets 4 tCLK = 1.953 us, 4 MHz meets
4.096 MHz, whatever the clock's ppm)."""


def channels_for_id(id_register: int) -> int:
    """Channels of the part an ID register names (8 when the ID is not an ADS1299's)."""
    if id_register & 0x1C == 0x1C and id_register & 0x03 != 0x03:
        return (4, 6, 8)[id_register & 0x03]
    return 8


def late_by_a_bit(data: list[int]) -> list[int]:
    """A byte stream as seen by a receiver that samples on the edge its sender changes the
    line on: each bit one SCLK later, a 0 first (ads1299.md section 1.1, SPI modes)."""
    if not data:
        return []
    return list((int.from_bytes(bytes(data), "big") >> 1).to_bytes(len(data), "big"))


def sinc3_step(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Share of a new input in a sinc3 output ``x`` data periods after the input stepped:
    0 up to the step, 1/6 one period later, 5/6 after two, 1 from three on."""
    x = np.clip(x, 0.0, 3.0)
    middle = (-2 * x**3 + 9 * x**2 - 9 * x + 3) / 6
    share: npt.NDArray[np.float64] = np.where(
        x < 1, x**3 / 6, np.where(x < 2, middle, 1 - (3 - x) ** 3 / 6)
    )
    return share


class Ads1299Emulator:
    """One daisy chain of emulated ADS1299s (``chips`` devices sharing CS, DIN and SCLK)."""

    _cur: bytes
    """Encoded conversions of the current chunk (from ``_cur_start``), frame after frame ..."""
    _prev: bytes
    """... and of the chunk before it, which a torn read may still reach."""

    def __init__(self, cfg: EmulatorConfig, chips: int, clock: EmulatorClock) -> None:
        self.cfg = cfg
        self.chips = chips
        self.clock = clock
        self.channels_per_chip = channels_for_id(cfg.id_register)
        self.chip_frame = frame_size(self.channels_per_chip)
        self.frame_len = self.chip_frame * chips
        self._lock = threading.RLock()
        self._violations = ViolationLog(raise_first=cfg.timing == "raise")
        self.ignored_commands = 0
        """Commands the current mode ignores (e.g. WREG in RDATAC, anything during RESET)."""
        self.undefined_reads = 0
        self.spi_mode = 1
        """SPI mode of the host's transfers (the stand-in for spidev sets it)."""
        self.powered = True
        self.start_pin = False
        self.clksel = cfg.clksel
        """CLKSEL pin: high = internal oscillator, low = the clock on the CLK pin."""
        self.external_clock_hz = cfg.external_clock_hz
        self._gpio_in = cfg.gpio_inputs
        self._gpio_at = tuple(cfg.gpio_at.items())
        """(conversion, levels) from which the board drives other GPIO input levels, in order."""
        low_dvdd = cfg.dvdd_v < 2.7
        self._sclk_max_hz = 15e6 if low_dvdd else 20e6
        self._cs_setup_min_ns = 17.0 if low_dvdd else 6.0
        self._chunks = ChunkSource(self._chunk_steps, _CHUNK)
        self._silent = frozenset(cfg.silent_conversions)
        self._dropped = frozenset(cfg.drop_conversions) - self._silent
        self._edge_faults = bool(self._silent or self._dropped)
        self._jitter_ns = round(cfg.drdy_jitter_us * 1000)
        self._stalled_read = 0
        self._reset_low_ns: int | None = None
        self._electrodes = Electrodes(cfg, chips * self.channels_per_chip, self.channels_per_chip)
        self.period_ns = 0.0
        """tDR of the current (or last) run, ns: the DRDY period."""
        self.run_listeners: list[Callable[[int], None]] = []
        """Told (with the time, under the chip's lock) just before a run gives way to the next:
        what stands in for an interrupt must see the old run's last edges first."""
        self._update_clock()
        self._power_on()

    # --- state -----------------------------------------------------------------------------

    def _power_on(self) -> None:
        self.regs = reset_values(self.cfg.id_register)
        self.rdatac = True
        self.standby = False
        self.reset_until_ns = 0
        self.run_id = 0
        self._first_ns: float | None = None
        self._tdr_ns = self.period_ns = 0.0
        self._set_stop(None)
        self._frames_read = 0
        self._stalled_read = 0
        self._sclk_end_ns = -math.inf
        self._por_until_ns = self.clock.monotonic_ns() + _TPOR_TCLK * self.tclk_ns
        self._settle: _Settle | None = None
        self._gen = SignalGenerator(
            self.cfg, self.chips * self.channels_per_chip, self.channels_per_chip
        )
        self._invalidate()
        self._plan_cache: _ChunkPlan | None = None
        self._last_out = bytes(self.frame_len)

    def _update_clock(self) -> None:
        hz = self.clock_hz
        self.tclk_ns = 1e9 / (hz if hz else FCLK_HZ)

    @property
    def clock_hz(self) -> float | None:
        """The master clock the chip runs on: its oscillator (with ``clock_ppm``) when CLKSEL
        is high, else the CLK pin's (None: no clock, no conversions)."""
        if self.clksel:
            return FCLK_HZ * (1 + self.cfg.clock_ppm * 1e-6)
        return self.external_clock_hz

    def clock_out_hz(self) -> float | None:
        """What the CLK pin drives for other chips: the oscillator when CLKSEL is high and
        CONFIG1.CLK_EN is set, else nothing (None)."""
        with self._lock:
            if self.powered and self.clksel and self.regs[Reg.CONFIG1] & 0x20:
                return self.clock_hz
            return None

    def set_external_clock(self, hz: float | None) -> None:
        """The clock on the CLK pin changes (another chip's CLK_EN output, or none). With
        CLKSEL low, losing it stops conversions at once; a new rate applies from the next
        START, RESET or CONFIG1 write."""
        with self._lock:
            self.external_clock_hz = hz
            self._clock_changed()

    def _clock_changed(self) -> None:
        self._update_clock()
        if self.clock_hz is None and self._first_ns is not None:
            self._first_ns = None
            self._invalidate()

    def _reset(self, now: int) -> None:
        self.regs = reset_values(self.cfg.id_register)
        self.rdatac = True
        self.standby = False
        self.reset_until_ns = now + int(_RESET_TCLK * self.tclk_ns)
        self._first_ns = None
        self._settle = None
        self._invalidate()
        if self.start_pin:
            self._start(self.reset_until_ns)

    def _start(self, now: int) -> None:
        for listener in self.run_listeners:
            listener(now)
        self._update_clock()
        self._settle = None
        self.run_id += 1
        if self.clock_hz is None:
            self._first_ns = None  # no master clock: the modulator does not run
            self._invalidate()
            return
        dr = CONFIG1_DR.get(self.regs[Reg.CONFIG1])
        self._tdr_ns = self.period_ns = 128 * (1 << dr) * self.tclk_ns
        self._invalidate()
        if self.clock.realtime:
            # The first chunk now, not in the first frame read; conversions start after it.
            self._cur, self._cur_start = self._chunks.restart(0), 0
            now = max(now, self.clock.monotonic_ns())
        self._first_ns = now + 4 * self._tdr_ns + 9 * self.tclk_ns
        single = CONFIG4_SINGLE_SHOT.get(self.regs[Reg.CONFIG4])
        self._set_stop(0 if single else None)

    def _stop(self, now: int) -> None:
        if self._first_ns is not None and self._stop_index is None:
            # The conversion in progress finishes; nothing after it.
            self._set_stop(self._latest(now) + 1)

    def _set_stop(self, index: int | None) -> None:
        """The run's last conversion by STOP or single-shot (None: none); with the stuck-DRDY
        fault it gives :meth:`_cap`, kept as ``_cap_index`` for the per-frame paths."""
        self._stop_index = index
        stuck = self.cfg.stuck_drdy_after
        if stuck is None:
            self._cap_index = index
        else:
            self._cap_index = stuck - 1 if index is None or stuck - 1 < index else index

    @property
    def running(self) -> bool:
        return self._first_ns is not None

    def _cap(self) -> int | None:
        """The last conversion of this run (STOP, single-shot, the stuck-DRDY fault)."""
        return self._cap_index

    def _latest(self, now: float) -> int:
        """Index of the newest completed conversion of this run (-1 before the first)."""
        first = self._first_ns
        if first is None or now < first:
            return -1
        tdr = self._tdr_ns
        n = int((now - first) // tdr)
        # Edge k falls at ceil(first + k tDR) (``next_edge_ns``); the division may round to
        # the other side of that with a tDR that is not a whole number of ns (a ppm-off clock).
        # ``-(-x // 1)`` is math.ceil(x) as a float, without a call (this runs every frame).
        if -(-(first + (n + 1) * tdr) // 1) <= now:
            n += 1
        elif n >= 0 and -(-(first + n * tdr) // 1) > now:
            n -= 1
        cap = self._cap_index
        return n if cap is None or n < cap else cap

    @property
    def lock(self) -> threading.RLock:
        """The chip's own (re-entrant) lock: what must see its runs change atomically (the
        stimulus lines' cursors) holds it."""
        return self._lock

    def latest_conversion(self, now_ns: int) -> int:
        """Index of the newest conversion of the current run completed by ``now_ns`` (-1
        before the first; a stopped run's last one after it)."""
        with self._lock:
            return self._latest(now_ns)

    def _next_edge(self, latest: int) -> float | None:
        """When the conversion after ``latest`` completes (None: none will)."""
        if self._first_ns is None:
            return None
        cap = self._cap_index
        if cap is not None and latest + 1 > cap:
            return None
        return self._first_ns + (latest + 1) * self._tdr_ns

    # --- timing violations -------------------------------------------------------------------

    @property
    def violations(self) -> list[Violation]:
        """Timing-rule breaches seen, oldest first (the newest 1000)."""
        return self._violations.records

    @property
    def violation_counts(self) -> dict[str, int]:
        """Breaches per rule since the emulator was made (exact, not bounded)."""
        return self._violations.counts

    @property
    def timing_violations(self) -> int:
        """All breaches counted so far."""
        return self._violations.total

    def clear_violations(self) -> None:
        self._violations.clear()

    def _violation(self, rule: str, now: int, data: list[int] | bytes, detail: str) -> None:
        self._violations.add(rule, now, data, detail)

    # --- DRDY --------------------------------------------------------------------------------

    def drdy_level(self, now_ns: int | None = None) -> bool:
        """The DRDY pin (True = high; it is active low), as a host polling it sees it.

        It falls when a conversion completes, returns high on the first SCLK of any transfer
        after that (even one to another chip, see :meth:`bus_clocked`), and if nobody reads
        it returns high 4 tCLK before the next conversion, so each period has a high pulse
        (ads1299.md section 4). It is high while nothing converts, and reads high while the
        chip is unpowered or absent (the Pi's pull-up). Edge faults (``drop_conversions``,
        ``silent_conversions``) concern edge events only; the level still falls.
        """
        with self._lock:
            now = self.clock.monotonic_ns() if now_ns is None else now_ns
            if not self.powered or self.cfg.miso_stuck is not None or self._first_ns is None:
                return True
            latest = self._latest(now)
            if latest < 0:
                return True
            if self._sclk_end_ns >= self._first_ns + latest * self._tdr_ns:
                return True
            nxt = self._next_edge(latest)
            return nxt is not None and now >= nxt - _DECODE_TCLK * self.tclk_ns

    def bus_clocked(self, until_ns: int | None = None) -> None:
        """SCLK ran on the bus this chip shares until ``until_ns`` (now if None) while its CS
        was high: DRDY returns high all the same (datasheet rev C, ads1299.md section 3.2)."""
        with self._lock:
            end = self.clock.monotonic_ns() if until_ns is None else until_ns
            self._sclk_end_ns = max(self._sclk_end_ns, end)

    def edges(self, run_id: int, next_index: int, limit: int) -> EdgeBatch:
        """DRDY falling edges since a reader's cursor, with the edge faults applied.

        ``silent_conversions`` have no edge at all; ``drop_conversions`` have one whose event
        is lost (it still counts in ``count``, as the kernel's line sequence number does).
        """
        with self._lock:
            if not self.powered or self.cfg.miso_stuck is not None or self._first_ns is None:
                return EdgeBatch(run_id, next_index, 0, 0, [])
            if run_id != self.run_id:
                run_id, next_index = self.run_id, 0
            latest = self._latest(self.clock.monotonic_ns())
            if latest < next_index:
                return EdgeBatch(run_id, next_index, 0, 0, [])
            silent, dropped = self._silent, self._dropped
            silent_here = sum(1 for k in silent if next_index <= k <= latest)
            dropped_here = sum(1 for k in dropped if next_index <= k <= latest)
            count = latest + 1 - next_index - silent_here
            stamps: list[tuple[int, int]] = []
            position, k = count, latest
            while k >= next_index and len(stamps) < limit:
                if k not in silent:
                    if k not in dropped:
                        late = stamp_latency_ns(self._jitter_ns, self.cfg.seed, run_id, k)
                        stamps.append((position, int(self._first_ns + k * self._tdr_ns) + late))
                    position -= 1
                k -= 1
            stamps.reverse()
            return EdgeBatch(run_id, latest + 1, count, count - dropped_here, stamps)

    def edges_due(
        self, run_id: int, next_index: int, limit: int, now_ns: int | None = None
    ) -> tuple[int, int, int, list[tuple[int, int]], int]:
        """:meth:`edges` and then :meth:`next_edge_ns` of the new cursor, under one hold of the
        lock: ``(run_id, next_index, count, stamps, due)``, ``due`` 0 when no edge will fall.
        ``now_ns``: the time of the look, when the caller has just read the clock.

        What the ``gpiod`` stand-in asks once per DRDY. Without edge faults the edges are
        counted and stamped directly (one new edge: no loop), with the same numbers.
        """
        with self._lock:
            first = self._first_ns
            faulty = self._edge_faults or self.cfg.miso_stuck is not None
            if first is None or faulty or not self.powered:
                batch = self.edges(run_id, next_index, limit)
                due = self.next_edge_ns(batch.run_id, batch.next_index)
                return batch.run_id, batch.next_index, batch.count, batch.stamps, due or 0
            if run_id != self.run_id:
                run_id, next_index = self.run_id, 0
            latest = self._latest(self.clock.monotonic_ns() if now_ns is None else now_ns)
            tdr = self._tdr_ns
            count = latest + 1 - next_index
            stamps: list[tuple[int, int]] = []
            if count > 0:
                jitter = self._jitter_ns
                lo = next_index if limit >= count else latest + 1 - limit
                if lo == latest:  # one stamp (one new edge: the usual read)
                    late = stamp_latency_ns(jitter, self.cfg.seed, run_id, lo) if jitter else 0
                    stamps = [(count, int(first + lo * tdr) + late)]
                elif lo < latest:
                    seed = self.cfg.seed
                    stamps = [
                        (
                            k - next_index + 1,
                            int(first + k * tdr)
                            + (stamp_latency_ns(jitter, seed, run_id, k) if jitter else 0),
                        )
                        for k in range(lo, latest + 1)
                    ]
                next_index = latest + 1
            else:
                count = 0
            cap = self._cap_index
            if cap is not None and next_index > cap:
                return run_id, next_index, count, stamps, 0
            return run_id, next_index, count, stamps, int(-(-(first + next_index * tdr) // 1))

    def next_edge_ns(self, run_id: int, next_index: int) -> int | None:
        """When the next unseen DRDY edge falls, None when none will."""
        with self._lock:
            if not self.powered or self.cfg.miso_stuck is not None or self._first_ns is None:
                return None
            index = next_index if run_id == self.run_id else 0
            cap = self._cap_index
            if cap is not None and index > cap:
                return None
            return math.ceil(self._first_ns + index * self._tdr_ns)

    # --- pins --------------------------------------------------------------------------------

    def set_pin(self, name: str, high: bool) -> None:
        """RESET (active low), START, PWDN (active low), CLKSEL."""
        with self._lock:
            now = self.clock.monotonic_ns()
            if name == "start":
                was, self.start_pin = self.start_pin, high
                if high and not was:
                    self._start(now)
                elif not high and was:
                    self._stop(now)
            elif name == "reset":
                if high:
                    low = self._reset_low_ns
                    self._reset_low_ns = None
                    if low is not None and now - low < _TRST_TCLK * self.tclk_ns * _SLACK:
                        self._violation("tRST", now, b"", f"RESET low {now - low} ns")
                    self._reset(now)
                else:
                    self._reset_low_ns = now
                    self._first_ns = None
            elif name == "pwdn":
                if high and not self.powered:
                    self._power_on()
                self.powered = high
            elif name == "clksel":
                self.clksel = high
                self._clock_changed()

    def drive_gpio(self, levels: int) -> None:
        """The board drives ``levels`` (bit 0 = GPIO1) on the chip's GPIO pins; pins set up as
        inputs read them (GPIOD and the status word)."""
        with self._lock:
            self._gpio_in = levels & 0x0F
            self._invalidate()

    def _gpio_register(self, value: int, driven: int | None = None) -> int:
        """The GPIO register as read: GPIOC as written, GPIOD the pin levels (the written value
        for outputs, the board's level for inputs: ``driven``, default ``gpio_inputs``)."""
        inputs = value & 0x0F
        board = self._gpio_in if driven is None else driven
        levels = ((value >> 4) & ~inputs | board & inputs) & 0x0F
        return inputs | levels << 4

    def _scheduled_gpio(self, index: int) -> int | None:
        """The levels ``gpio_at`` has the board drive at conversion ``index`` (None: none)."""
        found = None
        for k, levels in self._gpio_at:
            if k > index:
                break
            found = levels
        return found

    def _scheduled_status(
        self, status: npt.NDArray[np.int64], start: int, regs: bytes
    ) -> npt.NDArray[np.int64]:
        """``status`` (rows from conversion ``start``) with the ``gpio_at`` levels from their
        conversion on: each frame carries the levels of its own conversion."""
        index = start + np.arange(len(status))
        out = np.array(status)
        for k, levels in self._gpio_at:
            rows = index >= k
            if not rows.any():
                break
            gpio = self._gpio_register(regs[Reg.GPIO], levels)
            words = [status_word(*self._lead_off_bits(c, regs), gpio) for c in range(self.chips)]
            out[rows] = words
        return out

    # --- SPI ---------------------------------------------------------------------------------

    def transfer(
        self,
        data: list[int],
        speed_hz: int,
        delay_usecs: float = 0,
        *,
        cs_setup_ns: float | None = None,
        word_delay_usecs: float = 0.0,
    ) -> list[int]:
        """One CS-low transaction: decode DIN byte by byte and return DOUT.

        Args:
            data: the bytes the host clocks out (DIN), one per SCLK byte.
            speed_hz: SCLK.
            delay_usecs: CS held low after the last SCLK (spidev's ``delay_usecs``).
            cs_setup_ns: CS low to the first SCLK; None = the controller's own, which meets
                tCSSC.
            word_delay_usecs: gap between bytes (spidev ``word_delay_usecs``), which counts
                towards tSDECODE.
        """
        stall_s = self._late_read_stall() if self.cfg.late_read_every else 0.0
        at = self.cfg.late_read_at if stall_s else ""  # no stall: no sleep(0) calls
        # The host stalls around its read (outside the lock, so DRDY edges keep falling and
        # being seen meanwhile): before it, later results overwrite the one it was woken for;
        # during or after it, the result is latched but the host's clock reads come late.
        if at == "before":
            self.clock.sleep(stall_s)
        out = self._transfer(data, speed_hz, delay_usecs, cs_setup_ns, word_delay_usecs)
        if at == "during":
            self.clock.sleep(stall_s)
        if not self.clock.realtime:
            # Clocking the bytes takes time; virtual time must not stand still during a read.
            byte_s = 8 / speed_hz + word_delay_usecs * 1e-6
            self.clock.sleep(len(data) * byte_s + delay_usecs * 1e-6)
        if at == "after":
            self.clock.sleep(stall_s)
        return out

    def _reads_frame(self) -> bool:
        """A transfer now would clock out conversion data (RDATAC, awake, not in reset)."""
        return (
            self.powered
            and self.cfg.miso_stuck is None
            and self.clock.monotonic_ns() >= self.reset_until_ns
            and self.rdatac
            and not self.standby
        )

    def _late_read_stall(self) -> float:
        """Seconds the host stalls around this transfer: a frame read hit by the late-read
        fault (counted here for every point but ``events``)."""
        every = self.cfg.late_read_every
        if not every:
            return 0.0
        with self._lock:
            if not self._reads_frame():
                return 0.0
            self._frames_read += 1
            if self.cfg.late_read_at == "events" or self._frames_read % every:
                return 0.0
            return self.cfg.late_read_periods * self._tdr_ns / 1e9

    def events_stall(self) -> None:
        """The ``events`` late-read point: the reader has taken its edge events and stalls
        before it reads the clock and the frame (once per Nth frame read)."""
        every = self.cfg.late_read_every
        if not every or self.cfg.late_read_at != "events":
            return
        with self._lock:
            upcoming = self._frames_read + 1
            if upcoming % every or upcoming == self._stalled_read or not self._reads_frame():
                return
            self._stalled_read = upcoming
            stall_s = self.cfg.late_read_periods * self._tdr_ns / 1e9
        self.clock.sleep(stall_s)

    def _transfer(
        self,
        data: list[int],
        speed_hz: int,
        delay_usecs: float,
        cs_setup_ns: float | None,
        word_delay_usecs: float,
    ) -> list[int]:
        with self._lock:
            n = len(data)
            if self.cfg.miso_stuck is not None:
                return [self.cfg.miso_stuck] * n
            if not self.powered:
                return [0] * n
            now = self.clock.monotonic_ns()
            byte_ns = 8e9 / speed_hz + word_delay_usecs * 1e3
            self._sclk_end_ns = now + n * byte_ns  # DRDY returns high on the first SCLK
            if speed_hz > self._sclk_max_hz:
                self._violation("tSCLK", now, data, f"SCLK {speed_hz / 1e6:g} MHz")
            if cs_setup_ns is not None and cs_setup_ns < self._cs_setup_min_ns:
                self._violation("tCSSC", now, data, f"CS low to SCLK {cs_setup_ns:g} ns")
            mode = self.spi_mode
            if mode != 1:
                self._violation("SPI mode", now, data, f"mode {mode}")
                if mode == 3:
                    # The host changes DIN on the falling edge the chip samples it on.
                    data = late_by_a_bit(data)
            active = any(data)
            if now < self.reset_until_ns:
                self.ignored_commands += 1
                if active:
                    left = self.reset_until_ns - now
                    self._violation("reset time", now, data, f"{left} ns of the reset left")
                return [0] * n
            if active and now < self._por_until_ns:
                left = int(self._por_until_ns - now)
                self._violation("tPOR", now, data, f"{left} ns before tPOR ends")
            if self.rdatac and not self.standby:
                out = self._frame_bytes(now, n, byte_ns, data)
                if active:
                    self._decode(data, byte_ns, delay_usecs, now)  # full duplex
            else:
                out = self._decode(data, byte_ns, delay_usecs, now)
            # Modes 0, 2 and 3 sample DOUT on the rising edge the chip drives it on.
            return out if mode == 1 else late_by_a_bit(out)

    def _decode(self, data: list[int], byte_ns: float, delay_usecs: float, now: int) -> list[int]:
        """Decode DIN; returns DOUT (RREG data, RDATA frames). Commands take effect whatever
        their timing; every breach is recorded."""
        n = len(data)
        out = [0] * n
        decode_ns = _DECODE_TCLK * self.tclk_ns * _SLACK
        too_fast = byte_ns < decode_ns
        cs_hold_short = delay_usecs * 1000 < decode_ns
        previous_command = -2
        i = 0
        while i < n:
            b = data[i]
            kind = b & 0xE0
            if not b or (kind not in (Opcode.RREG, Opcode.WREG) and b not in _COMMANDS):
                # Not an opcode (a 0x00 or 0xFF dummy byte): nothing is decoded, no timing.
                self.ignored_commands += b != 0
                i += 1
                continue
            if too_fast and previous_command == i - 1:
                self._violation(
                    "tSDECODE", now, data, f"command bytes {byte_ns:.0f} ns apart (byte {i})"
                )
            if self.standby and b != Opcode.WAKEUP:
                self.ignored_commands += 1
                previous_command = i
                i += 1
                continue
            if kind in (Opcode.RREG, Opcode.WREG):
                if i + 1 >= n:
                    break  # CS high aborts the partial command
                start, count = b & 0x1F, (data[i + 1] & 0x1F) + 1
                end = i + 2 + count
                if too_fast:
                    self._violation("tSDECODE", now, data, f"register bytes {byte_ns:.0f} ns apart")
                if kind == Opcode.WREG and end >= n and cs_hold_short:
                    self._violation("tSCCS", now, data, f"CS hold {delay_usecs * 1000:g} ns")
                if self.rdatac:
                    self.ignored_commands += 1  # RREG and WREG are ignored in RDATAC
                elif kind == Opcode.RREG:
                    for j in range(count):
                        if i + 2 + j < n:
                            out[i + 2 + j] = self._read_register(start + j)
                else:
                    for j in range(count):
                        if i + 2 + j < n:
                            self._write_register(start + j, data[i + 2 + j], now)
                previous_command = end - 1
                i = end
                continue
            if b == Opcode.RDATA and not self.rdatac:
                snapshot = self._frame_bytes(now, n - i - 1, byte_ns, None)
                out[i + 1 :] = snapshot
                break
            if i == n - 1 and cs_hold_short:
                # E2E 845509 lost a command this way; a Pi's CS release is slower. Executed.
                self._violation("tSCCS", now, data, f"CS hold {delay_usecs * 1000:g} ns")
            self._command(b, now)
            previous_command = i
            i += 1
        return out

    def _command(self, b: int, now: int) -> None:
        if b == Opcode.WAKEUP:
            self.standby = False
        elif b == Opcode.STANDBY:
            self.standby = True
            self._first_ns = None
            self._settle = None
        elif b == Opcode.RESET:
            self._reset(now)
        elif b == Opcode.START:
            self._start(now)
        elif b == Opcode.STOP:
            self._stop(now)
        elif b == Opcode.RDATAC:
            self._check_rdatac_keep_out(now)
            self.rdatac = True
        elif b == Opcode.SDATAC:
            self.rdatac = False
        else:
            self.ignored_commands += 1

    def _check_rdatac_keep_out(self, now: int) -> None:
        if self._first_ns is None:
            return
        latest = self._latest(now)
        keep_out = _DECODE_TCLK * self.tclk_ns
        since = now - (self._first_ns + latest * self._tdr_ns) if latest >= 0 else math.inf
        nxt = self._next_edge(latest)
        until = nxt - now if nxt is not None else math.inf
        if min(since, until) < keep_out:
            gap = min(since, until)
            self._violation("RDATAC keep-out", now, [Opcode.RDATAC], f"{gap:.0f} ns from DRDY")

    # --- registers ---------------------------------------------------------------------------

    def registers(self) -> bytes:
        """The register file as RREG would read it (chip 1), whatever the mode."""
        with self._lock:
            return bytes(self._read_register(a) for a in range(REGISTER_COUNT))

    def _read_register(self, address: int) -> int:
        if address >= REGISTER_COUNT:
            self.undefined_reads += 1
            return 0
        if address == Reg.LOFF_STATP:
            return self._lead_off_bits(0)[0]
        if address == Reg.LOFF_STATN:
            return self._lead_off_bits(0)[1]
        if address == Reg.CONFIG3:
            return CONFIG3_BIAS_STAT.set(self.regs[address], int(self._bias_off()))
        if address == Reg.GPIO:
            latest = self._latest(self.clock.monotonic_ns()) if self._gpio_at else -1
            driven = self._scheduled_gpio(latest) if latest >= 0 else None
            return self._gpio_register(self.regs[address], driven)
        return self.regs[address]

    def _write_register(self, address: int, value: int, now: int) -> None:
        if address >= REGISTER_COUNT:
            self.undefined_reads += 1
            return
        writable = REGISTERS[address].writable
        new = (self.regs[address] & ~writable & 0xFF) | (value & writable)
        if address in _CHSET and new != self.regs[address] and self._first_ns is not None:
            self._begin_settling(address - Reg.CH1SET, now)
        self.regs[address] = new
        self._invalidate()
        if address == Reg.CONFIG1 and self._first_ns is not None:
            self._start(now)  # writing CONFIG1 resets the digital filter

    def _begin_settling(self, channel: int, now: int) -> None:
        """CHnSET changes while converting: the next conversions blend the old input into the
        new one through the sinc3 filter (remembered before the registers change)."""
        k0 = self._latest(now) + 1
        rec = self._settle
        merge = rec is not None and rec.run_id == self.run_id and rec.end > k0
        start = rec.start if rec is not None and merge else k0
        end = max(rec.end if rec is not None and merge else 0, k0 + _SETTLE_PERIODS)
        frames = b"".join(self._frame(k) for k in range(start, end))
        raw = np.frombuffer(frames, np.uint8).reshape(end - start, self.frame_len)
        old = decode_frames(raw, self.chips, self.channels_per_chip).counts.astype(np.int64)
        total = self.chips * self.channels_per_chip
        changed_at = np.full(total, -np.inf)
        if rec is not None and merge:
            earlier = np.isfinite(rec.changed_at)
            old[: rec.end - start, earlier] = rec.old[:, earlier]
            changed_at[earlier] = rec.changed_at[earlier]
        changed_at[channel :: self.channels_per_chip] = now
        self._settle = _Settle(self.run_id, start, old, changed_at)

    def _lead_off_bits(self, chip: int, regs: bytes | bytearray | None = None) -> tuple[int, int]:
        regs = self.regs if regs is None else regs
        if not CONFIG4_PD_LOFF_COMP.get(regs[Reg.CONFIG4]):
            return 0, 0
        off = 0
        for ch in self.cfg.leads_off:
            c, k = divmod(ch - 1, self.channels_per_chip)
            if c == chip:
                off |= 1 << k
        trip_p, trip_n = self._electrodes.comparator_trips(bytes(regs), chip)
        return (off | trip_p) & regs[Reg.LOFF_SENSP], (off | trip_n) & regs[Reg.LOFF_SENSN]

    def _bias_off(self) -> bool:
        return self.cfg.bias_off and bool(CONFIG4_PD_LOFF_COMP.get(self.regs[Reg.CONFIG4]))

    # --- conversion data ---------------------------------------------------------------------

    def _frame_bytes(self, now: int, n: int, byte_ns: float, data: list[int] | None) -> list[int]:
        """What the output register clocks out from ``now``; ``data`` (DIN) is given for a
        read in RDATAC, which the reload window applies to (None for an RDATA snapshot)."""
        latest = self._latest(now)
        cur, size = self._cur_start, self.frame_len
        if 0 <= cur <= latest < cur + _CHUNK:  # in the current chunk: _frame's first case
            at = (latest - cur) * size
            frame = self._cur[at : at + size]
        else:
            frame = self._frame(latest) if latest >= 0 else self._last_out
        if data is not None:
            t_next = self._next_edge(latest)
            used = n if n < size else size
            if t_next is not None and now + used * byte_ns > t_next - 4 * self.tclk_ns:
                left = t_next - now
                self._violation("tUPDATE", now, data, f"read began {left:.0f} ns before DRDY")
                if self.clock.realtime and latest >= 0:
                    split = int(left // byte_ns)
                    if split < used:
                        # The output register reloads mid-read: the tail is the next result.
                        frame = frame[:split] + self._frame(latest + 1)[split:]
        self._last_out = frame
        if n <= self.frame_len:
            return list(frame[:n])
        if CONFIG1_DAISY_EN.get(self.regs[Reg.CONFIG1]):
            first = frame[: self.chip_frame]
            reps = -(-n // self.chip_frame)
            return list((first * reps)[:n])
        return list(frame) + [0] * (n - self.frame_len)

    def idle(self, until_ns: int) -> None:
        """The reader waits for a DRDY due at ``until_ns``: generate conversions ahead while
        there is time, so no frame read pays for it."""
        if self._chunks.ahead:
            return  # read without the lock: a stale answer only defers a step to the next wait
        with self._lock:
            if self._first_ns is None or self._cur_start < 0:
                return
            while until_ns - self.clock.monotonic_ns() > _IDLE_NS and self._chunks.idle():
                pass

    def _invalidate(self) -> None:
        """Registers or the run changed: conversions must be generated afresh."""
        self._cur_start = self._prev_start = -1
        self._cur = self._prev = b""

    def _frame(self, index: int) -> bytes:
        cur = self._cur_start
        rows, size = self._chunks.rows, self.frame_len
        if 0 <= cur <= index < cur + rows:
            at = (index - cur) * size
            return self._cur[at : at + size]
        prev = self._prev_start
        if 0 <= prev <= index < prev + rows:
            at = (index - prev) * size
            return self._prev[at : at + size]  # a torn read reaching back
        if cur < 0 or index < cur:
            base = index - index % rows
            self._prev_start = -1
            self._cur, self._cur_start = self._chunks.restart(base), base
        while index >= self._cur_start + rows:
            nxt = self._cur_start + rows
            self._prev, self._prev_start = self._cur, self._cur_start
            self._cur, self._cur_start = self._chunks.get(nxt), nxt
        at = (index - self._cur_start) * size
        return self._cur[at : at + size]

    def _chunk_plan(self) -> _ChunkPlan:
        """What the registers say about generation, rebuilt only when they change (from one
        snapshot of them: the generating thread does not hold the chip's lock)."""
        regs = bytes(self.regs)
        key = regs + bytes((self._gpio_in,))
        cached = self._plan_cache
        if cached is not None and cached.key == key:
            return cached
        plan = self._plan(regs)
        gpio = self._gpio_register(regs[Reg.GPIO])
        words = [status_word(*self._lead_off_bits(c, regs), gpio) for c in range(self.chips)]
        cached = _ChunkPlan(
            key=key,
            plan=plan,
            scale=np.array(plan.gain, dtype=np.float64) * (_FULL_SCALE / VREF_V),
            unpowered=~np.array(plan.powered),
            status=np.array(words, dtype=np.int64),
            excitation=self._electrodes.excitation(regs, plan.mux),
        )
        self._plan_cache = cached
        return cached

    def _plan(self, regs: bytes) -> ChannelPlan:
        mux, gain, powered = [], [], []
        for _chip in range(self.chips):
            for k in range(self.channels_per_chip):
                value = regs[Reg.CH1SET + k]
                mux.append(CHSET_MUX.get(value))
                code = CHSET_GAIN.get(value)
                gain.append(Gain(code).factor if code < 7 else 24)
                powered.append(not CHSET_PD.get(value))
        config2 = regs[Reg.CONFIG2]
        dr = CONFIG1_DR.get(regs[Reg.CONFIG1])
        return ChannelPlan(
            mux=mux,
            gain=gain,
            powered=powered,
            rate=DataRate(dr).sps if dr < 7 else 250,
            test_amp=CONFIG2_CAL_AMP.get(config2),
            test_freq=CONFIG2_CAL_FREQ.get(config2),
            leads_off=frozenset(self.cfg.leads_off),
            fclk_hz=1e9 / self.tclk_ns,
        )

    def _chunk_steps(self, start: int) -> ChunkSteps:
        """Encoded frames of conversions ``start .. start + rows - 1``, in steps."""
        rows = self._chunks.rows
        cp = self._chunk_plan()
        volts = yield from self._gen.volts_steps(start, rows, self._tdr_ns / 1e9, cp.plan)
        if cp.excitation is not None:  # the lead-off current through the electrodes
            volts += cp.excitation.volts(start, rows)
        yield
        codes = np.rint(volts * cp.scale)
        codes = np.clip(codes, -_FULL_SCALE, _FULL_SCALE - 1).astype(np.int64)
        settle = self._settle
        if settle is not None and settle.run_id == self.run_id and self._first_ns is not None:
            settle.blend(codes, start, self._first_ns, self._tdr_ns)
        codes[:, cp.unpowered] = 0
        if self.cfg.stamp_index:
            codes[:, 0] = (start + np.arange(rows)) % _FULL_SCALE
        yield
        status = np.broadcast_to(cp.status, (rows, self.chips))
        if self._gpio_at:
            status = self._scheduled_status(status, start, cp.regs)
        every = self.cfg.corrupt_every
        if every:
            status = status.copy()
            bad = (start + np.arange(rows) + 1) % every == 0
            status[bad, 0] ^= 0x800000
        return encode_frames(status, codes, self.chips).tobytes()


@dataclass(frozen=True)
class EdgeBatch:
    """What :meth:`Ads1299Emulator.edges` saw since a reader's cursor."""

    run_id: int
    next_index: int
    """The reader's new cursor: the first conversion not yet seen."""
    count: int
    """Edges that fell (a silent conversion has none; a dropped one counts)."""
    delivered: int
    """Edges whose event reaches the reader (``count`` minus the dropped ones)."""
    stamps: list[tuple[int, int]]
    """(position 1..count, time) of the newest ``limit`` delivered edges, oldest first."""


@dataclass(frozen=True)
class _Settle:
    """Channels whose CHnSET changed while converting, and what they read before."""

    run_id: int
    start: int
    """First conversion covered."""
    old: npt.NDArray[np.int64]
    """Codes the old settings give for conversions ``start ..``, shape (rows, channels)."""
    changed_at: npt.NDArray[np.float64]
    """When each channel's setting changed (ns); -inf for channels that did not."""

    @property
    def end(self) -> int:
        return self.start + len(self.old)

    def blend(
        self, codes: npt.NDArray[np.int64], start: int, first_ns: float, tdr_ns: float
    ) -> None:
        """Mix the old codes into ``codes`` (conversions ``start ..``) by the sinc3 step."""
        lo, hi = max(start, self.start), min(start + len(codes), self.end)
        if lo >= hi:
            return
        t = first_ns + np.arange(lo, hi, dtype=np.float64) * tdr_ns
        new_share = sinc3_step((t[:, None] - self.changed_at[None, :]) / tdr_ns)
        new = codes[lo - start : hi - start]
        old = self.old[lo - self.start : hi - self.start]
        codes[lo - start : hi - start] = np.rint(new_share * new + (1 - new_share) * old)


@dataclass(frozen=True)
class _ChunkPlan:
    key: bytes
    """The register file (and the GPIO input levels) it was built from."""
    plan: ChannelPlan
    scale: npt.NDArray[np.float64]
    """Codes per input volt, per channel (gain x full scale / VREF)."""
    unpowered: npt.NDArray[np.bool_]
    status: npt.NDArray[np.int64]
    """One status word per chip."""
    excitation: Excitation | None = None
    """The lead-off current's share of the inputs (None: no current on)."""

    @property
    def regs(self) -> bytes:
        """The register file it was built from."""
        return self.key[:-1]
