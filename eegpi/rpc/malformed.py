"""Requests that are not valid protobuf: INVALID_ARGUMENT, and one log line a minute at most.

gRPC decodes a request before any servicer or interceptor code sees it; a decode error used to
escape as UNKNOWN with a traceback in the log for every call, so a loop sending garbage flooded
the journal. Here the decoder never raises: it hands the call a :class:`Malformed` marker, and
the call is answered INVALID_ARGUMENT before the servicer runs.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from eegpi.rpc.handlers import behaviour_of, same_shape, wrapped
from eegpi.rpc.throttle import LogThrottle

__all__ = ["Malformed", "MalformedRequestInterceptor"]

log = logging.getLogger("eegpi.rpc")

_REASON_CHARS = 120


@dataclass(frozen=True)
class Malformed:
    """Stands in for a request that did not decode."""

    size: int
    reason: str


def _tolerant(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode_or_mark(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # DecodeError, or anything a decoder raises on bad bytes
            return Malformed(len(data), str(exc)[:_REASON_CHARS])

    return decode_or_mark


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Answers INVALID_ARGUMENT to requests that do not decode as the method's message."""

    def __init__(self) -> None:
        self._throttle = LogThrottle()

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method: str = handler_call_details.method
        inner = behaviour_of(handler)
        if handler.request_streaming:
            if not inspect.isasyncgenfunction(inner):
                return handler  # it would not expect a marker among its requests
            behaviour = self._checking_stream(inner, method)
        elif not (inspect.iscoroutinefunction(inner) or inspect.isasyncgenfunction(inner)):
            return handler
        else:
            behaviour = wrapped(inner, self._enter(method))
        return same_shape(handler, behaviour, _tolerant(handler.request_deserializer))

    async def _refuse(self, context: Any, method: str, bad: Malformed) -> None:
        held = self._throttle.allow()
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            log.warning(
                "malformed %s request from %s (%d bytes): %s%s",
                method,
                context.peer(),
                bad.size,
                bad.reason,
                more,
            )
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request ({bad.size} bytes) is not a valid protobuf message for {method}: "
            f"{bad.reason}",
        )

    def _enter(self, method: str) -> Callable[[Any, Any], Awaitable[Callable[[], None]]]:
        async def enter(request: Any, context: Any) -> Callable[[], None]:
            if isinstance(request, Malformed):
                await self._refuse(context, method, request)
            return _nothing

        return enter

    def _checking_stream(self, inner: Callable[..., Any], method: str) -> Callable[..., Any]:
        """For request-streaming methods (reflection): check each request as it is read."""

        async def checked(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            async for request in requests:
                if isinstance(request, Malformed):
                    await self._refuse(context, method, request)
                yield request

        async def stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            async for item in inner(checked(requests, context), context):
                yield item

        return stream


def _nothing() -> None:
    pass
