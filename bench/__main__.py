"""`python -m bench` (or `make bench`): every benchmark once, figures and ratios printed.

python -m bench                  # about 4 minutes: 15 s windows, one repetition
python -m bench --quick          # shorter runs, for a first look
python -m bench --full           # 60 s windows, three repetitions of each part (~25 minutes)
python -m bench --write docs/performance.md   # also write the table, with the machine
python -m bench --load 2         # two busy loops run beside the whole run (other work)

What it runs: the whole process tree at 250 SPS x 8 ch with 0 and 10 JSON clients
(``bench.tree``), beside pieeg-server when it is installed (``bench.peers``), and bare threads
waking at the tree's cadence (``bench.wakefloor``: the host's floor for it); the stages
against bare scipy at 16 kSPS blocks (``bench.pipeline``); fan-out against a bare
``websockets.broadcast`` (``bench.fanout``); the chip's limits in real time, 16 kSPS x 8 ch
and 4 kSPS x 32 ch (``bench.realtime``); latency at 16 kSPS with a stalled client
(``bench.network``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import network, peers, pipeline, realtime, tree, wakefloor
from bench.report import BusyLoops, Row, at_least, at_most, machine, render

FANOUT_CLIENTS = (10, 100)


@dataclass(frozen=True)
class Durations:
    """How long each part runs in one mode."""

    window: float  # bench.tree / bench.peers measured window
    warmup: float
    repeat: int
    signal: float  # seconds of signal through bench.pipeline
    fanout: float
    realtime: float
    network: float


MODES = {
    "quick": Durations(10.0, 3.0, 1, 10.0, 4.0, 10.0, 10.0),
    "default": Durations(15.0, 4.0, 1, 20.0, 5.0, 15.0, 15.0),
    "full": Durations(60.0, 5.0, 3, 60.0, 10.0, 60.0, 20.0),
}


def fanout_ratios(clients: tuple[int, ...], seconds: float) -> dict[int, tuple[float, float]]:
    """{clients: (bare us, eegpi us)} per delivered message, from ``bench.fanout``.

    bench.fanout prints its figures; they are read back from its output here so this stays
    correct whatever it returns. Empty if the module is missing."""
    try:
        from bench import fanout
    except ImportError:
        print("bench.fanout is not there: fan-out ratio skipped")
        return {}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fanout.main(["--clients", *map(str, clients), "--seconds", str(seconds)])
    print(buf.getvalue(), end="")
    return parse_fanout(buf.getvalue())


def fanout_rows(runs: list[dict[int, tuple[float, float]]]) -> list[Row]:
    """One row per client count over repeated ``bench.fanout`` runs: the range of the ratio
    bare / eegpi and of both sides' us per message, met only if every run met the target (one
    10 s run at 10 clients swings by a tenth: the cost that does not grow with the clients is
    close to the bare side's whole cost)."""
    rows: list[Row] = []
    for n in sorted({n for run in runs for n in run}):
        pairs = [run[n] for run in runs if n in run]
        ratios = [bare / ours for bare, ours in pairs]
        bare = tree.span([b for b, _ in pairs])
        ours = tree.span([o for _, o in pairs])
        rows.append(
            Row(
                f"fan-out per delivered message, {n} JSON clients at 250 SPS (bare / eegpi)",
                ">= 0.8",
                f"{tree.span(ratios, '{:.2f}')} ({bare} / {ours} us)",
                all(at_least(0.8)(r) for r in ratios),
            )
        )
    return rows


def parse_fanout(text: str) -> dict[int, tuple[float, float]]:
    """The ``us/message`` figures of bench.fanout's output, per client count."""
    per: dict[tuple[str, int], float] = {}
    rx = re.compile(r"^\s*(bare|eegpi)\s+(\d+) clients:.*?([\d.]+) us/message", re.M)
    for side, n, us in rx.findall(text):
        per[(side, int(n))] = float(us)
    return {
        n: (per[("bare", n)], per[("eegpi", n)])
        for (side, n) in per
        if side == "bare" and ("eegpi", n) in per
    }


