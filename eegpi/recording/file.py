"""One recording file on disk: created with ``-1`` records, appended whole records, finalised.

Every write is an ``os.write`` of whole data records, so after a ``kill -9`` the file holds a
valid header and whole records (the page cache survives the process); ``fdatasync`` at the
caller's cadence bounds what a power cut can take. A failed write (a full disk) is cut back to
the last whole record before the header is finalised, so the file stays readable.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

from eegpi.recording.bdf import RECORD_COUNT_OFFSET, Layout, header_bytes, record_count_field

__all__ = ["RecordingFile"]


def fsync_dir(path: Path) -> None:
    """Make a new directory entry durable (the file's own fsync does not cover its name)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RecordingFile:
    """An open BDF+/EDF+ file that grows one whole data record at a time."""

    def __init__(
        self,
        path: Path,
        layout: Layout,
        start_time: float,
        *,
        subject: str = "",
        recording: str = "",
    ) -> None:
        self.path = path
        self.layout = layout
        self.start_time = start_time
        self.records = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        start = datetime.fromtimestamp(int(start_time), UTC)
        header = header_bytes(
            layout, start=start, n_records=-1, subject=subject, recording=recording
        )
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            self._write_all(header)
            os.fdatasync(self._fd)
            fsync_dir(path.parent)
        except BaseException:
            self._discard()
            raise

    @property
    def size(self) -> int:
        return self.layout.header_size + self.records * self.layout.record_size

    @property
    def duration_s(self) -> float:
        return self.records * self.layout.record_s

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def append(self, record: bytes) -> None:
        """Append one whole data record; on failure the file is cut back to whole records."""
        if len(record) != self.layout.record_size:
            raise ValueError(f"record of {len(record)} bytes, expected {self.layout.record_size}")
        try:
            self._write_all(record)
        except OSError:
            self._cut_back()
            raise
        self.records += 1

    def _cut_back(self) -> None:
        """Drop a partly written record (the disk filled mid-write)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self.size)
            os.lseek(self._fd, self.size, os.SEEK_SET)

    def sync(self) -> None:
        if self._fd is not None:
            os.fdatasync(self._fd)

    def finalise(self) -> None:
        """Write the record count into the header, sync and close. Idempotent.

        Raises OSError when the count could not be written (the file then keeps ``-1``, which
        readers and the next start's repair handle); the file is closed either way.
        """
        if self._fd is None:
            return
        fd = self._fd
        try:
            os.pwrite(fd, record_count_field(self.records), RECORD_COUNT_OFFSET)
            os.fsync(fd)
        finally:
            self._fd = None
            os.close(fd)

    def _discard(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            self.path.unlink()
