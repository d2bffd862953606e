"""DRDY-to-client latency and WebSocket fan-out, against a real `eegpi serve --mock` process.

Starts the daemon on the real-time emulator with a pipeline like the default one at ``--rate``,
then connects ``--clients`` WebSocket clients to ``eeg_filtered`` plus one client that subscribes
and never reads (a stalled browser tab). For every message a fast client receives it records
the latency from the DRDY edge of the message's newest sample (the ``timestamp`` of the first
sample plus its offset in the message) to the moment the client decoded it, and counts ``seq``
gaps. Prints latency percentiles, messages/s held and losses. One run, nothing asserted.

    python -m bench.network [--rate 250] [--clients 20] [--seconds 20] [--format json|binary]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from bench.tree import die_with_parent
from eegpi.broker import decode_binary_data

PIPELINE = """\
name: bench
stages:
  - {{name: acquire, type: ads1299_source, params: {{sample_rate: {rate}, gain: 24}}}}
  - {{name: to_voltage, type: to_voltage, inputs: [acquire]}}
  - {{name: filter, type: bandpass, params: {{low_hz: 1.0, high_hz: 40.0}}, inputs: [to_voltage]}}
  - {{name: notch, type: notch, params: {{freq_hz: 50.0}}, inputs: [filter]}}
  - {{name: sink, type: websocket_sink, params: {{topic: eeg_filtered}}, inputs: [notch]}}
"""
READY = re.compile(r"eegpi ready: grpc [\d.]+:\d+, websocket ws://[^:]+:(\d+)/ws/data")


@dataclass
class ClientStats:
    messages: int = 0
    samples: int = 0
    gap_samples: int = 0
    lagged: int = 0
    latencies_ms: list[float] = field(default_factory=list)


async def _fast_client(url: str, fmt: str, rate: float, stop: asyncio.Event) -> ClientStats:
    st = ClientStats()
    next_seq: int | None = None
    async with websockets.connect(url, max_size=2**24, compression=None) as ws:
        await ws.send(json.dumps({"subscribe": "eeg_filtered", "format": fmt}))
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            now = time.time()
            if isinstance(raw, bytes):
                msg = decode_binary_data(raw)
                seq, ts, n = msg.seq, msg.timestamp, int(msg.data.shape[0])
            else:
                obj = json.loads(raw)
                if "lagged" in obj:
                    st.lagged += 1
                if "topic" not in obj:
                    continue
                seq, ts, n = obj["seq"], obj["timestamp"], len(obj["data"])
            if next_seq is not None and seq > next_seq:
                st.gap_samples += seq - next_seq
            next_seq = seq + n
            st.messages += 1
            st.samples += n
            st.latencies_ms.append((now - (ts + (n - 1) / rate)) * 1000)
    return st


async def _stalled_client(url: str, stop: asyncio.Event) -> None:
    sock = socket.create_connection(("127.0.0.1", int(url.split(":")[2].split("/")[0])))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    async with websockets.connect(url, sock=sock, compression=None) as ws:
        await ws.send(json.dumps({"subscribe": "eeg_filtered"}))
        await stop.wait()  # never reads: its queue fills, the broker drops and finally closes it


async def _run(url: str, args: argparse.Namespace) -> list[ClientStats]:
    stop = asyncio.Event()
    fast = [
        asyncio.create_task(_fast_client(url, args.format, args.rate, stop))
        for _ in range(args.clients)
    ]
    stalled = asyncio.create_task(_stalled_client(url, stop))
    await asyncio.sleep(args.seconds)
    stop.set()
    stalled.cancel()
    return await asyncio.gather(*fast)


def run(
    rate: int, clients: int, seconds: float, fmt: str = "json", pipeline: str = PIPELINE
) -> dict[str, Any]:
    """One run against a fresh daemon; returns the figures ``main`` prints (latencies in ms)."""
    args = argparse.Namespace(rate=rate, clients=clients, seconds=seconds, format=fmt)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench.yaml").write_text(pipeline.format(rate=rate))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eegpi",
                "serve",
                "--mock",
                "--grpc",
                "127.0.0.1:0",
                "--ws",
                "127.0.0.1:0",
                "--pipelines",
                tmp,
                "--autostart",
                "bench",
            ],
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent,
        )
        try:
            assert proc.stderr is not None
            port = None
            for line in proc.stderr:
                m = READY.search(line)
                if m:
                    port = int(m.group(1))
                    break
            if port is None:
                raise SystemExit("the daemon did not start")
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # never fills
            url = f"ws://127.0.0.1:{port}/ws/data"
            stats = asyncio.run(_run(url, args))
        finally:
            proc.terminate()
            proc.wait(30)
    lat = np.concatenate([np.asarray(s.latencies_ms) for s in stats]) if stats else np.zeros(0)
    msgs = sum(s.messages for s in stats)
    out: dict[str, Any] = {
        "messages": msgs,
        "samples": sum(s.samples for s in stats),
        "gap_samples": sum(s.gap_samples for s in stats),
        "lagged": sum(s.lagged for s in stats),
    }
    if lat.size:
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        out.update(p50=float(p50), p90=float(p90), p99=float(p99), max=float(lat.max()))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=250)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--format", choices=("json", "binary"), default="json")
    args = ap.parse_args(argv)
    r = run(args.rate, args.clients, args.seconds, args.format)
    msgs = r["messages"]
    print(
        f"network: {args.rate} SPS, {args.clients} fast {args.format} clients + 1 stalled, "
        f"{args.seconds:.0f} s"
    )
    print(
        f"  messages received : {msgs} ({msgs / args.seconds:,.0f}/s in all, "
        f"{msgs / args.seconds / max(1, args.clients):,.1f}/s per client)"
    )
    print(f"  samples per msg   : {r['samples'] / max(1, msgs):.1f}")
    print(
        f"  fast-client loss  : {r['gap_samples']} samples in seq gaps, "
        f"{r['lagged']} lagged notices"
    )
    if "p99" in r:
        print(
            f"  DRDY->client (ms) : p50 {r['p50']:.1f}  p90 {r['p90']:.1f}  p99 {r['p99']:.1f}  "
            f"max {r['max']:.1f}"
        )


if __name__ == "__main__":
    main()
