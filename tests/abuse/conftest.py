"""A daemon under abuse, watched by a well-behaved client.

Every abuse test runs against a real ``eegpi serve --mock`` with the default pipeline streaming
to a healthy WebSocket client that reads everything. At teardown the pipeline is stopped and the
client's view is compared with the device's own accounting: every ``seq`` gap the client saw
must be a conversion the device counted as dropped, the broker must never have dropped a sample
on the way to it (no ``{"lagged": n}`` notice, no hand-off loss), and the daemon must still
answer. So whatever a test throws at the appliance, it is shown to cost a well-behaved client
nothing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import websockets
import yaml

from eegpi.v1 import control_pb2, control_pb2_grpc
from tests.conftest import REPO, Daemon, start_daemon

__all__ = ["HealthyClient", "grpc_metadata"]

WATCHED_TOPIC = "eeg_voltage"
PIPELINE = "default"
_WAIT_S = 30.0


def grpc_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


@dataclass
class HealthyClient:
    """Reads one topic as fast as it arrives, on a thread with its own event loop."""

    url: str
    token: str | None = None
    runs: list[tuple[int, int]] = field(default_factory=list)
    """(seq, samples) of every data message, in arrival order."""
    lagged: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _subscribed: threading.Event = field(default_factory=threading.Event)
    _data: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="healthy-client", daemon=True)
        self._thread.start()
        if not self._subscribed.wait(_WAIT_S):
            raise AssertionError(f"healthy client never subscribed: {self.errors}")

    def _main(self) -> None:
        try:
            asyncio.run(self._read())
        except Exception as exc:  # reported by the teardown check
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._subscribed.set()
            with self._data:
                self._data.notify_all()

    async def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with websockets.connect(
            self.url, additional_headers=headers, max_size=2**22, open_timeout=_WAIT_S
        ) as ws:
            await ws.send(json.dumps({"subscribe": WATCHED_TOPIC}))
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                msg = json.loads(raw)
                if msg.get("subscribed") == WATCHED_TOPIC:
                    self._subscribed.set()
                elif msg.get("topic") == WATCHED_TOPIC:
                    with self._data:
                        self.runs.append((int(msg["seq"]), len(msg["data"])))
                        self._data.notify_all()
                elif "lagged" in msg:
                    self.lagged.append(msg)
                elif "error" in msg:
                    self.errors.append(json.dumps(msg["error"]))

    def wait_for_samples(self, count: int, timeout: float = _WAIT_S) -> None:
        """Block until ``count`` samples have arrived (or the client ended)."""
        with self._data:
            ok = self._data.wait_for(
                lambda: self.received >= count or not self.alive, timeout=timeout
            )
        if not ok or self.received < count:
            raise AssertionError(
                f"healthy client got {self.received} of {count} samples; errors {self.errors}"
            )

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def received(self) -> int:
        return sum(n for _, n in self.runs)

    @property
    def gaps(self) -> int:
        """Samples missing between the first slot (0) and the last sample received."""
        if not self.runs:
            return 0
        seq, n = self.runs[-1]
        return seq + n - self.received

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_WAIT_S)


@dataclass
class _Watched:
    daemon: Daemon
    client: HealthyClient
    token: str | None


def _stub(d: Daemon) -> tuple[grpc.Channel, control_pb2_grpc.PipelineControlStub]:
    channel = grpc.insecure_channel(d.grpc_target)
    return channel, control_pb2_grpc.PipelineControlStub(channel)


def _healthz(d: Daemon, token: str | None) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{d.ws_port}/healthz")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=_WAIT_S) as reply:
        body: dict[str, Any] = json.loads(reply.read())
    return body


def _settle(w: _Watched) -> None:
    """Stop the pipeline and hold the healthy client's view against the device's count."""
    d, client, token = w.daemon, w.client, w.token
    assert d.proc.poll() is None, "the daemon died under abuse; log:\n" + "\n".join(d.lines)
    channel, stub = _stub(d)
    with channel:
        final = stub.StopPipeline(
            control_pb2.StopPipelineRequest(name=PIPELINE),
            metadata=grpc_metadata(token),
            timeout=_WAIT_S,
        )
    client.close()
    dropped = final.samples_dropped
    stats = _healthz(d, token).get("stats", {})
    assert not client.errors, f"healthy client failed: {client.errors}"
    assert not client.lagged, f"the broker dropped data for a healthy client: {client.lagged}"
    assert stats.get("handoff_samples_dropped", 0) == 0, f"hand-off losses: {stats}"
    assert client.received > 0
    # Every gap the healthy client saw is a conversion the device counted as lost.
    assert client.gaps <= dropped, (
        f"healthy client saw {client.gaps} missing samples, the device counted {dropped}"
    )


@pytest.fixture
def abuse_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Factory: ``abuse_daemon(*serve_args, config=None, token=None, pipelines=None)``.

    Starts ``eegpi serve --mock`` (``config`` is written to a YAML file and passed with
    ``--config``; ``pipelines`` defaults to a fresh directory holding the shipped default
    pipeline), subscribes a healthy client to ``eeg_voltage``, starts the default pipeline and
    waits for its first samples. At teardown: the check described in this module's docstring.
    """
    watched: list[_Watched] = []

    def factory(
        *serve_args: str,
        config: dict[str, Any] | None = None,
        token: str | None = None,
        pipelines: Path | None = None,
    ) -> Daemon:
        base = tmp_path / f"daemon{len(watched)}"
        base.mkdir()
        args = list(serve_args)
        if config is not None:
            path = base / "eegpi.yaml"
            path.write_text(yaml.safe_dump(config))
            args += ["--config", str(path)]
        if pipelines is None:
            pipelines = base / "pipelines"
            pipelines.mkdir()
            shutil.copy(REPO / "pipelines" / "default.yaml", pipelines / "default.yaml")
        d = start_daemon(*args, pipelines=pipelines, autostart=())
        client = HealthyClient(d.ws_url, token)
        w = _Watched(d, client, token)
        try:
            client.start()
            channel, stub = _stub(d)
            with channel:
                stub.StartPipeline(
                    control_pb2.StartPipelineRequest(name=PIPELINE),
                    metadata=grpc_metadata(token),
                    timeout=_WAIT_S * 2,
                )
            client.wait_for_samples(1)
        except BaseException:
            client.close()
            d.proc.kill()
            d.proc.wait()
            raise
        watched.append(w)
        return d

    try:
        yield factory
        for w in watched:
            _settle(w)
    finally:
        for w in watched:
            w.client.close()
            w.daemon.kill()
