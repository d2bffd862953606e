"""`python -m bench` (or `make bench`): every benchmark once, figures printed.

python -m bench            # the full set (about 3 minutes)
python -m bench --quick    # shorter runs, for a first look
"""

from __future__ import annotations

import argparse

from bench import network, pipeline, realtime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs")
    args = ap.parse_args()
    seconds = 10.0 if args.quick else 60.0

    print("== pipeline stages against bare numpy/scipy ==")
    pipeline.main(["--seconds", str(seconds)])
    print()
    print("== real-time acquisition through the default pipeline (emulated chip) ==")
    realtime.main(["--rate", "16000", "--seconds", str(seconds), "--floor-seconds", "0"])
    print()
    print("== DRDY-to-client latency and WebSocket fan-out (one stalled client) ==")
    network.main(["--rate", "250", "--clients", "20", "--seconds", str(min(seconds, 20.0))])
    network.main(
        [
            "--rate",
            "16000",
            "--clients",
            "10",
            "--format",
            "binary",
            "--seconds",
            str(min(seconds, 20.0)),
        ]
    )


if __name__ == "__main__":
    main()
