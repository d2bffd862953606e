"""A WebSocket client that keeps every message of a connection, in order, while a test acts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import websockets

TIMEOUT_S = 60.0


class Collector:
    """Reads one connection in the background; ``until`` waits for a condition on what came."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.log: list[dict[str, Any]] = []
        """Every message, in arrival order."""
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for raw in self.ws:
            self.log.append(json.loads(raw))
            self._changed.set()

    async def until(self, cond: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
        """Wait until ``cond()`` holds (checked after every message)."""
        async with asyncio.timeout(timeout):
            while not cond():
                self._changed.clear()
                if self._task is not None and self._task.done():
                    self._task.result()
                    raise AssertionError("the connection ended")
                await self._changed.wait()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def reply(self, key: str, start: int) -> dict[str, Any]:
        """The first message from index ``start`` on that has ``key`` (or an error)."""

        def found() -> dict[str, Any] | None:
            return next((m for m in self.log[start:] if key in m or "error" in m), None)

        await self.until(lambda: found() is not None)
        message = found()
        assert message is not None
        return message

    def data(self, topic: str) -> list[dict[str, Any]]:
        return [m for m in self.log if m.get("topic") == topic and "data" in m]

    def last_seq(self, topic: str) -> int:
        """The newest sample's seq on ``topic`` (-1 before any)."""
        data = self.data(topic)
        return data[-1]["seq"] + len(data[-1]["data"]) - 1 if data else -1

    def samples(self, topic: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(seq of every sample, samples x channels) of ``topic`` so far."""
        data = [m for m in self.data(topic) if m["data"]]
        seq = np.concatenate([m["seq"] + np.arange(len(m["data"])) for m in data])
        values = np.concatenate([np.asarray(m["data"], dtype=np.float64) for m in data])
        return seq, values

    def lagged_samples(self) -> int:
        return sum(int(m["samples"]) for m in self.log if "lagged" in m)


@contextlib.asynccontextmanager
async def collecting(url: str) -> AsyncIterator[Collector]:
    async with websockets.connect(url, max_size=2**24) as ws:
        collector = Collector(ws)
        collector._task = asyncio.create_task(collector._run())
        try:
            yield collector
        finally:
            collector._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await collector._task


def missing(seq: np.ndarray[Any, Any]) -> int:
    """Slots between the first and last sample that no sample has."""
    assert np.all(np.diff(seq) > 0), "samples out of order or repeated"
    return int(seq[-1] - seq[0] + 1 - len(seq))
