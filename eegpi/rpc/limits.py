"""Per-method caps on concurrent calls, so long-lived streams cannot lock out control and health.

gRPC's own ``maximum_concurrent_rpcs`` counts every call alike: 64 idle WatchStatus streams used
to take every slot, after which GetStatus, StopPipeline and even Health/Check were refused. Here
each kind of call has its own cap, and the server-wide limit is set above their sum
(:data:`SERVER_LIMIT`), so Health/Check always finds room whatever the streams and control calls
hold. A call over its cap is refused at once with RESOURCE_EXHAUSTED naming the cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from eegpi.rpc.handlers import behaviour_of, same_shape, wrapped

__all__ = [
    "CONTROL_CALLS",
    "HEALTH_CHECK_HEADROOM",
    "HEALTH_WATCHES",
    "REFLECTION_STREAMS",
    "SERVER_LIMIT",
    "WATCH_STREAMS",
    "CallLimitInterceptor",
    "Cap",
    "cap_for",
]


@dataclass(frozen=True)
class Cap:
    what: str
    """What is counted, as the refusal names it."""
    limit: int
    advice: str


WATCH_STREAMS = Cap("WatchStatus streams", 32, "close one, or poll GetStatus instead")
HEALTH_WATCHES = Cap("Health/Watch streams", 32, "close one, or poll Health/Check instead")
REFLECTION_STREAMS = Cap("reflection streams", 16, "try again when a grpcurl call has ended")
CONTROL_CALLS = Cap("control calls in flight", 64, "try again in a moment")

HEALTH_CHECK_HEADROOM = 64
"""Slots only Health/Check (uncapped) and calls being refused can use."""
SERVER_LIMIT = (
    WATCH_STREAMS.limit
    + HEALTH_WATCHES.limit
    + REFLECTION_STREAMS.limit
    + CONTROL_CALLS.limit
    + HEALTH_CHECK_HEADROOM
)
"""The server's ``maximum_concurrent_rpcs``: beyond it even Health/Check is refused."""

_BY_METHOD: dict[str, Cap] = {
    "/eegpi.v1.PipelineControl/WatchStatus": WATCH_STREAMS,
    "/grpc.health.v1.Health/Watch": HEALTH_WATCHES,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": REFLECTION_STREAMS,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": REFLECTION_STREAMS,
}
_CONTROL_PREFIXES = ("/eegpi.v1.",)


def cap_for(method: str) -> Cap | None:
    """The cap ``method`` counts against; None for Health/Check (bounded by the server only)."""
    cap = _BY_METHOD.get(method)
    if cap is None and method.startswith(_CONTROL_PREFIXES):
        cap = CONTROL_CALLS
    return cap


class CallLimitInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts calls in flight per :class:`Cap`; refuses the one over its cap.

    Every count changes on the event loop, so check-and-increment needs no lock.
    """

    def __init__(self) -> None:
        self.in_flight: dict[Cap, int] = {}

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        cap = cap_for(handler_call_details.method)
        if handler is None or cap is None:
            return handler
        return same_shape(handler, wrapped(behaviour_of(handler), self._enter(cap)))

    def _enter(self, cap: Cap) -> Callable[[Any, Any], Awaitable[Callable[[], None]]]:
        async def enter(request: Any, context: Any) -> Callable[[], None]:
            if self.in_flight.get(cap, 0) >= cap.limit:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"too many {cap.what} ({cap.limit}); {cap.advice}",
                )
            self.in_flight[cap] = self.in_flight.get(cap, 0) + 1

            def leave() -> None:
                self.in_flight[cap] -= 1

            return leave

        return enter
