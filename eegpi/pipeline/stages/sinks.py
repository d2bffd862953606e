"""Sinks: where blocks leave the pipeline.

``websocket_sink`` hands each block to the broker under a topic. The hand-off is the
non-blocking, bounded publisher from the stage context, so a slow network never reaches back
into the pipeline thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from eegpi.pipeline.registry import register
from eegpi.pipeline.stage import Stage, StageContext, TopicPublisher
from eegpi.stream import Block, StreamMeta

__all__ = ["WebSocketSink", "WebSocketSinkParams"]

_TOPIC_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class WebSocketSinkParams:
    topic: str

    def __post_init__(self) -> None:
        if not _TOPIC_RE.match(self.topic):
            raise ValueError(
                f"topic: {self.topic!r} is not a valid topic name "
                "(1-64 letters, digits, '_', '-', '.')"
            )


@register
class WebSocketSink(Stage):
    """Publishes its input to WebSocket subscribers of ``topic``."""

    type_name = "websocket_sink"
    Params = WebSocketSinkParams
    output_ports: ClassVar[tuple[str, ...]] = ()
    topic_param = "topic"

    params: WebSocketSinkParams

    def __init__(self, name: str, params: WebSocketSinkParams) -> None:
        super().__init__(name, params)
        self._publisher: TopicPublisher | None = None

    def open(self, inputs: Mapping[str, StreamMeta], ctx: StageContext) -> Mapping[str, StreamMeta]:
        self._publisher = ctx.publisher
        ctx.publisher.declare(self.params.topic, inputs["in"])
        return {}

    def process(self, inputs: Mapping[str, Block]) -> Mapping[str, Block]:
        block = inputs["in"]
        if block.n_samples and self._publisher is not None:
            self._publisher.publish(self.params.topic, block)
        return {}

    def patience_ms(self) -> float | None:
        publisher = self._publisher
        return None if publisher is None else publisher.patience_ms(self.params.topic)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.retract(self.params.topic)
            self._publisher = None
