"""Bearer-token authentication for every gRPC method, health and reflection included.

Clients send ``authorization: Bearer <token>`` metadata (grpcurl: ``-H 'authorization: Bearer
...'``; the eegpi CLI: ``--token-file``, ``EEGPI_TOKEN`` or ``--token``). Anything else is
answered with UNAUTHENTICATED before the method runs. Over plaintext the token can be sniffed on
the LAN: it keeps honest neighbours out, it is not encryption.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from eegpi.exc import ConfigError
from eegpi.rpc.handlers import same_shape

__all__ = ["MISSING_TOKEN", "WRONG_TOKEN", "BearerTokenInterceptor", "bearer_metadata"]

MISSING_TOKEN = (
    "this eegpi requires a token: send metadata 'authorization: Bearer <token>' "
    "(grpcurl -H 'authorization: Bearer ...'; eegpi --token-file FILE or EEGPI_TOKEN)"
)
WRONG_TOKEN = "invalid bearer token: check the token in the daemon's config (grpc.token)"

_SCHEME = "bearer "


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that authenticates with ``token``."""
    return (("authorization", f"Bearer {token}"),)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Rejects every call whose ``authorization`` metadata does not carry the token."""

    def __init__(self, token: str) -> None:
        if not token or token != token.strip():
            raise ConfigError(
                "grpc.token: the token must be non-empty and have no surrounding whitespace"
            )
        self._token = token.encode("utf-8")

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: let gRPC answer UNIMPLEMENTED
        problem = self._problem(handler_call_details.invocation_metadata or ())
        if problem is None:
            return handler
        return _rejecting(handler, problem)

    def _problem(self, metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
        """None when the metadata authenticates, else what is wrong with it."""
        values = [value for key, value in metadata if key.lower() == "authorization"]
        if not values:
            return MISSING_TOKEN
        value = values[0]
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if not text.lower().startswith(_SCHEME):
            return MISSING_TOKEN
        offered = text[len(_SCHEME) :].strip().encode("utf-8")
        if hmac.compare_digest(offered, self._token):
            return None
        return WRONG_TOKEN


def _rejecting(handler: Any, message: str) -> Any:
    """A handler of the same shape as ``handler`` that aborts with UNAUTHENTICATED.

    Same shape, so a streaming method is refused without reading its request stream.
    """

    async def deny(request: Any, context: Any) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return same_shape(handler, deny)
