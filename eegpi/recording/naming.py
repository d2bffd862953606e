"""Where a recording goes: the ``path`` pattern, resolved safely under the data directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

__all__ = ["DEFAULT_PATTERN", "check_pattern", "recording_path", "resolve_name"]

DEFAULT_PATTERN = "{pipeline}/{start:%Y%m%d-%H%M%S}-{stage}.{ext}"
"""Files of one pipeline side by side, ordered by start (UTC), one per recorder stage."""
SUFFIXES = (".bdf", ".edf")


def _render(pattern: str, *, pipeline: str, stage: str, start: float, ext: str) -> str:
    when = datetime.fromtimestamp(start, UTC)
    try:
        return pattern.format(pipeline=pipeline, stage=stage, start=when, ext=ext)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"path: {pattern!r} is not a valid pattern ({type(exc).__name__}: {exc}); the "
            "fields are {pipeline}, {stage}, {ext} and {start:%Y%m%d-%H%M%S} (strftime codes)"
        ) from None


def _relative(text: str) -> PurePosixPath:
    """``text`` as a plain relative path inside the data directory, or ValueError."""
    rel = PurePosixPath(text)
    if not text or rel.is_absolute() or any(part in ("..", "") for part in text.split("/")):
        raise ValueError(f"{text!r} must be a relative path below data_dir, without '..'")
    if any(ord(c) < 32 for c in text) or "\\" in text:
        raise ValueError(f"{text!r} contains control characters or backslashes")
    return rel


def check_pattern(pattern: str, ext: str) -> None:
    """ValueError (naming the problem) when ``pattern`` cannot name a file under data_dir."""
    name = _render(pattern, pipeline="p", stage="s", start=0.0, ext=ext)
    rel = _relative(name)
    if rel.suffix.lower() != f".{ext}":
        raise ValueError(f"path: {pattern!r} must end in .{ext} (or .{{ext}})")


def recording_path(
    data_dir: Path, pattern: str, *, pipeline: str, stage: str, start: float, ext: str
) -> Path:
    """A new file's path: the pattern's, with ``-1``, ``-2`` ... added when it exists."""
    rel = _relative(_render(pattern, pipeline=pipeline, stage=stage, start=start, ext=ext))
    path = data_dir / rel
    n = 1
    while path.exists():
        path = data_dir / rel.with_name(f"{rel.stem}-{n}{rel.suffix}")
        n += 1
    return path


def resolve_name(data_dir: Path, name: str) -> Path:
    """The recording file ``name`` (relative to ``data_dir``); ValueError when it cannot be one.

    Refuses absolute paths, ``..``, other suffixes and symlinks that lead outside ``data_dir``.
    Does not check that the file exists.
    """
    rel = _relative(name)
    if rel.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{name!r} is not a recording (.bdf or .edf)")
    root = data_dir.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{name!r} leads outside the data directory")
    return path
