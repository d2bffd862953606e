"""Electrode names: the rules every channel name a user gives follows.

A name ends up as a BDF+/EDF+ signal label (16 ASCII characters), an LSL channel label and a
WebSocket meta entry, so it is checked once, where it is given, against the strictest of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eegpi.safe_yaml import short_repr

__all__ = ["CHANNEL_NAME_MAX", "check_channel_name", "check_unique"]

CHANNEL_NAME_MAX = 16
"""Longest channel name: a BDF+/EDF+ signal label is 16 ASCII characters."""


def check_channel_name(field: str, name: Any) -> str:
    """``name`` if it is a usable channel name; ValueError starting with ``field`` otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"{field}: {short_repr(name)} is not a string (quote it in YAML)")
    if not name.strip() or name != name.strip():
        raise ValueError(
            f"{field}: {name!r}: a name must not be empty or start or end with a space"
        )
    if len(name) > CHANNEL_NAME_MAX:
        raise ValueError(
            f"{field}: {name!r} has {len(name)} characters; at most {CHANNEL_NAME_MAX} fit a "
            "BDF+ signal label"
        )
    if not all(" " <= c <= "~" for c in name):
        raise ValueError(f"{field}: {name!r} is not printable ASCII (BDF+ labels are ASCII)")
    return name


def check_unique(field: str, names: Sequence[str]) -> None:
    """ValueError naming the names that appear more than once."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"{field}: {', '.join(repeated)} appear(s) more than once; every channel needs a "
            "name of its own"
        )
