"""Recordings on the web port: ``GET /recordings/`` lists them, ``/recordings/NAME`` sends one.

The broker's HTTP side calls :func:`answer` after its own Host, Origin and token checks; this
module only knows the files. A name is resolved strictly inside the data directory. A body is
read whole (the HTTP layer sends bytes), so one response is capped at :data:`MAX_BODY_BYTES`;
larger files are fetched in parts with ``Range: bytes=START-END`` (``curl -r``), which any file
also supports. A file still being written is sent as it is now (its header then says ``-1``
records, which readers accept).
"""

from __future__ import annotations

import dataclasses
import http
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from eegpi.recording.catalog import list_recordings
from eegpi.recording.naming import resolve_name

__all__ = ["PREFIX", "Answer", "answer", "serve_from"]

PREFIX = "/recordings"
MAX_BODY_BYTES = 64 * 1024 * 1024
"""One answer is read whole on the event loop: big enough for an hour of 8 channels at 500 SPS,
small enough not to stall the streams for long."""
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_data_dir: Path | None = None


def serve_from(data_dir: str | Path | None) -> None:
    """Set the directory the web port serves recordings from (the daemon's ``data_dir``)."""
    global _data_dir
    _data_dir = Path(data_dir) if data_dir is not None else None


@dataclass(frozen=True)
class Answer:
    status: http.HTTPStatus
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def _text(status: http.HTTPStatus, text: str) -> Answer:
    return Answer(status, text.encode())


def answer(path: str, range_header: str | None = None) -> Answer:
    """The answer to ``GET path`` (a path under :data:`PREFIX`, query string removed)."""
    data_dir = _data_dir
    if data_dir is None:
        return _text(http.HTTPStatus.NOT_FOUND, "this daemon has no data directory\n")
    rest = path[len(PREFIX) :].lstrip("/")
    if not rest:
        files = [dataclasses.asdict(r) for r in list_recordings(data_dir)]
        body = json.dumps({"recordings": files}).encode()
        return Answer(http.HTTPStatus.OK, body, "application/json; charset=utf-8")
    name = unquote(rest)
    try:
        file = resolve_name(data_dir, name)
    except ValueError as exc:
        return _text(http.HTTPStatus.BAD_REQUEST, f"{exc}\n")
    if not file.is_file():
        return _text(
            http.HTTPStatus.NOT_FOUND,
            f"no recording {name!r}; GET {PREFIX}/ or `eegpi recordings` lists them\n",
        )
    return _send(file, range_header)


def _send(file: Path, range_header: str | None) -> Answer:
    size = file.stat().st_size
    disposition = ("Content-Disposition", f'attachment; filename="{file.name}"')
    accept = ("Accept-Ranges", "bytes")
    if range_header is None:
        if size > MAX_BODY_BYTES:
            return _text(
                http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"{file.name} is {size} bytes; fetch it in parts of at most {MAX_BODY_BYTES} "
                "with 'Range: bytes=START-END' (curl -r START-END)\n",
            )
        with file.open("rb") as fh:
            body = fh.read(size)
        return Answer(http.HTTPStatus.OK, body, "application/octet-stream", (disposition, accept))
    span = _span(range_header, size)
    if span is None:
        return Answer(
            http.HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
            f"range {range_header[:60]!r} is not 'bytes=START-END' within {size} bytes\n".encode(),
            headers=(("Content-Range", f"bytes */{size}"),),
        )
    start, end = span
    if end - start + 1 > MAX_BODY_BYTES:
        end = start + MAX_BODY_BYTES - 1
    with file.open("rb") as fh:
        fh.seek(start)
        body = fh.read(end - start + 1)
    content_range = ("Content-Range", f"bytes {start}-{start + len(body) - 1}/{size}")
    return Answer(
        http.HTTPStatus.PARTIAL_CONTENT,
        body,
        "application/octet-stream",
        (disposition, accept, content_range),
    )


def _span(header: str, size: int) -> tuple[int, int] | None:
    """First and last byte of a single ``bytes=`` range, or None when it cannot be served."""
    m = _RANGE.match(header.strip())
    if m is None or size == 0:
        return None
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = int(last)
        return (max(0, size - n), size - 1) if n > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end else None
