"""The recordings in the data directory: listing them, and repairing files a crash left open.

A file whose header still says ``-1`` data records was being written when the daemon died
(``kill -9``, a power cut). At the next start :func:`repair_unfinished` counts its whole
records, cuts off a partial one, writes the count into the header and, where the last record's
annotation space has room, adds a "recovered after unclean stop" annotation at the end of the
data. Readers that insist on a count (pyedflib/EDFlib) then open it too.
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from eegpi.recording.bdf import RECORD_COUNT_OFFSET, record_count_field, tal
from eegpi.recording.naming import SUFFIXES
from eegpi.status import RecordingFile

__all__ = ["HeaderInfo", "list_recordings", "read_header", "repair_file", "repair_unfinished"]

log = logging.getLogger("eegpi.recording")

RECOVERED = "recovered after unclean stop"


class HeaderInfo:
    """What the listing and the repair need from a header."""

    def __init__(self, raw: bytes, signals: bytes) -> None:
        self.bdf = raw[:8] == b"\xffBIOSEMI"
        self.n_records = int(raw[236:244].decode("ascii").strip() or "-1")
        self.record_s = float(raw[244:252].decode("ascii").strip())
        self.ns = int(raw[252:256].decode("ascii").strip())
        self.header_size = int(raw[184:192].decode("ascii").strip())
        self.start_time = _start_time(raw[168:176].decode("ascii"), raw[176:184].decode("ascii"))
        ns = self.ns
        labels = [signals[16 * i : 16 * i + 16].decode("latin-1").strip() for i in range(ns)]
        at = ns * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
        self.samples = [
            int(signals[at + 8 * i : at + 8 * i + 8].decode().strip()) for i in range(ns)
        ]
        self.annotation_index = next(
            (i for i, label in enumerate(labels) if label.endswith("Annotations")), None
        )

    @property
    def sample_bytes(self) -> int:
        return 3 if self.bdf else 2

    @property
    def record_size(self) -> int:
        return sum(self.samples) * self.sample_bytes


def _start_time(date: str, clock: str) -> float | None:
    try:
        d, m, y = (int(x) for x in date.split("."))
        hh, mm, ss = (int(x) for x in clock.split("."))
    except ValueError:
        return None
    year = 2000 + y if y < 85 else 1900 + y  # the EDF clipping date
    with contextlib.suppress(ValueError, OverflowError):
        return float(calendar.timegm((year, m, d, hh, mm, ss, 0, 0, 0)))
    return None


def read_header(path: Path) -> HeaderInfo:
    """Parse the fixed header and the signal headers; ValueError when it is not one."""
    with path.open("rb") as fh:
        raw = fh.read(256)
        if len(raw) < 256:
            raise ValueError(f"{path}: shorter than an EDF header")
        try:
            ns = int(raw[252:256].decode("ascii").strip())
        except ValueError:
            raise ValueError(f"{path}: not an EDF/BDF header") from None
        signals = fh.read(256 * ns)
    try:
        info = HeaderInfo(raw, signals)
    except (ValueError, UnicodeDecodeError, IndexError) as exc:
        raise ValueError(f"{path}: not an EDF/BDF header ({exc})") from None
    if info.record_size <= 0 or info.header_size != 256 * (ns + 1):
        raise ValueError(f"{path}: inconsistent EDF/BDF header")
    return info


def _recordings(data_dir: Path) -> Iterator[Path]:
    if not data_dir.is_dir():
        return
    for root, _dirs, files in os.walk(data_dir):
        for name in sorted(files):
            if Path(name).suffix.lower() in SUFFIXES:
                yield Path(root) / name


def list_recordings(data_dir: Path) -> list[RecordingFile]:
    """Every .bdf/.edf file under ``data_dir``, newest first."""
    out: list[RecordingFile] = []
    for path in _recordings(data_dir):
        try:
            size = path.stat().st_size
            info = read_header(path)
        except (OSError, ValueError):
            continue
        records = info.n_records
        if records < 0:
            records = max(0, (size - info.header_size) // info.record_size)
        out.append(
            RecordingFile(
                name=path.relative_to(data_dir).as_posix(),
                bytes=size,
                start_time=info.start_time,
                duration_s=records * info.record_s,
                complete=info.n_records >= 0,
            )
        )
    out.sort(key=lambda r: (r.start_time or 0.0, r.name), reverse=True)
    return out


def repair_file(path: Path) -> int:
    """Finalise a file left with ``-1`` records; returns its whole records (-1: nothing to do)."""
    info = read_header(path)
    if info.n_records >= 0:
        return -1
    with path.open("r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        records = max(0, (size - info.header_size) // info.record_size)
        end = info.header_size + records * info.record_size
        fh.truncate(end)
        if records and info.annotation_index is not None:
            _annotate_last_record(fh, info, records, end)
        fh.seek(RECORD_COUNT_OFFSET)
        fh.write(record_count_field(records))
        fh.flush()
        os.fsync(fh.fileno())
    return records


def _annotate_last_record(fh: BinaryIO, info: HeaderInfo, records: int, end: int) -> None:
    """Add RECOVERED at the end of the data, in the last record's free annotation bytes."""
    idx = info.annotation_index
    assert idx is not None
    offset = end - info.record_size + sum(info.samples[:idx]) * info.sample_bytes
    size = info.samples[idx] * info.sample_bytes
    fh.seek(offset)
    block = fh.read(size)
    used = block.rstrip(b"\x00")
    first = block.split(b"\x14", 1)[0]
    try:
        first_onset = float(first.decode("ascii"))
    except ValueError:
        return
    # The record's own start plus its length is the end of the data (records are whole).
    text = tal(first_onset + info.record_s, RECOVERED)
    if len(used) + 1 + len(text) <= size:
        fh.seek(offset + len(used) + 1)
        fh.write(text)


def repair_unfinished(data_dir: Path) -> list[Path]:
    """Repair every recording under ``data_dir`` that a crash left unfinished (at start-up)."""
    repaired: list[Path] = []
    started = time.monotonic()
    for path in _recordings(data_dir):
        try:
            records = repair_file(path)
        except (OSError, ValueError) as exc:
            log.error("cannot repair recording %s: %s", path, exc)
            continue
        if records >= 0:
            log.warning(
                "recording %s was not finalised (unclean stop): repaired, %d whole records kept",
                path,
                records,
            )
            repaired.append(path)
    if repaired:
        log.info("repaired %d recording(s) in %.1f s", len(repaired), time.monotonic() - started)
    return repaired