def _worst(values: list[float], higher_is_better: bool = False) -> float | None:
    if not values:
        return None
    return min(values) if higher_is_better else max(values)


def _med(values: list[Any]) -> float | None:
    return statistics.median(values) if values else None


def tree_rows(results: list[tree.RunResult], with_peer: bool) -> list[Row]:
    """The 250 SPS rows: CPU, latency, memory, start, loss; with pieeg-server's ratios."""
    cells = tree.cells(results)
    rows = []
    for n, limit in ((10, 6.0), (0, 4.0)):
        s = cells.get(("eegpi", n))
        if s is None:
            continue
        parts = ", ".join(f"{label} {tree.span(v)}" for label, v in s["process"].items())
        rows.append(
            Row(
                f"whole tree CPU, 250 SPS x 8 ch, default pipeline, {n} JSON clients",
                f"<= {limit:g} % of one core",
                f"{tree.span(s['cpu'])} % ({parts})",
                at_most(limit)(_worst(s["cpu"])),
            )
        )
    s10 = cells.get(("eegpi", 10))
    if s10 is not None:
        rows.append(
            Row(
                "newest-sample latency p50 / p99, 10 clients",
                "p99 <= 15 ms",
                f"{tree.span(s10['p50'])} / {tree.span(s10['p99'])} ms",
                at_most(15.0)(_worst(s10["p99"])),
            )
        )
        gaps, lagged = sum(s10["gaps"]), sum(s10["lagged"])
        rows.append(
            Row(
                "samples missing at the 10 clients (seq gaps: lost conversions and broker "
                "drops) / lagged notices",
                "0 at 250-1000 SPS",
                f"{gaps} / {lagged} over {len(s10['gaps'])} x {s10['window']:.0f} s",
                gaps == 0 and lagged == 0,
            )
        )
    s = s10 or cells.get(("eegpi", 0))
    if s is not None:
        rows.append(
            Row(
                "memory of the whole tree, RSS (PSS)",
                "RSS <= 150 MB",
                f"{tree.span(s['rss'], '{:.0f}')} MB ({tree.span(s['pss'], '{:.0f}')} MB); "
                + ", ".join(
                    f"{label} {tree.span(v, '{:.0f}')}" for label, v in s["rss_by_process"].items()
                ),
                at_most(150.0)(_worst(s["rss"])),
            )
        )
        ours = [x for (name, _), c in cells.items() if name == "eegpi" for x in c["first_data"]]
        rows.append(
            Row(
                "start to first data (spawn to the first data message of a client that "
                "connects as soon as the port listens)",
                "<= 1.5 s",
                f"{tree.span(ours, '{:.2f}')} s",
                at_most(1.5)(_worst(ours)),
            )
        )
    if not with_peer:
        rows.append(
            Row("against pieeg-server 0.49", "", f"not installed: {peers.INSTALL_HINT}", None)
        )
        return rows
    for n in (10, 0):
        ours_c, theirs = cells.get(("eegpi", n)), cells.get(("pieeg-server", n))
        if ours_c is None or theirs is None:
            continue
        r = peers.ratio(ours_c["cpu"], theirs["cpu"])
        measured = (
            f"{r:.2f} ({_fmt(_med(ours_c['cpu']))} % / {_fmt(_med(theirs['cpu']))} %)"
            if r is not None
            else "n/a"
        )
        per_sample = peers.ratio(
            [c / max(x, 1e-9) for c, x in zip(ours_c["cpu"], ours_c["rate"], strict=True)],
            [c / max(x, 1e-9) for c, x in zip(theirs["cpu"], theirs["rate"], strict=True)],
        )
        if n and per_sample is not None:
            measured += f"; per sample delivered {per_sample:.2f}"
        rows.append(
            Row(
                f"CPU against pieeg-server, {n} clients (eegpi / pieeg-server, medians of the "
                "whole trees)",
                "<= 0.25" if n == 10 else "",
                measured,
                at_most(0.25)(r) if n == 10 else None,
            )
        )
    ours_c, theirs = cells.get(("eegpi", 10)), cells.get(("pieeg-server", 10))
    if ours_c is not None and theirs is not None:
        r50, r99 = (
            peers.ratio(ours_c["p50"], theirs["p50"]),
            peers.ratio(ours_c["p99"], theirs["p99"]),
        )
        rows.append(
            Row(
                "latency against pieeg-server, 10 clients (eegpi / pieeg-server, p50 / p99)",
                "",
                f"{_fmt(r50, '{:.2f}')} / {_fmt(r99, '{:.2f}')} (pieeg-server "
                f"{tree.span(theirs['p50'])} / {tree.span(theirs['p99'])} ms)",
            )
        )
        rows.append(
            Row(
                "pieeg-server in the same run: RSS, start to first data, missing samples, "
                "samples/s each client received (its mock sleeps a period after each sample, "
                "so it falls behind 250/s when the host is busy)",
                "",
                f"{tree.span(theirs['rss'], '{:.0f}')} MB, "
                f"{tree.span(theirs['first_data'], '{:.2f}')} s, {sum(theirs['gaps'])} samples, "
                f"{tree.span(theirs['rate'], '{:.0f}')} samples/s (eegpi "
                f"{tree.span(ours_c['rate'], '{:.0f}')})",
            )
        )
    return rows


