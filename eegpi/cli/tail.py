"""`eegpi tail TOPIC` and the topic metadata `eegpi topics` shows, over the WebSocket API."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from eegpi.cli.errors import EXIT_FAILED, EXIT_UNREACHABLE, CliError

__all__ = ["cmd_tail", "data_url", "fetch_topic_meta", "format_data_line"]

_VALUES_SHOWN = 8
"""Channels printed per line; wider streams end with ``...``."""


def data_url(address: str) -> str:
    return f"ws://{address}/ws/data"


def _open(address: str, timeout: float, token: str | None = None) -> ClientConnection:
    url = data_url(address)
    # The same bearer token gRPC takes; in a header, so it never appears in a URL or a log.
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return connect(
            url,
            open_timeout=timeout,
            close_timeout=1,
            compression=None,
            additional_headers=headers,
        )
    except (OSError, TimeoutError):
        raise CliError(
            f"cannot reach eegpi WebSocket at {url}: is the daemon running? "
            "(systemctl status eegpi)",
            EXIT_UNREACHABLE,
        ) from None
    except InvalidStatus as exc:
        if exc.response.status_code == 401:
            hint = "give the token with --token-file or EEGPI_TOKEN" if not token else "wrong token"
            raise CliError(
                f"WebSocket at {url} requires the daemon's bearer token: {hint}", EXIT_FAILED
            ) from None
        raise CliError(f"WebSocket at {url} refused the connection: {exc}", EXIT_FAILED) from None
    except (InvalidHandshake, InvalidURI) as exc:
        raise CliError(f"WebSocket at {url} refused the connection: {exc}", EXIT_FAILED) from None


def _recv_json(ws: ClientConnection, timeout: float | None) -> dict[str, Any]:
    """The next JSON text message; binary frames (other subscriptions' format) are skipped."""
    while True:
        raw = ws.recv(timeout=timeout)
        if isinstance(raw, str):
            msg = json.loads(raw)
            if isinstance(msg, dict):
                return msg


def fetch_topic_meta(
    address: str, timeout: float, token: str | None = None
) -> dict[str, Any] | None:
    """Topic name -> meta from ``{"list_topics": true}``; None when the WebSocket is not there."""
    try:
        with _open(address, timeout, token) as ws:
            ws.send(json.dumps({"list_topics": True}))
            while True:
                msg = _recv_json(ws, timeout)
                if "topics" in msg:
                    return {t["name"]: t.get("meta") for t in msg["topics"] if "name" in t}
    except (CliError, ConnectionClosed, TimeoutError, ValueError, KeyError, TypeError):
        return None


def format_data_line(msg: dict[str, Any]) -> str:
    """``seq  n  first-sample values`` for one data message."""
    data = msg.get("data") or []
    first = data[0] if data else []
    values = " ".join(f"{v:10.2f}" for v in first[:_VALUES_SHOWN])
    more = " ..." if len(first) > _VALUES_SHOWN else ""
    return f"seq={msg.get('seq')} n={len(data)} {values}{more}"


def _describe(topic: str, meta: dict[str, Any] | None) -> str:
    if not meta:
        return f"subscribed to {topic}; waiting for data (no running pipeline publishes it yet)"
    channels = meta.get("channels") or []
    return (
        f"subscribed to {topic}: {meta.get('sample_rate')} SPS, {len(channels)} channels "
        f"({', '.join(channels[:_VALUES_SHOWN])}{' ...' if len(channels) > _VALUES_SHOWN else ''})"
        f", units {meta.get('units')}"
    )


def cmd_tail(args: argparse.Namespace) -> int:
    with _open(args.ws, args.timeout, getattr(args, "token", None)) as ws:
        ws.send(json.dumps({"subscribe": args.topic}))
        try:
            return _follow(ws, args)
        except ConnectionClosed as exc:
            raise CliError(f"eegpi closed the connection: {exc}", EXIT_FAILED) from None


def _follow(ws: ClientConnection, args: argparse.Namespace) -> int:
    try:
        ack = _recv_json(ws, args.timeout)
    except TimeoutError:
        raise CliError(
            f"no answer to the subscription within {args.timeout:g} s", EXIT_FAILED
        ) from None
    if "error" in ack:
        raise CliError(str(ack["error"].get("message", ack["error"])), EXIT_FAILED)
    if args.json:
        print(json.dumps(ack), file=sys.stderr)
    else:
        print(_describe(args.topic, ack.get("meta")), file=sys.stderr)
    received = 0
    while args.count is None or received < args.count:
        msg = _recv_json(ws, None)
        if msg.get("topic") == args.topic and "data" in msg:
            received += 1
            print(json.dumps(msg) if args.json else format_data_line(msg), flush=True)
        elif "lagged" in msg:
            samples = f" ({msg['samples']} samples)" if "samples" in msg else ""
            print(
                f"lagged: {msg['lagged']} messages{samples} dropped; this client fell behind",
                file=sys.stderr,
            )
        elif "error" in msg:
            print(f"error from eegpi: {msg['error']}", file=sys.stderr)
    return 0
