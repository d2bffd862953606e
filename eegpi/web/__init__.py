"""The live viewer page (static files served by the WebSocket server at ``GET /``)."""

from __future__ import annotations

__all__: list[str] = []
