"""The bounded hand-off between the pipeline thread and a recorder's writer thread.

Blocks are bounded (a slow disk must not grow memory without limit): a block that does not
fit is refused at once and counted by the caller, and the seq jump it leaves is annotated in
the file as a gap. Markers are bounded separately; commands (start, stop, close) always get in,
so a stop is never lost behind a full queue.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

from eegpi.stream import Block, Marker

__all__ = ["Command", "Inbox", "Item"]


@dataclass(frozen=True)
class Command:
    """Start, stop or close, with an event the asker may wait on."""

    kind: Literal["start", "stop", "close"]
    done: threading.Event


Item = Block | Marker | Command


class Inbox:
    """A FIFO of blocks, markers and commands with separate bounds for blocks and markers."""

    def __init__(self, max_blocks: int, max_markers: int) -> None:
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._max_blocks = max_blocks
        self._max_markers = max_markers
        self._blocks = 0
        self._markers = 0

    def put_block(self, block: Block) -> bool:
        """Queue ``block``; False (nothing queued) when the bound is reached."""
        with self._cond:
            if self._blocks >= self._max_blocks:
                return False
            self._blocks += 1
            self._items.append(block)
            self._cond.notify()
            return True

    def put_marker(self, marker: Marker) -> bool:
        with self._cond:
            if self._markers >= self._max_markers:
                return False
            self._markers += 1
            self._items.append(marker)
            self._cond.notify()
            return True

    def put_command(self, command: Command) -> None:
        with self._cond:
            self._items.append(command)
            self._cond.notify()

    def get(self, timeout: float) -> Item | None:
        """The oldest item, or None after ``timeout`` seconds without one."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            item = self._items.popleft()
            if isinstance(item, Block):
                self._blocks -= 1
            elif isinstance(item, Marker):
                self._markers -= 1
            return item
