"""A byte-level model of an ADS1299 daisy chain, driven by SPI transactions and a clock.

What the model keeps (ads1299.md section 7): the register file with reset values and read-only
bits; RDATAC (power-up default) / SDATAC / STANDBY modes with RREG and WREG ignored in RDATAC;
RESET with its 18 tCLK deaf time; START/STOP and single-shot; a conversion engine that only
runs while started, settles 4 tDR + 9 tCLK, and reloads the output register every tDR (an
unread result is lost, a read straddling a reload is torn); RDATA snapshots; 27-byte frames per
chip with status word, chip 1 first, zeros (daisy) or repeats (multiple readback) beyond the
chain; command timing checks (tSDECODE between bytes, CS hold after the last byte); and the
faults of :class:`~eegpi.hardware.config.EmulatorConfig`.

All chips of a chain share CS and DIN, so one register file serves them all; RREG answers from
chip 1, as on the real chain.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eegpi.ads1299.commands import Opcode
from eegpi.ads1299.frames import encode_frames, frame_size, status_word
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
from eegpi.hardware.emulator.signals import FCLK_HZ, ChannelPlan, SignalGenerator

__all__ = ["Ads1299Emulator", "EdgeBatch", "channels_for_id"]

log = logging.getLogger("eegpi.hardware.emulator")

_CHUNK = 256
"""Conversions generated per chunk; in real time a chunk is made in ~10 steps of at most a few
tens of microseconds, done between DRDYs."""
_IDLE_NS = 30_000
"""Generate only when the next DRDY is at least this far away (a step takes up to ~25 us)."""
_FULL_SCALE = 2**23


def channels_for_id(id_register: int) -> int:
    """Channels of the part an ID register names (8 when the ID is not an ADS1299's)."""
    if id_register & 0x1C == 0x1C and id_register & 0x03 != 0x03:
        return (4, 6, 8)[id_register & 0x03]
    return 8


class Ads1299Emulator:
    """One daisy chain of emulated ADS1299s (``chips`` devices sharing CS, DIN and SCLK)."""

    _cur: npt.NDArray[np.uint8]
    """Encoded conversions of the current chunk (from ``_cur_start``) ..."""
    _prev: npt.NDArray[np.uint8]
    """... and of the chunk before it, which a torn read may still reach."""

    def __init__(self, cfg: EmulatorConfig, chips: int, clock: EmulatorClock) -> None:
        self.cfg = cfg
        self.chips = chips
        self.clock = clock
        self.channels_per_chip = channels_for_id(cfg.id_register)
        self.chip_frame = frame_size(self.channels_per_chip)
        self.frame_len = self.chip_frame * chips
        self.tclk_ns = 1e9 / (FCLK_HZ * (1 + cfg.clock_ppm * 1e-6))
        self._lock = threading.RLock()
        self.timing_violations = 0
        """Commands dropped because their SPI timing broke tSDECODE or the CS hold time."""
        self.ignored_commands = 0
        """Commands the current mode ignores (e.g. WREG in RDATAC, anything during RESET)."""
        self.undefined_reads = 0
        self.spi_mode = 1
        self.powered = True
        self.start_pin = False
        self._chunks = ChunkSource(self._chunk_steps, _CHUNK)
        self._silent = frozenset(cfg.silent_conversions)
        self._dropped = frozenset(cfg.drop_conversions) - self._silent
        self._stalled_read = 0
        self._power_on()

    # --- state -----------------------------------------------------------------------------

    def _power_on(self) -> None:
        self.regs = reset_values(self.cfg.id_register)
        self.rdatac = True
        self.standby = False
        self.reset_until_ns = 0
        self.run_id = 0
        self._first_ns: float | None = None
        self._tdr_ns = 0.0
        self._stop_index: int | None = None
        self._frames_read = 0
        self._stalled_read = 0
        self._gen = SignalGenerator(
            self.cfg, self.chips * self.channels_per_chip, self.channels_per_chip
        )
        self._invalidate()
        self._plan_cache: _ChunkPlan | None = None
        self._last_out = bytes(self.frame_len)

    def _reset(self, now: int) -> None:
        self.regs = reset_values(self.cfg.id_register)
        self.rdatac = True
        self.standby = False
        self.reset_until_ns = now + int(18 * self.tclk_ns)
        self._first_ns = None
        self._invalidate()
        if self.start_pin:
            self._start(self.reset_until_ns)

    def _start(self, now: int) -> None:
        dr = CONFIG1_DR.get(self.regs[Reg.CONFIG1])
        self._tdr_ns = 128 * (1 << dr) * self.tclk_ns
        self._invalidate()
        if self.clock.realtime:
            # The first chunk now, not in the first frame read; conversions start after it.
            self._cur, self._cur_start = self._chunks.restart(0), 0
            now = max(now, self.clock.monotonic_ns())
        self._first_ns = now + 4 * self._tdr_ns + 9 * self.tclk_ns
        single = CONFIG4_SINGLE_SHOT.get(self.regs[Reg.CONFIG4])
        self._stop_index = 0 if single else None
        self.run_id += 1

    def _stop(self, now: int) -> None:
        if self._first_ns is not None and self._stop_index is None:
            # The conversion in progress finishes; nothing after it.
            self._stop_index = self._latest(now) + 1

    @property
    def running(self) -> bool:
        return self._first_ns is not None

    @property
    def period_ns(self) -> float:
        return self._tdr_ns

    def _cap(self) -> int | None:
        caps = [c for c in (self._stop_index,) if c is not None]
        if self.cfg.stuck_drdy_after is not None:
            caps.append(self.cfg.stuck_drdy_after - 1)
        return min(caps) if caps else None

    def _latest(self, now: float) -> int:
        """Index of the newest completed conversion of this run (-1 before the first)."""
        if self._first_ns is None or now < self._first_ns:
            return -1
        n = int((now - self._first_ns) // self._tdr_ns)
        cap = self._cap()
        return n if cap is None else min(n, cap)

    # --- DRDY --------------------------------------------------------------------------------

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
                        stamps.append((position, int(self._first_ns + k * self._tdr_ns)))
                    position -= 1
                k -= 1
            stamps.reverse()
            return EdgeBatch(run_id, latest + 1, count, count - dropped_here, stamps)

    def next_edge_ns(self, run_id: int, next_index: int) -> int | None:
        """When the next unseen DRDY edge falls, None when none will."""
        with self._lock:
            if not self.powered or self.cfg.miso_stuck is not None or self._first_ns is None:
                return None
            index = next_index if run_id == self.run_id else 0
            cap = self._cap()
            if cap is not None and index > cap:
                return None
            return math.ceil(self._first_ns + index * self._tdr_ns)

    # --- pins --------------------------------------------------------------------------------

    def set_pin(self, name: str, high: bool) -> None:
        """RESET (active low), START, PWDN (active low)."""
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
                    self._reset(now)
                else:
                    self._first_ns = None
            elif name == "pwdn":
                if high and not self.powered:
                    self._power_on()
                self.powered = high

    # --- SPI ---------------------------------------------------------------------------------

    def transfer(self, data: list[int], speed_hz: int, delay_usecs: int) -> list[int]:
        """One CS-low transaction: decode DIN byte by byte and return DOUT."""
        stall_s = self._late_read_stall()
        at = self.cfg.late_read_at
        # The host stalls around its read (outside the lock, so DRDY edges keep falling and
        # being seen meanwhile): before it, later results overwrite the one it was woken for;
        # during or after it, the result is latched but the host's clock reads come late.
        if at == "before":
            self.clock.sleep(stall_s)
        out = self._transfer(data, speed_hz, delay_usecs)
        if at == "during":
            self.clock.sleep(stall_s)
        if not self.clock.realtime:
            # Clocking the bytes takes time; virtual time must not stand still during a read.
            self.clock.sleep(len(data) * 8 / speed_hz + delay_usecs * 1e-6)
        if at == "after":
            self.clock.sleep(stall_s)
        return out

    def _reads_frame(self) -> bool:
        """A transfer now would clock out conversion data (RDATAC, awake, not in reset)."""
        return (
            self.powered
            and self.cfg.miso_stuck is None
            and self.spi_mode == 1
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

    def _transfer(self, data: list[int], speed_hz: int, delay_usecs: int) -> list[int]:
        with self._lock:
            n = len(data)
            if self.cfg.miso_stuck is not None:
                return [self.cfg.miso_stuck] * n
            if not self.powered:
                return [0] * n
            now = self.clock.monotonic_ns()
            if self.spi_mode != 1:
                # Sampling on the wrong SCLK edge: every bit lands one place off.
                self.ignored_commands += 1
                return [((b << 1) | 1) & 0xFF for b in self._frame_bytes(now, n, speed_hz)]
            if now < self.reset_until_ns:
                self.ignored_commands += 1
                return [0] * n
            if self.rdatac and not self.standby:
                out = self._frame_bytes(now, n, speed_hz)
                if any(data):
                    self._decode_in_rdatac(data, speed_hz, delay_usecs, now)
                return out
            return self._decode(data, speed_hz, delay_usecs, now)

    def _decode_in_rdatac(self, data: list[int], speed_hz: int, delay_usecs: int, now: int) -> None:
        # Full duplex: DIN is decoded while the frame shifts out; only SDATAC is honoured
        # (strict), or also STOP/START/RESET (lenient, the datasheet does not say).
        cs_hold_short = delay_usecs * 1000 < 4 * self.tclk_ns * 0.999
        for i, b in enumerate(data):
            if b == Opcode.SDATAC and self.cfg.strict and i == len(data) - 1 and cs_hold_short:
                self.timing_violations += 1
            elif b == Opcode.SDATAC:
                self.rdatac = False
                self._decode(data[i + 1 :], speed_hz, delay_usecs, now)
                return
            if b and not self.cfg.strict and b in (Opcode.STOP, Opcode.START, Opcode.RESET):
                self._command(b, now)
            elif b:
                self.ignored_commands += 1

    def _decode(self, data: list[int], speed_hz: int, delay_usecs: int, now: int) -> list[int]:
        n = len(data)
        out = [0] * n
        byte_ns = 8e9 / speed_hz
        too_fast = byte_ns < 4 * self.tclk_ns * 0.999
        cs_hold_short = delay_usecs * 1000 < 4 * self.tclk_ns * 0.999
        strict = self.cfg.strict
        i = 0
        while i < n:
            b = data[i]
            if self.standby and b != Opcode.WAKEUP:
                self.ignored_commands += 1
                i += 1
                continue
            kind = b & 0xE0
            if kind in (Opcode.RREG, Opcode.WREG):
                if i + 1 >= n:
                    break  # CS high aborts the partial command
                start, count = b & 0x1F, (data[i + 1] & 0x1F) + 1
                if strict and too_fast:
                    self.timing_violations += 1
                elif self.rdatac:
                    self.ignored_commands += 1
                elif kind == Opcode.RREG:
                    for j in range(count):
                        if i + 2 + j < n:
                            out[i + 2 + j] = self._read_register(start + j)
                else:
                    for j in range(count):
                        if i + 2 + j < n:
                            self._write_register(start + j, data[i + 2 + j], now)
                i += 2 + count
                continue
            if b == Opcode.RDATA and not self.rdatac:
                snapshot = self._frame_bytes(now, n - i - 1, speed_hz, tear=False)
                out[i + 1 :] = snapshot
                break
            if b and strict and i == n - 1 and cs_hold_short:
                # E2E 845509: CS released right after the byte, the command is lost.
                self.timing_violations += 1
            elif b:
                self._command(b, now)
            i += 1
        return out

    def _command(self, b: int, now: int) -> None:
        if b == Opcode.WAKEUP:
            self.standby = False
        elif b == Opcode.STANDBY:
            self.standby = True
            self._first_ns = None
        elif b == Opcode.RESET:
            self._reset(now)
        elif b == Opcode.START:
            self._start(now)
        elif b == Opcode.STOP:
            self._stop(now)
        elif b == Opcode.RDATAC:
            self.rdatac = True
        elif b == Opcode.SDATAC:
            self.rdatac = False
        else:
            self.ignored_commands += 1

    # --- registers ---------------------------------------------------------------------------

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
        return self.regs[address]

    def _write_register(self, address: int, value: int, now: int) -> None:
        if address >= REGISTER_COUNT:
            self.undefined_reads += 1
            return
        writable = REGISTERS[address].writable
        self.regs[address] = (self.regs[address] & ~writable & 0xFF) | (value & writable)
        self._invalidate()
        if address == Reg.CONFIG1 and self._first_ns is not None:
            self._start(now)  # writing CONFIG1 resets the digital filter

    def _lead_off_bits(self, chip: int, regs: bytes | bytearray | None = None) -> tuple[int, int]:
        regs = self.regs if regs is None else regs
        if not CONFIG4_PD_LOFF_COMP.get(regs[Reg.CONFIG4]):
            return 0, 0
        off = 0
        for ch in self.cfg.leads_off:
            c, k = divmod(ch - 1, self.channels_per_chip)
            if c == chip:
                off |= 1 << k
        return off & regs[Reg.LOFF_SENSP], off & regs[Reg.LOFF_SENSN]

    def _bias_off(self) -> bool:
        return self.cfg.bias_off and bool(CONFIG4_PD_LOFF_COMP.get(self.regs[Reg.CONFIG4]))

    # --- conversion data ---------------------------------------------------------------------

    def _frame_bytes(self, now: int, n: int, speed_hz: int, tear: bool = True) -> list[int]:
        latest = self._latest(now)
        frame = self._frame(latest) if latest >= 0 else self._last_out
        if tear and self.clock.realtime and latest >= 0:
            cap = self._cap()
            nxt = latest + 1
            assert self._first_ns is not None
            t_next = self._first_ns + nxt * self._tdr_ns
            byte_ns = 8e9 / speed_hz
            split = int((t_next - now) // byte_ns)
            if split < min(n, self.frame_len) and (cap is None or nxt <= cap):
                # The output register reloads mid-read: the tail comes from the next result.
                frame = frame[:split] + self._frame(nxt)[split:]
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
        with self._lock:
            if self._first_ns is None or self._cur_start < 0:
                return
            while until_ns - self.clock.monotonic_ns() > _IDLE_NS and self._chunks.idle():
                pass

    def _invalidate(self) -> None:
        """Registers or the run changed: conversions must be generated afresh."""
        self._cur_start = self._prev_start = -1
        self._cur = np.zeros((0, self.frame_len), np.uint8)
        self._prev = self._cur

    def _frame(self, index: int) -> bytes:
        cur = self._cur_start
        rows = self._chunks.rows
        if 0 <= cur <= index < cur + rows:
            return bytes(self._cur[index - cur])
        prev = self._prev_start
        if 0 <= prev <= index < prev + rows:
            return bytes(self._prev[index - prev])  # a torn read reaching back
        if cur < 0 or index < cur:
            base = index - index % rows
            self._prev_start = -1
            self._cur, self._cur_start = self._chunks.restart(base), base
        while index >= self._cur_start + rows:
            nxt = self._cur_start + rows
            self._prev, self._prev_start = self._cur, self._cur_start
            self._cur, self._cur_start = self._chunks.get(nxt), nxt
        return bytes(self._cur[index - self._cur_start])

    def _chunk_plan(self) -> _ChunkPlan:
        """What the registers say about generation, rebuilt only when they change (from one
        snapshot of them: the generating thread does not hold the chip's lock)."""
        regs = bytes(self.regs)
        cached = self._plan_cache
        if cached is not None and cached.key == regs:
            return cached
        plan = self._plan(regs)
        words = [
            status_word(*self._lead_off_bits(c, regs), regs[Reg.GPIO]) for c in range(self.chips)
        ]
        cached = _ChunkPlan(
            key=regs,
            plan=plan,
            scale=np.array(plan.gain, dtype=np.float64) * (_FULL_SCALE / VREF_V),
            unpowered=~np.array(plan.powered),
            status=np.array(words, dtype=np.int64),
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
        )

    def _chunk_steps(self, start: int) -> ChunkSteps:
        """Encoded frames of conversions ``start .. start + rows - 1``, in steps."""
        rows = self._chunks.rows
        cp = self._chunk_plan()
        volts = yield from self._gen.volts_steps(start, rows, self._tdr_ns / 1e9, cp.plan)
        yield
        codes = np.rint(volts * cp.scale)
        codes = np.clip(codes, -_FULL_SCALE, _FULL_SCALE - 1).astype(np.int64)
        codes[:, cp.unpowered] = 0
        if self.cfg.stamp_index:
            codes[:, 0] = (start + np.arange(rows)) % _FULL_SCALE
        yield
        status = np.broadcast_to(cp.status, (rows, self.chips))
        every = self.cfg.corrupt_every
        if every:
            status = status.copy()
            bad = (start + np.arange(rows) + 1) % every == 0
            status[bad, 0] ^= 0x800000
        return encode_frames(status, codes, self.chips)


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
class _ChunkPlan:
    key: bytes
    """The register file it was built from."""
    plan: ChannelPlan
    scale: npt.NDArray[np.float64]
    """Codes per input volt, per channel (gain x full scale / VREF)."""
    unpowered: npt.NDArray[np.bool_]
    status: npt.NDArray[np.int64]
    """One status word per chip."""
