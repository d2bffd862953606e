"""Human output (aligned tables, durations) and JSON output of status records."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from eegpi.status import PipelineState, PipelineStatus

__all__ = ["format_duration", "key_values", "print_json", "record_json", "table", "uptime"]

_LIVE = (PipelineState.STARTING, PipelineState.RUNNING, PipelineState.STOPPING)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def key_values(pairs: Sequence[tuple[str, object]]) -> str:
    """``key  value`` lines with the values aligned."""
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


def format_duration(seconds: float) -> str:
    """``42s``, ``5m03s``, ``1h02m05s``, ``3d04h``: short, and exact enough to read at a glance."""
    s = max(int(seconds), 0)
    days, s = divmod(s, 86_400)
    hours, s = divmod(s, 3_600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m{s:02d}s"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{s}s"


def uptime(status: PipelineStatus, now: float | None = None) -> float | None:
    """Seconds since the pipeline started, None when it is not running."""
    if status.start_time is None or status.state not in _LIVE:
        return None
    return (time.time() if now is None else now) - status.start_time


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def record_json(record: Any) -> Any:
    """A status record (dataclass) as JSON-ready data; enums become their names."""
    data: Any = dataclasses.asdict(record)
    return json.loads(json.dumps(data, default=_plain))


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=_plain)
    sys.stdout.write("\n")
