"""The recorders of one pipeline run, as the daemon reaches them (status, start/stop, markers).

A ``recorder`` stage adds itself to the :class:`Recorders` it finds in its stage context
(``ctx.extras[Recorders.KEY]``) when it opens; the daemon keeps that object for the run and
after it, so the last recording's status (and its error) stays visible once the pipeline stops.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from eegpi.exc import PipelineNotFound
from eegpi.status import RecordingStatus
from eegpi.stream import Marker

__all__ = ["RecorderControl", "Recorders"]


class RecorderControl(Protocol):
    """What a recorder stage offers the daemon (every method is thread-safe)."""

    @property
    def name(self) -> str: ...

    def status(self) -> RecordingStatus: ...

    def start_recording(self) -> RecordingStatus: ...

    def stop_recording(self) -> RecordingStatus: ...

    def add_markers(self, markers: Sequence[Marker]) -> None: ...


class Recorders:
    """The recorder stages of one pipeline run, by stage name, in pipeline order."""

    KEY = "recorders"
    """The key in ``StageContext.extras``."""

    def __init__(self) -> None:
        self._items: dict[str, RecorderControl] = {}
        self._lock = threading.Lock()

    def add(self, recorder: RecorderControl) -> None:
        with self._lock:
            self._items[recorder.name] = recorder

    def all(self) -> list[RecorderControl]:
        with self._lock:
            return list(self._items.values())

    def select(self, pipeline: str, stage: str = "") -> list[RecorderControl]:
        """The stage named ``stage``, or every recorder when empty; PipelineNotFound if none."""
        found = self.all()
        if stage:
            found = [r for r in found if r.name == stage]
        if not found:
            names = ", ".join(r.name for r in self.all()) or "none"
            what = f"no recorder stage named '{stage}'" if stage else "no recorder stage"
            raise PipelineNotFound(f"pipeline '{pipeline}' has {what} (recorders: {names})")
        return found

    def statuses(self) -> tuple[RecordingStatus, ...]:
        return tuple(r.status() for r in self.all())

    def add_markers(self, markers: Sequence[Marker]) -> None:
        """Hand ``markers`` to every recorder of the run."""
        for recorder in self.all():
            recorder.add_markers(markers)
