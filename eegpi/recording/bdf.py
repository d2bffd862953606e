"""The BDF+ / EDF+ file layout: header fields, data records and annotation TALs.

Written by hand rather than through a library because a recording must stay readable after a
``kill -9`` or a power cut: the header says ``-1`` data records while the file grows (the EDF
spec allows it; MNE and EDFbrowser then count whole records from the file size), every data
record is appended whole, and the count is written at close. Libraries that write the header
or the annotations only at close lose the whole file, or every marker, in a crash.

A file is continuous (``BDF+C``/``EDF+C``): a gap in the sample stream is filled with
:data:`GAP_CODE` (one code outside the declared digital range, so no real sample has it) and
annotated, which keeps the time axis true in every reader, MNE included (it reads ``+D`` files
as if they were continuous).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "ANNOTATION_BYTES",
    "GAP_CODE",
    "FileFormat",
    "Layout",
    "SignalSpec",
    "encode_record",
    "header_bytes",
    "tal",
    "timekeeping_tal",
]

FileFormat = Literal["bdf", "edf"]

_DIGITAL_MAX = {"bdf": 2**23 - 1, "edf": 2**15 - 1}
"""The declared digital range is symmetric: -max..max."""
GAP_CODE = {"bdf": -(2**23), "edf": -(2**15)}
"""The code written for samples that were lost upstream: just below the declared range."""
_SAMPLE_BYTES = {"bdf": 3, "edf": 2}
ANNOTATION_BYTES = 512
"""Bytes of the annotation signal in each data record: the timekeeping TAL plus about ten
markers; more wait for the next record (their onsets are absolute, so nothing shifts)."""
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_UNSAFE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class SignalSpec:
    """One recorded channel: its electrode name, unit and physical range."""

    label: str
    unit: str
    physical_max: float
    """The range is -physical_max..physical_max, mapped onto the symmetric digital range."""
    prefilter: str = ""


@dataclass(frozen=True)
class Layout:
    """Everything fixed for one file: what a data record holds and how big it is."""

    fmt: FileFormat
    signals: tuple[SignalSpec, ...]
    samples_per_record: int
    record_s: float

    @property
    def sample_bytes(self) -> int:
        return _SAMPLE_BYTES[self.fmt]

    @property
    def digital_max(self) -> int:
        return _DIGITAL_MAX[self.fmt]

    @property
    def annotation_samples(self) -> int:
        return ANNOTATION_BYTES // self.sample_bytes

    @property
    def header_size(self) -> int:
        return 256 * (len(self.signals) + 2)

    @property
    def record_size(self) -> int:
        data = len(self.signals) * self.samples_per_record * self.sample_bytes
        return data + self.annotation_samples * self.sample_bytes

    def digital_per_unit(self) -> npt.NDArray[np.float64]:
        """Codes per physical unit, one per signal (the file's scale as a reader sees it)."""
        return np.array(
            [self.digital_max / _header_number(s.physical_max) for s in self.signals],
            dtype=np.float64,
        )


def _field(text: str, width: int) -> bytes:
    """ASCII, left-aligned, space-padded, cut to ``width`` (EDF header fields)."""
    return _UNSAFE.sub("_", text)[:width].ljust(width).encode("ascii")


def _number_text(value: float) -> str:
    """``value`` in at most 8 characters, as precise as they allow."""
    if float(value).is_integer() and abs(value) < 1e8:
        return str(int(value))
    for decimals in range(7, -1, -1):
        text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
        if len(text) <= 8:
            return text
    raise ValueError(f"{value} does not fit an 8-character EDF header field")


def _header_number(value: float) -> float:
    """``value`` as a reader parses it back from the header."""
    return float(_number_text(value))


def _identity(text: str) -> str:
    """A header subfield: no spaces (EDF+ separates subfields by them), ``X`` when unknown."""
    text = _UNSAFE.sub("_", text.strip()).replace(" ", "_")
    return text or "X"


def header_bytes(
    layout: Layout,
    *,
    start: datetime,
    n_records: int,
    subject: str = "",
    recording: str = "",
) -> bytes:
    """The whole header; ``n_records`` is -1 while the file is being written."""
    ns = len(layout.signals) + 1
    annotation_label = "BDF Annotations" if layout.fmt == "bdf" else "EDF Annotations"
    version = b"\xffBIOSEMI" if layout.fmt == "bdf" else b"0       "
    date = f"{start.day:02d}-{_MONTHS[start.month - 1]}-{start.year:04d}"
    patient = f"{_identity(subject)} X X X"
    rec = f"Startdate {date} X X eegpi"
    if recording.strip():
        rec += f" {_identity(recording)}"
    out = bytearray(version)
    out += _field(patient, 80)
    out += _field(rec, 80)
    out += _field(start.strftime("%d.%m.%y"), 8)
    out += _field(start.strftime("%H.%M.%S"), 8)
    out += _field(str(256 * (ns + 1)), 8)
    out += _field("BDF+C" if layout.fmt == "bdf" else "EDF+C", 44)
    out += _field(str(n_records), 8)
    out += _field(_number_text(layout.record_s), 8)
    out += _field(str(ns), 4)
    dmax = layout.digital_max
    sigs = [
        (s.label, s.unit, -s.physical_max, s.physical_max, -dmax, dmax, s.prefilter)
        for s in layout.signals
    ]
    sigs.append((annotation_label, "", -1.0, 1.0, -dmax - 1, dmax, ""))
    samples = [layout.samples_per_record] * len(layout.signals) + [layout.annotation_samples]
    out += b"".join(_field(s[0], 16) for s in sigs)
    out += b"".join(_field("", 80) for _ in sigs)  # transducer
    out += b"".join(_field(s[1], 8) for s in sigs)
    out += b"".join(_field(_number_text(s[2]), 8) for s in sigs)
    out += b"".join(_field(_number_text(s[3]), 8) for s in sigs)
    out += b"".join(_field(str(s[4]), 8) for s in sigs)
    out += b"".join(_field(str(s[5]), 8) for s in sigs)
    out += b"".join(_field(s[6], 80) for s in sigs)
    out += b"".join(_field(str(n), 8) for n in samples)
    out += b"".join(_field("", 32) for _ in sigs)
    assert len(out) == layout.header_size, (len(out), layout.header_size)
    return bytes(out)


def _onset_text(seconds: float) -> str:
    text = f"{seconds:+.6f}".rstrip("0").rstrip(".")
    return text if text not in ("+", "-") else "+0"


def timekeeping_tal(onset_s: float) -> bytes:
    """The TAL that opens every record's annotations: the record's start in the file."""
    return _onset_text(onset_s).encode() + b"\x14\x14\x00"


def tal(onset_s: float, text: str, duration_s: float | None = None) -> bytes:
    """One annotation as a TAL (UTF-8; the separators 0x14, 0x15 and 0x00 cannot occur)."""
    clean = re.sub(r"[\x00-\x1f]", " ", text).strip() or "marker"
    out = _onset_text(onset_s).encode()
    if duration_s is not None:
        out += b"\x15" + _onset_text(duration_s).lstrip("+").encode()
    return out + b"\x14" + clean.encode("utf-8") + b"\x14\x00"


def encode_record(layout: Layout, codes: npt.NDArray[np.int32], annotations: bytes) -> bytes:
    """One data record: ``codes`` (samples x signals) then the annotation signal."""
    n, ns = codes.shape
    if n != layout.samples_per_record or ns != len(layout.signals):
        raise ValueError(f"record of {codes.shape}, layout wants {layout.samples_per_record}x{ns}")
    ann_size = layout.annotation_samples * layout.sample_bytes
    if len(annotations) > ann_size:
        raise ValueError(f"{len(annotations)} bytes of annotations, the record holds {ann_size}")
    little = codes.T.astype("<i4").tobytes()  # signal by signal, each its samples in order
    if layout.fmt == "bdf":
        raw = np.frombuffer(little, dtype=np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = codes.T.astype("<i2").tobytes()
    return raw + annotations.ljust(ann_size, b"\x00")


def record_count_field(n_records: int) -> bytes:
    """The 8 header bytes at offset 236 that hold the number of data records."""
    return _field(str(n_records), 8)


RECORD_COUNT_OFFSET = 236
"""Where the number of data records sits in the header."""


def record_duration(sample_rate: float, longest_s: float = 1.0) -> tuple[int, float]:
    """Samples per record and record length: the longest record of whole samples <= ``longest_s``.

    Records reach the disk whole, so their length bounds what a crash can lose.
    """
    for seconds in (longest_s, 0.5, 0.25, 0.2, 0.1):
        if seconds > longest_s:
            continue
        n = sample_rate * seconds
        if n >= 1 and math.isclose(n, round(n), rel_tol=0, abs_tol=1e-9):
            return round(n), seconds
    raise ValueError(
        f"a sample rate of {sample_rate:g} Hz gives no whole number of samples in a record of "
        "1, 0.5, 0.25, 0.2 or 0.1 s; record a stream at a rate that does"
    )
