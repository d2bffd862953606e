"""eegpi beside the closest Python peer, pieeg-server, measured the same way in the same run.

pieeg-server (PyPI ``pieeg-server``, 0.49) streams a PiEEG's ADS1299 over WebSocket; with
``--mock`` it synthesizes the board's samples. It runs here as a user would start it for the
same job as eegpi's default pipeline: 8 channels (``--device pieeg8``), 250 SPS, its 1-40 Hz
band-pass on (``--filter``), and its 50 Hz notch, which only a client command turns on (the
first client sends ``{"cmd": "set_notch", "enabled": true, "freq": 50, "q": 30}``). Every
client receives every sample as ``{"t": unix s, "n": counter, "channels": [...]}``, so the
same clients (``bench.wsclients``) measure the same latency (``t`` is the sample's time) and
gaps (``n`` counts samples). Its dashboard and webhooks stay at their defaults (on).

It is never a dependency of eegpi: it lives in its own virtual environment,
``~/.cache/eegpi-bench/pieeg-venv``, which ``python -m bench.peers --install`` creates.

    python -m bench.peers [--install] [--clients 0,10] [--seconds 60] [--repeat 3]

Runs are interleaved (eegpi, pieeg-server, eegpi, ...), each from a fresh start; prints both
trees' figures and the ratios eegpi / pieeg-server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.tree import (
    EegpiServer,
    Running,
    RunResult,
    StderrLines,
    add_arguments,
    cells,
    client_counts,
    die_with_parent,
    first_data,
    print_results,
    run_interleaved,
    terminate,
)

__all__ = ["PIEEG_VENV", "PieegServer", "find_pieeg", "install", "main", "ratios"]

PIEEG_VERSION = "0.49.0"
PIEEG_VENV = Path.home() / ".cache" / "eegpi-bench" / "pieeg-venv"
NOTCH_50HZ = json.dumps({"cmd": "set_notch", "enabled": True, "freq": 50.0, "q": 30.0})
INSTALL_HINT = f"python -m bench.peers --install   (pip installs pieeg-server into {PIEEG_VENV})"


def find_pieeg() -> Path | None:
    """The pieeg-server executable of the bench's venv, else one on PATH, else None."""
    exe = PIEEG_VENV / "bin" / "pieeg-server"
    if exe.exists():
        return exe
    found = shutil.which("pieeg-server")
    return Path(found) if found else None


def install() -> Path:
    """Create the separate venv and pip-install pieeg-server into it (not into eegpi's)."""
    if not (PIEEG_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PIEEG_VENV)], check=True)
    subprocess.run(
        [
            str(PIEEG_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            f"pieeg-server=={PIEEG_VERSION}",
        ],
        check=True,
    )
    return PIEEG_VENV / "bin" / "pieeg-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PieegServer:
    """``pieeg-server --mock --device pieeg8 --filter`` plus its 50 Hz notch, on free ports."""

    name = "pieeg-server"

    def __init__(self, exe: Path) -> None:
        self.exe = exe

    def start(self) -> Running:
        home = Path(tempfile.mkdtemp(prefix="pieeg-bench-"))  # its recordings and rule files
        port, dashboard = _free_port(), _free_port()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [
                str(self.exe),
                "--mock",
                "--device",
                "pieeg8",
                "--filter",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-port",
                str(dashboard),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=home,
            env={**os.environ, "HOME": str(home), "COLUMNS": "200"},
            preexec_fn=die_with_parent,
        )

        def stop() -> None:
            terminate(proc)
            shutil.rmtree(home, ignore_errors=True)

        try:
            StderrLines(proc)  # drains its log so the pipe never fills
            url = f"ws://127.0.0.1:{port}"
            first_data(url, NOTCH_50HZ, lambda o: "channels" in o and "t" in o, 60.0)
            first = time.monotonic() - t0
        except BaseException:
            stop()
            raise
        return Running(proc, url, "pieeg", NOTCH_50HZ, first, stop)


def ratios(results: list[RunResult], ours: str = "eegpi", peer: str = "pieeg-server") -> list[str]:
    """eegpi / pieeg-server for CPU (whole tree), latency p50/p99, RSS and start to first data,
    one line each, per client count; medians over the repetitions."""
    table = cells(results)
    lines = []
    for (name, n), s in table.items():
        if name != ours or (peer, n) not in table:
            continue
        p = table[(peer, n)]
        lines.append(f"{n} clients: " + ", ".join(_ratio_parts(s, p)))
    return lines


def _median(values: list[Any]) -> float | None:
    vals = sorted(float(v) for v in values)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def ratio(ours: list[Any], peer: list[Any]) -> float | None:
    """median(ours) / median(peer), None when either is missing or the peer's is zero."""
    a, b = _median(ours), _median(peer)
    return None if a is None or b is None or b == 0 else a / b


def _ratio_parts(s: dict[str, Any], p: dict[str, Any]) -> list[str]:
    out = []
    for key, label in (
        ("cpu", "CPU"),
        ("p50", "latency p50"),
        ("p99", "latency p99"),
        ("rss", "RSS"),
        ("first_data", "start to first data"),
    ):
        r = ratio(s[key], p[key])
        if r is not None:
            out.append(f"{label} {r:.2f}x")
    return out


def main(argv: list[str] | None = None) -> list[RunResult]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--install", action="store_true", help=f"pip-install it into {PIEEG_VENV}")
    args = ap.parse_args(argv)
    if args.install:
        install()
    exe = find_pieeg()
    if exe is None:
        print(f"pieeg-server is not installed; skipped. To compare with it: {INSTALL_HINT}")
        return []
    results = run_interleaved(
        [
            EegpiServer(config=args.config),
            *(EegpiServer(checkout=c.resolve(), config=args.config) for c in args.against),
            PieegServer(exe),
        ],
        client_counts(args.clients),
        args.seconds,
        args.warmup,
        args.repeat,
    )
    print_results(results)
    print("eegpi / pieeg-server (medians over the runs; below 1 means eegpi uses less):")
    for line in ratios(results):
        print("  " + line)
    return results


if __name__ == "__main__":
    main()
