"""Recordings: crash-safe BDF+/EDF+ files written by ``recorder`` stages, and their catalogue."""

from __future__ import annotations

from eegpi.recording.catalog import list_recordings, repair_unfinished
from eegpi.recording.control import RecorderControl, Recorders

__all__ = ["RecorderControl", "Recorders", "list_recordings", "repair_unfinished"]
