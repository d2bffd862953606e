"""A recorder: a writer thread that turns a stream of blocks and markers into BDF+/EDF+ files.

The pipeline thread only queues (:meth:`Recorder.feed` never blocks; a block that does not fit
the bounded queue is counted and later shows in the file as an annotated gap). The writer thread
converts samples to codes, fills gaps in ``seq`` with :data:`~eegpi.recording.bdf.GAP_CODE` and
annotates them, places markers at the sample of their ``seq``, appends each data record as soon
as it is whole (so data reaches the disk at least once per record, at most 1 s) and
``fdatasync``s every ``fsync_s``. A disk error (a full disk) ends the recording with a finalised
file and an error in the status; it never reaches the pipeline.

Times in the file come from the sample clock: the file starts at its first sample's timestamp
and sample ``seq`` lies ``(seq - first_seq) / sample_rate`` seconds later.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from eegpi.recording.bdf import GAP_CODE, FileFormat, Layout, encode_record, tal, timekeeping_tal
from eegpi.recording.file import RecordingFile
from eegpi.recording.inbox import Command, Inbox
from eegpi.recording.naming import recording_path
from eegpi.status import RecordingStatus
from eegpi.stream import Block, Marker

__all__ = ["Recorder", "RecorderConfig"]

log = logging.getLogger("eegpi.recording")

_POLL_S = 0.25
_COMMAND_WAIT_S = 5.0
"""How long start/stop wait for the writer thread to act before answering with the status."""


@dataclass(frozen=True)
class RecorderConfig:
    """What a ``recorder`` stage fixes for its recordings."""

    data_dir: Path
    pattern: str
    pipeline: str
    stage: str
    fmt: FileFormat = "bdf"
    subject: str = ""
    recording: str = ""
    rotate_s: float | None = None
    rotate_bytes: int | None = None
    fsync_s: float = 1.0
    max_gap_s: float = 60.0
    """A longer gap is not filled: the file ends and the next starts after the gap."""
    queue_blocks: int = 1024
    queue_markers: int = 4096


class Recorder:
    """Records one stream; ``start``/``stop`` from any thread, ``feed`` from the pipeline's."""

    def __init__(
        self,
        config: RecorderConfig,
        layout: Layout,
        sample_rate: float,
        to_physical: npt.NDArray[np.float64],
    ) -> None:
        self.config = config
        self.layout = layout
        self.sample_rate = sample_rate
        self._to_codes = to_physical * layout.digital_per_unit()
        """Codes per input unit, one per channel."""
        self._n_channels = len(layout.signals)
        self._inbox = Inbox(config.queue_blocks, config.queue_markers)
        self._wanted = False
        """Blocks are queued (set by start/stop in the caller's thread, cleared on failure)."""
        self._dropped = 0
        """Samples refused by the full queue (pipeline thread only)."""
        self._lock = threading.Lock()
        self._status = RecordingStatus(stage=config.stage)
        self._start_waiters: list[threading.Event] = []
        # writer thread state
        self._file: RecordingFile | None = None
        self._armed = False
        self._first_seq = 0
        self._frac = 0.0
        """Sub-second part of the file's start: the first record's onset in its header second."""
        self._next_seq = 0
        self._buffer: npt.NDArray[np.int32] = np.zeros((0, self._n_channels), np.int32)
        self._pending: deque[bytes] = deque()
        self._early_markers: list[Marker] = []
        self._last_sync = 0.0
        self._finishing = False
        self._resume: tuple[int, float] | None = None
        """After a rotation at a block boundary: where the next file starts (seq, time)."""
        self._thread = threading.Thread(
            target=self._run, name=f"eegpi-recorder-{config.pipeline}-{config.stage}", daemon=True
        )
        self._thread.start()

    # -- any thread ----------------------------------------------------------------------------

    def start(self, wait_s: float = _COMMAND_WAIT_S) -> RecordingStatus:
        """Record from the next block on; waits (up to ``wait_s``) until the file exists."""
        done = threading.Event()
        with self._lock:
            self._wanted = True
        self._inbox.put_command(Command("start", done))
        done.wait(wait_s)
        return self.status()

    def stop(self, wait_s: float = _COMMAND_WAIT_S) -> RecordingStatus:
        """Finalise the file being written (nothing to do when none is)."""
        done = threading.Event()
        with self._lock:
            self._wanted = False
        self._inbox.put_command(Command("stop", done))
        done.wait(wait_s)
        return self.status()

    def close(self, timeout: float = 30.0) -> None:
        """Finalise and end the writer thread (what a pipeline stop calls)."""
        with self._lock:
            self._wanted = False
        if self._thread.is_alive():
            self._inbox.put_command(Command("close", threading.Event()))
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("recorder %s did not finish within %.0f s", self.config.stage, timeout)

    def add_markers(self, markers: Sequence[Marker]) -> None:
        """Write each marker as an annotation at the sample of its ``seq`` (thread-safe)."""
        lost = sum(1 for m in markers if not self._inbox.put_marker(m))
        if lost:
            log.warning(
                "recorder %s: %d marker(s) lost, its queue is full", self.config.stage, lost
            )

    def status(self) -> RecordingStatus:
        with self._lock:
            return replace(self._status, samples_dropped=self._dropped)

    # -- the pipeline thread -------------------------------------------------------------------

    def feed(self, block: Block) -> None:
        """Queue ``block`` when recording; never blocks (a full queue drops it, counted)."""
        if not self._wanted or not block.n_samples:
            return
        if not self._inbox.put_block(block):
            self._dropped += block.n_samples

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._inbox.get(_POLL_S)
            try:
                if isinstance(item, Block):
                    self._on_block(item)
                elif isinstance(item, Marker):
                    self._on_marker(item)
                elif isinstance(item, Command) and self._on_command(item):
                    return
                self._sync_if_due()
            except OSError as exc:
                self._fail(exc)
            except Exception as exc:  # a bug: keep the pipeline, end the recording
                log.exception("recorder %s failed", self.config.stage)
                self._fail(exc)

    def _on_command(self, command: Command) -> bool:
        """Act on ``command``; True when the thread should end."""
        if command.kind == "start":
            if self._file is None:
                self._armed = True
                self._start_waiters.append(command.done)
                self._set_status(active=True, last_error="")
            else:
                command.done.set()
            return False
        self._finish("recording stop")
        self._armed = False
        self._resume = None
        self._early_markers.clear()
        self._release_waiters()
        self._set_status(active=False)
        command.done.set()
        return command.kind == "close"

    def _release_waiters(self) -> None:
        for event in self._start_waiters:
            event.set()
        self._start_waiters.clear()

    def _on_block(self, block: Block) -> None:
        if not self._armed:
            return
        if self._file is None and self._resume is not None:
            seq0, start = self._resume
            self._resume = None
            self._open(seq0, start, "recording continues from the previous file")
        elif self._file is None:
            self._open(block.seq, block.timestamp)
        data = np.asarray(block.data)
        seq = block.seq
        if data.shape[1] != self._n_channels:
            raise ValueError(f"block has {data.shape[1]} channels, recording {self._n_channels}")
        if seq < self._next_seq:  # samples already written (cannot happen with a sane source)
            data, seq = data[self._next_seq - seq :], self._next_seq
            if not len(data):
                return
        gap = seq - self._next_seq
        if gap > 0:
            onset = self._onset(self._next_seq)
            text = f"gap: {gap} samples lost"
            if gap > self.config.max_gap_s * self.sample_rate:
                self._pending.append(tal(onset, f"{text}; the recording goes on in a new file"))
                self._finish(None)
                self._open(seq, block.timestamp)
                self._pending.append(tal(self._onset(seq), f"{text} before this file"))
            else:
                self._pending.append(tal(onset, text, gap / self.sample_rate))
                self._append_fill(gap)
        codes = np.rint(data * self._to_codes)
        dmax = self.layout.digital_max
        np.clip(codes, -dmax, dmax, out=codes)
        self._append(codes.astype(np.int32))
        self._set_status(duration_s=self._data_s())

    def _on_marker(self, marker: Marker) -> None:
        if self._file is None:
            if self._armed:
                self._early_markers.append(marker)
            return
        if marker.seq < self._first_seq:
            log.warning(
                "recorder %s: marker %r at seq %d is before the file's first sample (%d); "
                "not written",
                self.config.stage,
                marker.label,
                marker.seq,
                self._first_seq,
            )
            return
        self._pending.append(tal(self._onset(marker.seq), marker.label))

    # -- file handling -------------------------------------------------------------------------

    def _onset(self, seq: int) -> float:
        return self._frac + (seq - self._first_seq) / self.sample_rate

    def _data_s(self) -> float:
        return (self._next_seq - self._first_seq) / self.sample_rate

    def _open(self, seq: int, timestamp: float, first: str = "recording start") -> None:
        cfg = self.config
        path = recording_path(
            cfg.data_dir, cfg.pattern, pipeline=cfg.pipeline, stage=cfg.stage, start=timestamp,
            ext=cfg.fmt,
        )  # fmt: skip
        self._file = RecordingFile(
            path, self.layout, timestamp, subject=cfg.subject, recording=cfg.recording
        )
        self._first_seq = self._next_seq = seq
        self._frac = timestamp - math.floor(timestamp)
        self._buffer = np.zeros((0, self._n_channels), np.int32)
        self._last_sync = time.monotonic()
        self._pending.appendleft(tal(self._frac, first))
        early, self._early_markers = self._early_markers, []
        for marker in early:
            self._on_marker(marker)
        log.info("recorder %s: recording to %s", cfg.stage, path)
        self._set_status(active=True, file=self._name(path), duration_s=0.0, bytes=self._file.size)
        self._release_waiters()

    def _name(self, path: Path) -> str:
        try:
            return path.relative_to(self.config.data_dir).as_posix()
        except ValueError:
            return str(path)

    def _append_fill(self, n: int) -> None:
        """``n`` samples of GAP_CODE, written record by record (a long gap is never one array)."""
        spr = self.layout.samples_per_record
        while n > 0:
            take = min(n, spr - len(self._buffer))  # the buffer never holds a whole record
            self._append(np.full((take, self._n_channels), GAP_CODE[self.config.fmt], np.int32))
            n -= take

    def _append(self, codes: npt.NDArray[np.int32]) -> None:
        self._buffer = np.concatenate([self._buffer, codes]) if len(self._buffer) else codes
        self._next_seq += len(codes)
        spr = self.layout.samples_per_record
        while len(self._buffer) >= spr and self._file is not None:
            record, self._buffer = self._buffer[:spr], self._buffer[spr:]
            last = self._rotation_due()
            if last:
                end = self._onset(self._next_seq - len(self._buffer))
                self._pending.append(tal(end, "file end: the recording goes on in the next file"))
            self._write(record)
            if last:
                self._rotate()

    def _rotation_due(self) -> bool:
        """The record about to be written is the last of this file."""
        f, cfg = self._file, self.config
        assert f is not None
        if self._finishing:
            return False
        if cfg.rotate_s is not None and (f.records + 1) * self.layout.record_s >= cfg.rotate_s:
            return True
        nxt = f.size + self.layout.record_size
        return cfg.rotate_bytes is not None and nxt + self.layout.record_size > cfg.rotate_bytes

    def _rotate(self) -> None:
        f = self._file
        assert f is not None
        start_seq = self._first_seq + f.records * self.layout.samples_per_record
        start_time = f.start_time - self._frac + self._onset(start_seq)
        rest, next_seq = self._buffer, self._next_seq
        self._close_file()
        if not len(rest):  # the next file opens with the next block (none may come)
            self._resume = (start_seq, start_time)
            return
        self._open(start_seq, start_time, "recording continues from the previous file")
        self._buffer, self._next_seq = rest, next_seq

    def _write(self, codes: npt.NDArray[np.int32]) -> None:
        f = self._file
        assert f is not None
        room = self.layout.annotation_samples * self.layout.sample_bytes
        annotations = timekeeping_tal(self._frac + f.records * self.layout.record_s)
        while self._pending and len(annotations) + len(self._pending[0]) <= room:
            annotations += self._pending.popleft()
        f.append(encode_record(self.layout, codes, annotations))
        self._set_status(bytes=f.size)

    def _sync_if_due(self) -> None:
        f = self._file
        if f is not None and time.monotonic() - self._last_sync >= self.config.fsync_s:
            f.sync()
            self._last_sync = time.monotonic()

    def _finish(self, text: str | None) -> None:
        """End the current file: annotate, pad the last record, write what is pending, close."""
        f = self._file
        if f is None:
            return
        if text is not None:
            self._pending.append(tal(self._onset(self._next_seq), text))
        spr = self.layout.samples_per_record
        self._finishing = True
        try:
            if len(self._buffer):
                self._append_fill(spr - len(self._buffer))
            gap = np.full((spr, self._n_channels), GAP_CODE[self.config.fmt], np.int32)
            while self._pending and self._file is not None:
                self._write(gap)
        finally:
            self._finishing = False
        self._close_file()

    def _close_file(self) -> None:
        f, self._file = self._file, None
        self._pending.clear()
        self._buffer = np.zeros((0, self._n_channels), np.int32)
        if f is not None:
            f.finalise()
            log.info(
                "recorder %s: %s finalised (%d records, %.1f s)",
                self.config.stage,
                f.path,
                f.records,
                f.duration_s,
            )

    def _fail(self, exc: BaseException) -> None:
        """End the recording after an error; the file keeps every whole record."""
        f = self._file
        where = f" writing {self._name(f.path)}" if f is not None else ""
        if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
            message = f"disk full{where}: recording stopped ({exc.strerror})"
        elif isinstance(exc, OSError):
            message = f"cannot record{where}: {exc.strerror or exc} ({exc.filename or 'file'})"
        else:
            message = f"recording stopped{where}: {type(exc).__name__}: {exc}"
        log.error("recorder %s: %s", self.config.stage, message)
        self._file = None
        self._pending.clear()
        self._buffer = np.zeros((0, self._n_channels), np.int32)
        self._armed = False
        self._resume = None
        with self._lock:
            self._wanted = False
        if f is not None:
            try:
                f.finalise()
            except OSError as close_exc:
                log.error("recorder %s: finalising %s: %s", self.config.stage, f.path, close_exc)
        self._set_status(active=False, last_error=message)
        self._release_waiters()

    def _set_status(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]
