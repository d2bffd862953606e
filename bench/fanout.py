"""Fan-out cost per delivered message: eegpi's TopicHub against a bare ``websockets.broadcast``.

Both sides serve the same stream on 127.0.0.1 to ``N`` clients that run in a separate process,
so only the server's CPU is counted. A producer thread makes one block per tick (``--tick``
samples at ``--rate``; by default what the source's default tick gathers at that rate, the
first frame plus those due within ``tick_ms``: 3 at 250 SPS, so 83 ticks a second, as the
whole tree's clients receive) and hands it to the event loop:

- **eegpi**: through the real ``LoopPublisher`` (``publish`` then ``flush`` once per tick, as
  the pipeline runner does) into the real ``TopicHub`` and WebSocket server, subscribers at the
  default ``max_latency_ms``; the next tick cannot come within that latency, so the batching
  rule sends every tick as one message at once, and both sides send the same messages.
- **bare**: one ``call_soon_threadsafe`` per tick; the loop callback hands the tick's message,
  encoded beforehand (the bare side pays for no encoding at all), to ``websockets.broadcast``
  for the clients of a plain ``websockets.asyncio.server.serve``. This is the ratio's reference.
- **bare+encode**: the same, but the callback encodes the message first (the codec eegpi uses),
  as any real server must: what is left between it and eegpi is the broker itself.

The figure is the server process's CPU *time* (``getrusage``: user + system, every thread,
producer thread included on both sides) over the publishing phase divided by the messages the
clients received; the machine may be shared, and CPU time, unlike wall-clock throughput, does
not count what other processes take. ``ratio = bare / eegpi`` (1.0 means eegpi costs what a
bare broadcast costs; the target is at least 0.8). One run, nothing asserted.

    python -m bench.fanout [--clients 10 100] [--seconds 10] [--rate 250] [--tick 3]
                           [--format json|binary]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import websockets
from websockets.asyncio.server import ServerConnection, broadcast, serve

from eegpi.broker import LoopPublisher, TopicHub, start_ws_server
from eegpi.broker.codec import encode_binary_data, encode_json_data
from eegpi.broker.commands import DEFAULT_MAX_LATENCY_MS
from eegpi.pipeline.stages.source import Ads1299SourceParams
from eegpi.stream import Block, StreamMeta

TOPIC = "bench"
Rows = npt.NDArray[np.float64]


@dataclass
class Result:
    side: str
    clients: int
    delivered: int
    expected: int
    cpu_s: float
    wall_s: float

    @property
    def us_per_message(self) -> float:
        return 1e6 * self.cpu_s / max(1, self.delivered)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stream(channels: int, ticks: int, per_tick: int) -> list[Rows]:
    """The samples of every tick, deterministic."""
    rng = np.random.default_rng(14)
    return [rng.standard_normal((per_tick, channels)) * 20.0 for _ in range(ticks)]


def _paced(rate: float, per_tick: int, ticks: int, on_tick: Callable[[int, float], None]) -> None:
    """Call ``on_tick(i, first_sample_time)`` once the tick's newest sample is due."""
    start = time.time() + 0.05
    for i in range(ticks):
        first = start + i * per_tick / rate
        delay = first + (per_tick - 1) / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        on_tick(i, first)


async def _start_clients(url: str, n: int, mode: str, fmt: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            *("-m", "bench.fanout", "--client-of", url, "--clients", str(n)),
            *("--mode", mode, "--format", fmt),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"clients did not start: {line!r}")
    return proc


