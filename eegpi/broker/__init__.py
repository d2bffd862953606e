"""WebSocket data broker: topics, per-client queues, batching, and the server on one port.

The pipeline thread publishes through :class:`LoopPublisher`; the :class:`TopicHub` on the
event loop batches and fans out; :func:`start_ws_server` serves ``/ws/data``, the viewer page
at ``/`` and ``/healthz``. The protocol is documented in docs/API.md.
"""

from __future__ import annotations

from eegpi.broker.bridge import LoopPublisher
from eegpi.broker.codec import BinaryDataMessage, decode_binary_data, encode_binary_data
from eegpi.broker.hub import TopicHub
from eegpi.broker.server import DATA_PATH, WsServer, start_ws_server
from eegpi.broker.session import BrokerStats

__all__ = [
    "DATA_PATH",
    "BinaryDataMessage",
    "BrokerStats",
    "LoopPublisher",
    "TopicHub",
    "WsServer",
    "decode_binary_data",
    "encode_binary_data",
    "start_ws_server",
]
