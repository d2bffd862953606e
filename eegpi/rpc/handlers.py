"""Rebuilding a gRPC method handler around its behaviour, for the server's interceptors.

An interceptor that must act when a call runs (count it, check its request) cannot do so in
``intercept_service``: that runs before the request is read, and nothing tells it when the call
ends. It returns instead a handler of the same shape whose behaviour wraps the original one.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

__all__ = ["Enter", "behaviour_of", "same_shape", "wrapped"]

Enter = Callable[[Any, Any], Awaitable[Callable[[], None]]]
"""``enter(request, context)`` runs first (may abort); it returns what runs when the call ends.
For a request-streaming method ``request`` is the request iterator."""


def behaviour_of(handler: Any) -> Callable[..., Any]:
    """The servicer function behind ``handler``, whatever its shape."""
    if handler.request_streaming and handler.response_streaming:
        fn: Callable[..., Any] = handler.stream_stream
    elif handler.request_streaming:
        fn = handler.stream_unary
    elif handler.response_streaming:
        fn = handler.unary_stream
    else:
        fn = handler.unary_unary
    return fn


def same_shape(
    handler: Any,
    behaviour: Callable[..., Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Any:
    """A handler like ``handler`` (streaming, serializers) that runs ``behaviour``."""
    kwargs = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(behaviour, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(behaviour, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(behaviour, **kwargs)
    return grpc.unary_unary_rpc_method_handler(behaviour, **kwargs)


def wrapped(inner: Callable[..., Any], enter: Enter) -> Callable[..., Any]:
    """``inner`` with ``enter`` before it and ``enter``'s result after it, even on cancel.

    Servicer functions come as coroutine functions (they return, or ``await context.write``)
    or as async generator functions (they yield); the wrapper is of the same kind. A plain
    function is returned unchanged: no servicer of this server has one.
    """
    if inspect.isasyncgenfunction(inner):

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            leave = await enter(request, context)
            try:
                async for item in inner(request, context):
                    yield item
            finally:
                leave()

        return stream
    if inspect.iscoroutinefunction(inner):

        async def call(request: Any, context: Any) -> Any:
            leave = await enter(request, context)
            try:
                return await inner(request, context)
            finally:
                leave()

        return call
    return inner