def floor_rows(seconds: float) -> list[Row]:
    """What waking as often as the tree does costs this host by itself (``bench.wakefloor``),
    measured right after the tree, under the same load."""
    rows = []
    for n, rates in ((10, wakefloor.RATES_10_CLIENTS), (0, wakefloor.RATES_0_CLIENTS)):
        pct = wakefloor.measure(rates, seconds)
        shown = " + ".join(f"{r:.0f}" for r in rates)
        print(f"  wake-up floor, {n} clients ({shown} wake-ups/s, no work): {pct:.2f} %")
        rows.append(
            Row(
                f"the host's floor for the tree's cadence with {n} clients: bare Python threads "
                f"waking {shown} times a second, doing nothing else",
                "",
                f"{pct:.1f} % of one core",
            )
        )
    return rows


def _fmt(v: float | None, fmt: str = "{:.1f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def realtime_row(label: str, rate: int, r: dict[str, Any]) -> Row:
    """Conversions lost (target 0 at EEG rates, up to 1000 SPS) and CPU of one real-time run,
    with what the host's stalls account for when the run was witnessed."""
    slots = max(int(r["slots"]), 1)
    what = "real time" if rate <= 1000 else "the chip's limit in real time"
    host = "" if r.get("witnessed") is None else "; " + realtime.witness_summary(r, rate)
    return Row(
        f"{what}: {label}, default pipeline, acquisition process",
        "0 lost" if rate <= 1000 else "",
        f"{r['dropped']} of {r['slots']} conversions lost ({100 * r['dropped'] / slots:.3f} %, "
        f"every one counted); CPU daemon {100 * r['parent_cpu']:.0f} %, acquisition "
        f"{100 * r['child_cpu']:.0f} % of one core{host}",
        r["dropped"] == 0 if rate <= 1000 else None,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short runs")
    mode.add_argument("--full", action="store_true", help="60 s windows, 3 repetitions")
    ap.add_argument("--write", type=Path, metavar="FILE", help="write the markdown table here")
    ap.add_argument("--load", type=int, default=0, metavar="N", help="run N busy loops beside")
    ap.add_argument("--no-peers", action="store_true", help="skip pieeg-server even if installed")
    args = ap.parse_args(argv)
    if args.load < 0:
        ap.error("--load: a number of busy loops, 0 or more")
    d = MODES["quick" if args.quick else "full" if args.full else "default"]

    host = machine(args.load)
    loops = BusyLoops(args.load)
    try:
        rows, notes = _run_all(d, with_peer=not args.no_peers and peers.find_pieeg() is not None)
    finally:
        loops.stop()
        host.finish()
    print()
    print("== summary ==")
    for r in rows:
        print(
            f"  {r.figure}: {r.measured}"
            + (f"   [target {r.target}: {r.verdict}]" if r.target else "")
        )
    if args.write:
        args.write.write_text(render(host, rows, notes))
        print(f"wrote {args.write}")


def _run_all(d: Durations, with_peer: bool) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    print("== the whole tree at 250 SPS x 8 ch, 0 and 10 JSON clients ==")
    contenders: list[tree.Contender] = [tree.EegpiServer()]
    exe = peers.find_pieeg()
    if with_peer and exe is not None:
        contenders.append(peers.PieegServer(exe))
    else:
        print(f"  pieeg-server: not compared ({peers.INSTALL_HINT})")
    results = tree.run_interleaved(contenders, [0, 10], d.window, d.warmup, d.repeat)
    tree.print_results(results)
    if len(contenders) > 1:
        print("eegpi / pieeg-server (medians):")
        for line in peers.ratios(results):
            print("  " + line)
    rows += tree_rows(results, len(contenders) > 1)
    rows += floor_rows(d.window)

    print()
    print("== pipeline stages against bare numpy/scipy, 16 kSPS blocks ==")
    p = pipeline.run(16000, d.signal, 10.0)
    print(
        f"  efficiency {p['efficiency']:.2f} (bare time / eegpi time), {p['block']} samples/block"
    )
    rows.append(
        Row(
            f"framework efficiency at 16 kSPS, {p['block']}-sample blocks (bare scipy CPU time / "
            "eegpi stages' CPU time)",
            ">= 0.8",
            f"{p['efficiency']:.2f}",
            at_least(0.8)(p["efficiency"]),
        )
    )

    print()
    print("== fan-out against a bare websockets.broadcast ==")
    rows += fanout_rows([fanout_ratios(FANOUT_CLIENTS, d.fanout) for _ in range(d.repeat)])

    print()
    for label, rate, chips in (
        ("1 kSPS x 8 ch", 1000, 1),
        ("16 kSPS x 8 ch", 16000, 1),
        ("4 kSPS x 32 ch", 4000, 4),
    ):
        print(f"== real time, {label} (emulated chip{'s' if chips > 1 else ''}) ==")
        # the reader sleeps until DRDY up to 1000 SPS: the host's stalls are witnessed meanwhile
        rt = realtime.run(rate, d.realtime, "process", chips, witness=rate <= 1000)
        print(
            f"  dropped {rt['dropped']} of {rt['slots']}, CPU daemon "
            f"{100 * rt['parent_cpu']:.1f} %, acquisition {100 * rt['child_cpu']:.1f} %"
        )
        if rt["witnessed"] is not None:
            print(f"  {realtime.witness_summary(rt, rate)}")
        rows.append(realtime_row(label, rate, rt))

    print()
    print("== 16 kSPS x 8 ch to 10 binary clients and 1 stalled client ==")
    net = network.run(16000, 10, d.network, "binary")
    print(
        f"  p50 {_fmt(net.get('p50'))} ms, p99 {_fmt(net.get('p99'))} ms; fast clients: "
        f"{net['gap_samples']} samples in seq gaps, {net['lagged']} lagged notices"
    )
    rows.append(
        Row(
            "latency at 16 kSPS x 8 ch, 10 binary clients + 1 stalled (p50 / p99); loss at the "
            "fast clients (seq gaps / lagged notices)",
            "",
            f"{_fmt(net.get('p50'))} / {_fmt(net.get('p99'))} ms; "
            f"{net['gap_samples']} samples / {net['lagged']} notices",
        )
    )
    notes = [
        "A figure with a target is *met* only if every repetition met it. Ranges (a-b) are "
        "over the repetitions. Per process: `daemon` is `eegpi serve`, `acquisition` the "
        "process that reads the chip (here the emulated chip runs inside it, so its CPU "
        "includes the emulator's), `resource tracker` multiprocessing's helper when present.",
        "",
        "Reproduce: `make bench` prints these figures; `python -m bench --full --write "
        "docs/performance.md` rewrites this file; `python -m bench.peers --install` sets up "
        "pieeg-server in its own virtual environment for the side-by-side rows.",
    ]
    return rows, notes


if __name__ == "__main__":
    main()
