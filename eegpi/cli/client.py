"""The CLI's gRPC client: one channel, the token, a deadline on every call, errors as CliError."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

import grpc

from eegpi.cli.errors import EXIT_FAILED, EXIT_UNREACHABLE, CliError
from eegpi.rpc.auth import bearer_metadata
from eegpi.rpc.servicer import ERROR_KIND_KEY
from eegpi.v1 import control_pb2_grpc, device_pb2_grpc

__all__ = ["ControlClient", "unreachable_message"]

_R = TypeVar("_R")


def unreachable_message(target: str) -> str:
    return f"cannot reach eegpi at {target}: is the daemon running? (systemctl status eegpi)"


class ControlClient:
    """Calls PipelineControl and Device on the daemon at ``target`` (HOST:PORT)."""

    def __init__(self, target: str, *, token: str | None, timeout: float) -> None:
        self.target = target
        self._timeout = timeout
        self._metadata = bearer_metadata(token) if token else ()
        self._channel = grpc.insecure_channel(target)
        # The generated stubs carry no annotations.
        self.pipelines: Any = control_pb2_grpc.PipelineControlStub(self._channel)  # type: ignore[no-untyped-call]
        self.device: Any = device_pb2_grpc.DeviceStub(self._channel)  # type: ignore[no-untyped-call]

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._channel.close()

    def call(
        self,
        method: Callable[..., _R],
        request: Any,
        *,
        timeout: float | None = None,
        on_deadline: str | None = None,
    ) -> _R:
        """``method(request)`` with the deadline and token; RPC errors become CliError.

        ``timeout`` replaces the per-call deadline; ``on_deadline`` is then the message when it
        passes (the daemon answered before, so it is not unreachable, only slow).
        """
        try:
            return method(request, timeout=timeout or self._timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise self._cli_error(err, on_deadline) from None

    def stream(
        self, method: Callable[..., Any], request: Any, *, timeout: float, on_deadline: str
    ) -> Generator[Any, None, None]:
        """The messages of a server-streaming ``method``; cancelled when the caller stops."""
        call = method(request, timeout=timeout, metadata=self._metadata)
        try:
            yield from call
        except grpc.RpcError as err:
            raise self._cli_error(err, on_deadline) from None
        finally:
            call.cancel()

    def _cli_error(self, err: Any, on_deadline: str | None = None) -> CliError:
        code: grpc.StatusCode = err.code()
        details: str = err.details() or code.name
        from_daemon = any(key == ERROR_KIND_KEY for key, _ in (err.trailing_metadata() or ()))
        if not from_daemon and code is grpc.StatusCode.UNAVAILABLE:
            return CliError(unreachable_message(self.target), EXIT_UNREACHABLE)
        if not from_daemon and code is grpc.StatusCode.DEADLINE_EXCEEDED and on_deadline:
            return CliError(on_deadline, EXIT_FAILED)
        if not from_daemon and code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return CliError(
                f"eegpi at {self.target} did not answer within {self._timeout:g} s: is the daemon "
                "running? (systemctl status eegpi; --timeout to wait longer)",
                EXIT_UNREACHABLE,
            )
        return CliError(f"{details} ({code.name})", EXIT_FAILED)
