"""Data messages as WebSocket frames: built once per message, written straight to clients.

A data message goes to every subscriber of its group. Without extensions (the server turns
compression off) a server's frame is the same bytes for every connection, so
:class:`DataMessage` builds it once, on first use, and every connection that can take it at
once gets those bytes through :class:`DirectWriter`: one ``transport.write``, no task switch,
no per-client frame. A connection that cannot (its transport holds more than the low-water
mark, a send is in progress, it is closing) is left to the session's queue and sender task,
which keep every guarantee about slow clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from websockets.asyncio.connection import Connection as WsConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN

__all__ = ["DataMessage", "DirectWriter"]


@dataclass(eq=False)
class DataMessage:
    """One encoded data message of a topic; the same object is delivered to every member."""

    topic: str
    payload: str | bytes
    """JSON text or a binary frame body, as the codec made it."""
    n_samples: int
    _frame: bytes | None = field(default=None, repr=False)

    def frame(self) -> bytes:
        """The whole unmasked WebSocket frame, built on first use and then shared."""
        if self._frame is None:
            if isinstance(self.payload, str):
                opcode, data = Opcode.TEXT, self.payload.encode()
            else:
                opcode, data = Opcode.BINARY, self.payload
            self._frame = Frame(opcode, data).serialize(mask=False)
        return self._frame


class DirectWriter:
    """Writes a data message to a connection now, if it can take it without waiting."""

    def __init__(self, conn: WsConnection, low_water: int) -> None:
        """
        Args:
            conn: a websockets asyncio connection, open.
            low_water: bytes the transport may already hold for a direct write to go ahead.
        """
        self._conn = conn
        self._protocol = conn.protocol
        self._transport = conn.transport
        self._low_water = low_water
        self._shared_frames = not conn.protocol.extensions  # else frames differ per client

    def __call__(self, message: DataMessage) -> bool:
        """True when the message was written; False leaves it to the caller's queue."""
        if (
            self._protocol.state is not OPEN
            or self._conn.send_in_progress is not None
            or self._transport.is_closing()
            or self._transport.get_write_buffer_size() > self._low_water
        ):
            return False
        if self._shared_frames:
            self._transport.write(message.frame())
        else:
            payload = message.payload
            if isinstance(payload, str):
                self._protocol.send_text(payload.encode())
            else:
                self._protocol.send_binary(payload)
            self._conn.send_data()
        return True
