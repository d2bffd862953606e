"""Client commands of the WebSocket protocol, parsed and validated before they touch the hub.

Every way a message can be wrong maps to a :class:`CommandError` with a stable ``code`` and a
message a person can act on; the connection stays open after any of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DEFAULT_MAX_LATENCY_MS",
    "LATENCY_STEPS_MS",
    "MAX_LATENCY_MS_RANGE",
    "TOPIC_PATTERN",
    "Command",
    "CommandError",
    "ErrorCode",
    "GetParams",
    "ListTopics",
    "Mark",
    "Subscribe",
    "Unsubscribe",
    "UpdateStage",
    "parse_command",
]

DEFAULT_MAX_LATENCY_MS = 10.0
MAX_LATENCY_MS_RANGE = (0.0, 1000.0)
"""0 sends every block as soon as it arrives; 1000 ms is the most batching allowed."""
LATENCY_STEPS_MS = (0.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
"""A requested ``max_latency_ms`` is rounded down to one of these (the ack says which).

Subscribers share an encoded message only when they share the latency, so free choice would
let every client cost its own encode; a few steps keep a topic at a handful of groups, and
rounding down never makes a client wait longer than it asked for.
"""
TOPIC_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

Format = Literal["json", "binary"]
ErrorCode = Literal[
    "bad_json",
    "bad_request",
    "unknown_command",
    "unknown_topic",
    "not_subscribed",
    "too_many_subscriptions",
    "message_too_large",
    "rate_limited",
    "marker_refused",
    "params_refused",
    "update_refused",
]


class CommandError(Exception):
    """A client message the broker refuses; sent back as ``{"error": {...}}``."""

    def __init__(self, code: ErrorCode, message: str, topic: str | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.topic = topic

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.topic is not None:
            error["topic"] = self.topic
        return {"error": error}


@dataclass(frozen=True)
class Subscribe:
    topic: str
    format: Format = "json"
    max_latency_ms: float = DEFAULT_MAX_LATENCY_MS


@dataclass(frozen=True)
class Unsubscribe:
    topic: str


@dataclass(frozen=True)
class ListTopics:
    pass


@dataclass(frozen=True)
class Mark:
    """Place a marker on a running pipeline (``pipeline`` empty: the one running)."""

    label: str
    pipeline: str = ""
    time: float | None = None
    """Unix time of the event; None: when the daemon gets the command."""


@dataclass(frozen=True)
class GetParams:
    """The params of a pipeline's stages (live ones while it runs)."""

    pipeline: str


@dataclass(frozen=True)
class UpdateStage:
    """Change live params of a stage of a running pipeline (as the UpdateStage RPC)."""

    pipeline: str
    stage: str
    params: dict[str, Any]


Command = Subscribe | Unsubscribe | ListTopics | Mark | GetParams | UpdateStage

_COMMANDS = ("subscribe", "unsubscribe", "list_topics", "marker", "get_params", "update_stage")
_ALLOWED_FIELDS = {
    "subscribe": {"subscribe", "format", "max_latency_ms"},
    "unsubscribe": {"unsubscribe"},
    "list_topics": {"list_topics"},
    "marker": {"marker", "pipeline", "time"},
    "get_params": {"get_params"},
    "update_stage": {"update_stage"},
}
_NAME_LIMIT = 128
_EXAMPLE = (
    '{"subscribe": "eeg_filtered"}, {"unsubscribe": "eeg_filtered"}, {"list_topics": true}, '
    '{"marker": "stimulus"}, {"get_params": {"pipeline": "default"}} or '
    '{"update_stage": {"pipeline": "default", "stage": "filter", "params": {"low_hz": 2.0}}}'
)


def _topic(value: Any, command: str) -> str:
    if not isinstance(value, str):
        raise CommandError(
            "bad_request", f'"{command}" takes a topic name string, got {type(value).__name__}'
        )
    if not TOPIC_PATTERN.fullmatch(value):
        raise CommandError(
            "bad_request",
            f'"{command}": topic {value[:80]!r} is not a valid name '
            "(1-64 characters of letters, digits, '_', '.', ':', '-')",
        )
    return value


def _max_latency(value: Any) -> float:
    low, high = MAX_LATENCY_MS_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandError(
            "bad_request", f'"max_latency_ms" must be a number of milliseconds, got {value!r}'
        )
    if not low <= value <= high:
        raise CommandError(
            "bad_request", f'"max_latency_ms" must be between {low:g} and {high:g}, got {value!r}'
        )
    return max(step for step in LATENCY_STEPS_MS if step <= value)


