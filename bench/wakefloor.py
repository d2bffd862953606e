"""The host's price of waking: bare Python threads that wake as often as eegpi's do, and nothing
else.

At 250 SPS the tree's threads wake about 250 times a second (the acquisition process, once per
DRDY edge), 83 times (the pipeline thread, once per 12 ms tick) and, with clients, 83 times more
(the event loop, once per tick). Each wake-up costs CPU time whatever the thread then does: the
scheduler, the futex, the GIL and, on a virtual machine, waking an idle virtual CPU, which is
charged to the thread that wakes. This runs threads that keep exactly that cadence in a process
of their own, for the same window and under the same load as the tree, so the report can say
how much of the tree's CPU is the host's floor for that cadence and how much is eegpi's work.

    python -m bench.wakefloor                   # 250 + 83 + 83 wake-ups a second, 15 s
    python -m bench.wakefloor --rates 250 83 --seconds 30
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

__all__ = ["RATES_0_CLIENTS", "RATES_10_CLIENTS", "main", "measure"]

RATES_0_CLIENTS = (250.0, 250.0 / 3)
"""The acquisition process's DRDY and the pipeline's ticks (3 frames a tick at 250 SPS)."""
RATES_10_CLIENTS = (250.0, 250.0 / 3, 250.0 / 3)
"""... and the event loop, woken once a tick when clients watch."""

_CHILD = textwrap.dedent(
    """
    import resource, sys, threading, time
    rates = [float(r) for r in sys.argv[2:]]
    seconds = float(sys.argv[1])
    stop = threading.Event()

    def tick(rate):
        period, due = 1.0 / rate, time.monotonic()
        while not stop.is_set():
            due += period
            left = due - time.monotonic()
            if left > 0:
                stop.wait(left)

    threads = [threading.Thread(target=tick, args=(r,), daemon=True) for r in rates]
    for t in threads:
        t.start()
    time.sleep(1.0)  # the threads settle into their cadence
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    time.sleep(seconds)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    stop.set()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(100.0 * cpu / (t1 - t0))
    """
)


def measure(rates: tuple[float, ...], seconds: float) -> float:
    """CPU time (% of one core) of a process whose threads only wake at ``rates`` per second."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(seconds), *map(str, rates)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return float(done.stdout.strip())


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=list(RATES_10_CLIENTS))
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args(argv)
    rates = tuple(args.rates)
    pct = measure(rates, args.seconds)
    shown = " + ".join(f"{r:g}" for r in rates)
    print(f"threads waking {shown} times a second, doing nothing else: {pct:.2f} % of one core")
    return pct


if __name__ == "__main__":
    main()
