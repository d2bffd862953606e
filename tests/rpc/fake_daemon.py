"""Runs the real gRPC server over FakeControlPlane as a process, for CLI tests.

Prints ``PORT <n>`` once listening; exits on SIGTERM or when stdin closes (so a crashed test run
leaves nothing behind).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading

from eegpi.rpc.server import start_grpc_server
from tests.rpc.rpc_fakes import FakeControlPlane


async def run(token: str | None) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)

    def watch_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server = await start_grpc_server(FakeControlPlane(), "127.0.0.1:0", token=token)
    print(f"PORT {server.port}", flush=True)
    await done.wait()
    await server.stop(grace=1.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--token")
    asyncio.run(run(parser.parse_args().token))