def _mark(message: dict[str, Any]) -> Mark:
    label, pipeline, when = message["marker"], message.get("pipeline", ""), message.get("time")
    if not isinstance(label, str):
        raise CommandError(
            "bad_request", f'"marker" takes a label string, got {type(label).__name__}'
        )
    if not isinstance(pipeline, str) or len(pipeline) > 128:
        raise CommandError("bad_request", '"pipeline" is a pipeline name (at most 128 characters)')
    if when is not None and (isinstance(when, bool) or not isinstance(when, int | float)):
        raise CommandError("bad_request", '"time" is a Unix time in seconds (a number)')
    return Mark(label, pipeline, None if when is None else float(when))


def _name(body: dict[str, Any], key: str, command: str, code: ErrorCode) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > _NAME_LIMIT:
        raise CommandError(code, f'"{command}" needs "{key}": a name of 1-{_NAME_LIMIT} characters')
    return value


def _body(message: dict[str, Any], command: str, keys: set[str], code: ErrorCode) -> dict[str, Any]:
    body = message[command]
    if not isinstance(body, dict):
        raise CommandError(
            code, f'"{command}" takes an object, e.g. {{"{command}": {{"pipeline": "default"}}}}'
        )
    extra = sorted(set(body) - keys)
    if extra:
        raise CommandError(
            code,
            f'unknown field(s) {", ".join(extra)} in "{command}" '
            f"(allowed: {', '.join(sorted(keys))})",
        )
    return body


def _get_params(message: dict[str, Any]) -> GetParams:
    body = _body(message, "get_params", {"pipeline"}, "params_refused")
    return GetParams(_name(body, "pipeline", "get_params", "params_refused"))


def _update_stage(message: dict[str, Any]) -> UpdateStage:
    body = _body(message, "update_stage", {"pipeline", "stage", "params"}, "update_refused")
    pipeline = _name(body, "pipeline", "update_stage", "update_refused")
    stage = _name(body, "stage", "update_stage", "update_refused")
    params = body.get("params")
    if not isinstance(params, dict) or not params:
        raise CommandError(
            "update_refused",
            '"update_stage" needs "params": an object of the params to change, '
            'e.g. {"low_hz": 2.0}',
        )
    return UpdateStage(pipeline, stage, params)


def parse_command(text: str) -> Command:
    """Decode one client text message; raises CommandError when it is not a valid command."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CommandError(
            "bad_json", f"message is not valid JSON ({exc}); send e.g. {_EXAMPLE}"
        ) from None
    if not isinstance(message, dict):
        raise CommandError(
            "bad_request", f"a command is a JSON object, got {type(message).__name__}; {_EXAMPLE}"
        )
    present = [name for name in _COMMANDS if name in message]
    if not present:
        keys = ", ".join(repr(key) for key in list(message)[:5]) or "no keys"
        raise CommandError("unknown_command", f"unknown command ({keys}); expected {_EXAMPLE}")
    if len(present) > 1:
        raise CommandError("bad_request", f"one command per message, got {', '.join(present)}")
    name = present[0]
    extra = sorted(set(message) - _ALLOWED_FIELDS[name])
    if extra:
        allowed = ", ".join(sorted(_ALLOWED_FIELDS[name]))
        raise CommandError(
            "bad_request", f'unknown field(s) {", ".join(extra)} for "{name}" (allowed: {allowed})'
        )
    if name == "list_topics":
        if message["list_topics"] is not True:
            raise CommandError("bad_request", '"list_topics" must be true')
        return ListTopics()
    if name == "unsubscribe":
        return Unsubscribe(_topic(message["unsubscribe"], name))
    if name == "marker":
        return _mark(message)
    if name == "get_params":
        return _get_params(message)
    if name == "update_stage":
        return _update_stage(message)
    topic = _topic(message["subscribe"], name)
    fmt = message.get("format", "json")
    if fmt not in ("json", "binary"):
        raise CommandError(
            "bad_request", f'"format" must be "json" or "binary", got {fmt!r}', topic=topic
        )
    latency = DEFAULT_MAX_LATENCY_MS
    if "max_latency_ms" in message:
        try:
            latency = _max_latency(message["max_latency_ms"])
        except CommandError as exc:
            exc.topic = topic
            raise
    return Subscribe(topic, fmt, latency)
