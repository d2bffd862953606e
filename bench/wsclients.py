"""WebSocket clients for the whole-tree benchmarks, run in a process of their own.

The clients' CPU must not count against the server they measure, so ``bench.tree`` and
``bench.peers`` start this module as a separate process and drive it over stdin/stdout:

    python -m bench.wsclients --url ws://127.0.0.1:PORT/ws/data --clients 10 --protocol eegpi

It prints ``ready`` once every client has received its first data message; then each line
on stdin is a command: ``mark`` starts the measured window (clears the tallies), ``report``
prints the window's tallies as one JSON line, ``quit`` closes the clients and exits.

For every data message a client records the latency of its newest sample (the message's
timestamp plus the newest sample's offset, against this process's wall clock when decoded),
sequence gaps (samples the server skipped) and lagged notices (messages the server dropped
for this client and said so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

__all__ = ["Tally", "main"]


@dataclass
class Tally:
    """What one client saw: messages, samples, samples missing from the sequence, lag notices,
    and the newest-sample latency of each data message in ms."""

    rate: float = 250.0
    messages: int = 0
    samples: int = 0
    gap_samples: int = 0
    lagged_notices: int = 0
    lagged_samples: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    next_seq: int | None = None

    def clear(self) -> None:
        """Start a new window; the sequence position is kept so no gap is invented."""
        self.messages = self.samples = self.gap_samples = 0
        self.lagged_notices = self.lagged_samples = 0
        self.latencies_ms = []

    def _data(self, seq: int, n: int, newest_ts: float, now: float) -> None:
        if self.next_seq is not None and seq > self.next_seq:
            self.gap_samples += seq - self.next_seq
        self.next_seq = seq + n
        self.messages += 1
        self.samples += n
        self.latencies_ms.append((now - newest_ts) * 1000.0)

    def eegpi(self, obj: dict[str, Any], now: float) -> bool:
        """One eegpi JSON message; True if it carried data.

        ``seq`` numbers samples, ``timestamp`` is the first sample's time, ``data`` a list of
        samples; the ack's ``meta.sample_rate`` gives the spacing of the samples."""
        if "lagged" in obj:
            self.lagged_notices += 1
            self.lagged_samples += int(obj.get("samples", 0))
            return False
        meta = obj.get("meta")
        if "subscribed" in obj and isinstance(meta, dict):
            self.rate = float(meta["sample_rate"])
            return False
        if "topic" not in obj:
            return False
        n = len(obj["data"])
        self._data(int(obj["seq"]), n, float(obj["timestamp"]) + (n - 1) / self.rate, now)
        return True

    def pieeg(self, obj: dict[str, Any], now: float) -> bool:
        """One pieeg-server message: ``{"t": unix s, "n": counter, "channels": [...]}``, one
        sample each; ``n`` counts samples from 1."""
        if "channels" not in obj or "t" not in obj:
            return False
        self._data(int(obj["n"]), 1, float(obj["t"]), now)
        return True

    def report(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "samples": self.samples,
            "gap_samples": self.gap_samples,
            "lagged_notices": self.lagged_notices,
            "lagged_samples": self.lagged_samples,
            "latencies_ms": [round(x, 3) for x in self.latencies_ms],
        }


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-client reports into one (latencies concatenated)."""
    out: dict[str, Any] = {
        "clients": len(reports),
        "messages": 0,
        "samples": 0,
        "gap_samples": 0,
        "lagged_notices": 0,
        "lagged_samples": 0,
        "latencies_ms": [],
    }
    for r in reports:
        for key in ("messages", "samples", "gap_samples", "lagged_notices", "lagged_samples"):
            out[key] += r[key]
        out["latencies_ms"] += r["latencies_ms"]
    return out


async def _client(
    url: str,
    protocol: str,
    topic: str,
    tally: Tally,
    first: asyncio.Event,
    stop: asyncio.Event,
    max_latency_ms: float | None = None,
) -> None:
    async with websockets.connect(url, max_size=2**24, compression=None) as ws:
        if protocol == "eegpi":
            request: dict[str, Any] = {"subscribe": topic}
            if max_latency_ms is not None:
                request["max_latency_ms"] = max_latency_ms
            await ws.send(json.dumps(request))
        elif protocol == "pieeg" and topic:  # a server-wide command, e.g. the notch filter
            await ws.send(topic)
        handle = tally.eegpi if protocol == "eegpi" else tally.pieeg
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            now = time.time()
            if isinstance(raw, bytes):
                continue
            obj = json.loads(raw)
            if isinstance(obj, dict) and handle(obj, now):
                first.set()


async def _run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    tallies = [Tally() for _ in range(args.clients)]
    firsts = [asyncio.Event() for _ in range(args.clients)]
    tasks = []
    for i, (tally, first) in enumerate(zip(tallies, firsts, strict=True)):
        # pieeg-server: the first client sends the one server-wide command (e.g. the notch)
        topic = args.topic if args.protocol == "eegpi" or i == 0 else ""
        tasks.append(
            asyncio.create_task(
                _client(args.url, args.protocol, topic, tally, first, stop, args.max_latency_ms)
            )
        )
    pending: set[asyncio.Future[Any]] = {asyncio.ensure_future(f.wait()) for f in firsts}
    deadline = time.monotonic() + 60.0
    while pending:
        done, pending = await asyncio.wait(
            pending | set(tasks),
            timeout=max(0.0, deadline - time.monotonic()),
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in tasks:
            if task.done():
                raise SystemExit(f"a client ended before the window: {task.exception()!r}")
        if not done:
            raise SystemExit("not every client received data within 60 s")
        pending -= set(tasks)
    print("ready", flush=True)
    while True:
        line = (await asyncio.to_thread(sys.stdin.readline)).strip()
        if line == "mark":
            for tally in tallies:
                tally.clear()
        elif line == "report":
            print(json.dumps(merge([t.report() for t in tallies])), flush=True)
        else:  # "quit" or stdin closed
            break
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--protocol", choices=("eegpi", "pieeg"), default="eegpi")
    ap.add_argument(
        "--topic",
        default="eeg_filtered",
        help="eegpi: the topic to subscribe; pieeg: a JSON command the first client sends",
    )
    ap.add_argument(
        "--max-latency-ms",
        type=float,
        default=None,
        help="eegpi: the subscription's max_latency_ms (default: the broker's, 10)",
    )
    asyncio.run(_run(ap.parse_args(argv)))


if __name__ == "__main__":
    main()
