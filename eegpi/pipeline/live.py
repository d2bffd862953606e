"""Live parameters: changing a running stage's params between two ticks.

A change is checked in the caller's thread exactly as loading the pipeline file would check it
(:func:`~eegpi.pipeline.spec.build_params` on the stage's current params with the change
applied), so a bad value gets the loader's message. It then travels to the pipeline thread
through :class:`UpdateQueue`, a bounded queue the thread empties between two ticks: a stage
never sees its params change in the middle of a block. The caller waits for the thread's
verdict (the stage may still refuse what does not fit the stream, a cut-off above Nyquist say)
on a future. The pipeline file is never rewritten: a restart reads it again.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from eegpi.exc import ConfigError, PipelineStateError
from eegpi.pipeline.spec import build_params
from eegpi.pipeline.stage import Stage

__all__ = ["MAX_PENDING_UPDATES", "UpdateQueue", "checked_params", "params_to_json"]

MAX_PENDING_UPDATES = 8
"""Changes that may wait for the pipeline thread; more are refused (try again)."""


def _plain(value: Any) -> Any:
    """A param value as JSON-ready data (tuples as lists, settings records as mappings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    item = getattr(value, "item", None)  # a numpy scalar
    return item() if callable(item) else str(value)


def params_to_json(params: Any) -> dict[str, Any]:
    """Every field of a stage's ``Params`` as JSON-ready data."""
    if not dataclasses.is_dataclass(params):
        return {}
    return {f.name: _plain(getattr(params, f.name)) for f in dataclasses.fields(params)}


def checked_params(stage: Stage, changes: Mapping[str, Any], pipeline: str) -> Any:
    """``stage.params`` with ``changes`` applied, validated as the loader validates a file.

    Raises:
        ConfigError: an unknown param or a bad value (the loader's message).
        PipelineStateError: a param that cannot change while the pipeline runs (the message
            names those that can).
    """
    cls = type(stage)
    where = f"pipeline '{pipeline}': stage '{stage.name}' ({cls.type_name})"
    if not changes:
        raise ConfigError(f"{where}: no params given; live params: {_names(cls.live_params)}")
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    unknown = set(changes) - fields
    if unknown:
        allowed = _names(fields) if fields else "none"
        raise ConfigError(f"{where}: unknown param(s) {_names(unknown)}; allowed params: {allowed}")
    fixed = set(changes) - set(cls.live_params)
    if fixed:
        can = (
            f"live params: {_names(cls.live_params)}"
            if cls.live_params
            else "this stage has no live params"
        )
        raise PipelineStateError(
            f"{where}: {_names(fixed)} cannot change while the pipeline runs ({can}); "
            f"edit the pipeline file and restart it for the others"
        )
    current = {f.name: getattr(stage.params, f.name) for f in dataclasses.fields(stage.params)}
    return build_params(cls, {**current, **changes}, where)


def _names(names: Any) -> str:
    return ", ".join(f"'{n}'" for n in sorted(names))


@dataclass(frozen=True)
class _Update:
    stage: Stage
    params: Any
    done: Future[None]


class UpdateQueue:
    """Param changes on their way to the pipeline thread: bounded, thread-safe, never blocking.

    Callers :meth:`submit` and wait on the returned future; the pipeline thread calls
    :meth:`apply` between ticks. :meth:`close` (the pipeline ended) refuses whatever waits and
    every later submit.
    """

    def __init__(self, limit: int = MAX_PENDING_UPDATES) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._waiting: deque[_Update] = deque()
        self._closed = ""

    def __bool__(self) -> bool:
        """Something waits (read without the lock: the pipeline thread's cheap check)."""
        return bool(self._waiting)

    def submit(self, stage: Stage, params: Any) -> Future[None]:
        """Queue a change; PipelineStateError when the pipeline ended or too many wait."""
        done: Future[None] = Future()
        with self._lock:
            if self._closed:
                raise PipelineStateError(self._closed)
            if len(self._waiting) >= self._limit:
                raise PipelineStateError(
                    f"{self._limit} param changes already wait for the pipeline; try again"
                )
            self._waiting.append(_Update(stage, params, done))
        return done

    def apply(self, run: Callable[[Stage, Any], None]) -> None:
        """Pipeline thread: ``run(stage, params)`` for each waiting change, in order.

        A ConfigError or PipelineStateError refuses that change only; anything else is set on
        its future and raised (the stage may be half-changed: the pipeline must stop).
        """
        while True:
            with self._lock:
                if not self._waiting:
                    return
                update = self._waiting.popleft()
            try:
                run(update.stage, update.params)
            except (ConfigError, PipelineStateError) as exc:
                update.done.set_exception(exc)
            except BaseException as exc:
                update.done.set_exception(exc)
                raise
            else:
                update.done.set_result(None)

    def close(self, reason: str) -> None:
        """Refuse every waiting and later change with ``reason``."""
        with self._lock:
            self._closed = reason
            waiting, self._waiting = self._waiting, deque()
        for update in waiting:
            update.done.set_exception(PipelineStateError(reason))