async def _finish_clients(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    out = await asyncio.to_thread(proc.stdout.read)
    await asyncio.to_thread(proc.wait, 30)
    return int(json.loads(out)["received"])


async def _run_eegpi(args: argparse.Namespace, n: int, rows: list[Rows]) -> Result:
    loop = asyncio.get_running_loop()
    hub = TopicHub()
    server = await start_ws_server(
        hub, "127.0.0.1", 0, max_clients=n + 1, max_clients_per_address=n + 1
    )
    meta = StreamMeta(float(args.rate), tuple(f"ch{i + 1}" for i in range(args.channels)), "uV")
    publisher = LoopPublisher(loop, hub)
    publisher.declare(TOPIC, meta)
    clients = await _start_clients(f"ws://127.0.0.1:{server.port}/ws/data", n, "eegpi", args.format)

    def tick(i: int, t: float) -> None:
        publisher.publish(TOPIC, Block(rows[i], i * args.tick, t, meta))
        publisher.flush()

    cpu0, wall0 = _cpu(), time.monotonic()
    await asyncio.to_thread(_paced, float(args.rate), args.tick, len(rows), tick)
    await asyncio.sleep(0.1)  # whatever may still wait leaves within max_latency_ms
    cpu, wall = _cpu() - cpu0, time.monotonic() - wall0
    expected = hub.stats.messages_encoded * n
    await hub.close()
    server.close()
    await server.wait_closed()
    delivered = await _finish_clients(clients)
    return Result("eegpi", n, delivered, expected, cpu, wall)


async def _run_bare(
    args: argparse.Namespace, n: int, rows: list[Rows], *, encode_on_loop: bool = False
) -> Result:
    loop = asyncio.get_running_loop()
    connected: set[ServerConnection] = set()

    async def handler(conn: ServerConnection) -> None:
        connected.add(conn)
        try:
            await conn.wait_closed()
        finally:
            connected.discard(conn)

    server = await serve(handler, "127.0.0.1", 0, compression=None, server_header=None)
    port = int(server.sockets[0].getsockname()[1])
    clients = await _start_clients(f"ws://127.0.0.1:{port}/ws/data", n, "bare", args.format)
    sent = 0

    encode = encode_binary_data if args.format == "binary" else encode_json_data

    def deliver(payload: str | bytes) -> None:
        nonlocal sent
        broadcast(connected, payload)
        sent += len(connected)

    def encode_and_deliver(i: int, t: float) -> None:
        deliver(encode(TOPIC, i * args.tick, t, rows[i]))

    start = time.time()
    plan = [
        encode(TOPIC, i * args.tick, start + i * args.tick / args.rate, row)
        for i, row in enumerate(rows)
    ]

    def tick(i: int, t: float) -> None:
        if encode_on_loop:
            loop.call_soon_threadsafe(encode_and_deliver, i, t)
        else:
            loop.call_soon_threadsafe(deliver, plan[i])

    cpu0, wall0 = _cpu(), time.monotonic()
    await asyncio.to_thread(_paced, float(args.rate), args.tick, len(rows), tick)
    await asyncio.sleep(0.1)
    cpu, wall = _cpu() - cpu0, time.monotonic() - wall0
    server.close()
    await server.wait_closed()
    delivered = await _finish_clients(clients)
    return Result("bare+encode" if encode_on_loop else "bare", n, delivered, sent, cpu, wall)


# ---- client process ---------------------------------------------------------------------


async def _client(url: str, mode: str, fmt: str, ready: asyncio.Event, counts: list[int]) -> None:
    slot = len(counts)
    counts.append(0)
    async with websockets.connect(url, compression=None, max_size=2**24) as ws:
        if mode == "eegpi":
            await ws.send(json.dumps({"subscribe": TOPIC, "format": fmt}))
            while True:  # the ack
                first = await ws.recv()
                if isinstance(first, str) and first.startswith('{"subscribed"'):
                    break
        ready.set()
        try:
            async for message in ws:
                if isinstance(message, bytes) or message.startswith('{"topic"'):
                    counts[slot] += 1
        except websockets.ConnectionClosed:
            pass


async def _clients_main(url: str, n: int, mode: str, fmt: str) -> None:
    counts: list[int] = []
    events = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(_client(url, mode, fmt, events[i], counts)) for i in range(n)]
    await asyncio.gather(*(e.wait() for e in events))
    await asyncio.sleep(0.2)  # the bare server registers its connections in their handlers
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps({"received": sum(counts)}), flush=True)


# ---- report -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=250)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument(
        "--tick", type=int, help="samples per tick (default: the source's default tick's)"
    )
    ap.add_argument("--format", choices=("json", "binary"), default="json")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="interleaved runs per side; the least disturbed (lowest CPU per message) counts",
    )
    ap.add_argument("--client-of", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="eegpi", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tick is None:
        args.tick = Ads1299SourceParams(sample_rate=args.rate).tick_frames
    if args.client_of:
        asyncio.run(_clients_main(args.client_of, args.clients[0], args.mode, args.format))
        return

    logging.getLogger("eegpi").setLevel(logging.ERROR)  # closing N clients warns N times
    rows = _stream(args.channels, int(args.seconds * args.rate / args.tick), args.tick)
    print(
        f"fan-out: {args.rate} SPS x {args.channels} ch, {args.tick} samples per tick, "
        f"{args.format}, max_latency_ms {DEFAULT_MAX_LATENCY_MS:g}, {args.seconds:g} s per run; "
        "server CPU time (getrusage, all threads) per delivered message, the lowest of "
        f"{max(1, args.repeat)} interleaved runs per side"
    )
    for n in args.clients:
        runs: dict[str, list[Result]] = {"bare": [], "bare+encode": [], "eegpi": []}
        for _ in range(max(1, args.repeat)):  # interleaved: a noisy spell hits every side
            runs["bare"].append(asyncio.run(_run_bare(args, n, rows)))
            runs["bare+encode"].append(asyncio.run(_run_bare(args, n, rows, encode_on_loop=True)))
            runs["eegpi"].append(asyncio.run(_run_eegpi(args, n, rows)))
        bare, encoding, ours = (
            min(runs[side], key=lambda r: r.us_per_message)
            for side in ("bare", "bare+encode", "eegpi")
        )
        for r in (bare, encoding, ours):
            print(
                f"  {r.side:11} {r.clients:4} clients: {r.delivered:7} delivered "
                f"(of {r.expected}), CPU {r.cpu_s:6.2f} s in {r.wall_s:5.1f} s wall, "
                f"{r.us_per_message:6.1f} us/message"
            )
        print(
            f"  ratio bare/eegpi at {n} clients: {bare.us_per_message / ours.us_per_message:.2f}"
            f" (bare+encode/eegpi {encoding.us_per_message / ours.us_per_message:.2f})"
        )


if __name__ == "__main__":
    main()
