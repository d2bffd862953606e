"""The whole eegpi process tree at 250 SPS x 8 ch with N JSON clients: CPU, memory, latency.

Starts a real ``eegpi serve --mock --autostart default`` (the shipped default pipeline:
band-pass 1-40 Hz and a 50 Hz notch, two topics), connects N clients to ``eeg_filtered``
from a separate process (``bench.wsclients``, whose CPU does not count), warms up, then over
a window reads from /proc the CPU time (utime + stime) the kernel charged to the daemon and
every process below it (acquisition child, resource tracker), per process and per thread,
and their RSS and PSS. CPU time, not throughput, because the host may be running other work.
The clients report the newest-sample latency of every message (p50/p99), ``seq`` gaps and
lagged notices. Each run also times start to first data: from spawning the daemon to the
first data message on a client that connects as soon as the WebSocket port listens.

    python -m bench.tree [--clients 0,10] [--seconds 60] [--warmup 5] [--repeat 3]
                         [--also-latency-ms 20]

``--also-latency-ms 20`` adds, interleaved, the same daemon with clients that subscribe at
20 ms, as the viewer does: the pipeline then ticks as slowly as they allow.

Repetitions are interleaved (0 clients, 10 clients, 0, 10, ...); figures are printed as the
range over repetitions. One run, nothing asserted.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from websockets.sync.client import connect

from bench.proctree import Memory, TreeCpu, cpu_share, descendants, memory, snapshot

__all__ = [
    "Contender",
    "EegpiServer",
    "RunResult",
    "Running",
    "StderrLines",
    "die_with_parent",
    "label_processes",
    "main",
    "measure",
    "print_results",
    "run_interleaved",
    "span",
    "terminate",
]

REPO = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"eegpi listening: grpc [\d.]+:\d+, websocket ws://[^:]+:(\d+)/ws/data")
READY = re.compile(r"eegpi ready: grpc [\d.]+:\d+, websocket ws://[^:]+:(\d+)/ws/data")
START_TIMEOUT_S = 60.0


@dataclass
class Running:
    """A server under measurement: its root process, where clients connect, how it speaks."""

    proc: subprocess.Popen[str]
    url: str
    protocol: str  # "eegpi" or "pieeg" (bench.wsclients)
    topic: str  # eegpi: the topic; pieeg: the command the first client sends
    first_data_s: float  # spawn -> first data message on a client that connected at once
    stop: Callable[[], None]
    max_latency_ms: float | None = None  # eegpi: the clients' max_latency_ms (None: default)


class Contender(Protocol):
    """Something ``run_interleaved`` can start afresh for each run."""

    name: str

    def start(self) -> Running: ...


@dataclass
class RunResult:
    """One measured window of one server with ``clients`` clients."""

    name: str
    clients: int
    wall_s: float
    cpu: TreeCpu
    labels: dict[int, str]
    mem: dict[int, Memory]
    first_data_s: float
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def rss(self) -> float:
        return sum(m.rss for m in self.mem.values())

    @property
    def pss(self) -> float:
        return sum(m.pss for m in self.mem.values())

    def latency(self, q: float) -> float | None:
        lat = self.report.get("latencies_ms") or []
        return float(np.percentile(lat, q)) if lat else None


def label_processes(root: int, cmdlines: dict[int, str], parents: dict[int, int]) -> dict[int, str]:
    """A role for each process of the tree, from its command line: the daemon is the root;
    multiprocessing's resource tracker and forkserver by their entry points; anything else
    below the root (or forked by the forkserver) is the acquisition process."""
    labels: dict[int, str] = {}
    for pid in sorted(cmdlines, key=lambda p: (p != root, p)):
        cmd = cmdlines[pid]
        if pid == root:
            labels[pid] = "daemon"
        elif "resource_tracker" in cmd:
            labels[pid] = "resource tracker"
        elif "forkserver" in cmd and labels.get(parents.get(pid, -1)) != "forkserver":
            labels[pid] = "forkserver"
        else:
            labels[pid] = "acquisition"
    seen: dict[str, int] = {}
    for pid in sorted(labels):  # two of a kind: number them
        seen[labels[pid]] = seen.get(labels[pid], 0) + 1
        if seen[labels[pid]] > 1:
            labels[pid] += f" {seen[labels[pid]]}"
    return labels


def _parents(pids: list[int]) -> dict[int, int]:
    out = {}
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        out[pid] = int(text.rsplit(")", 1)[1].split()[1])
    return out


@contextmanager
def _clients(running: Running, n: int) -> Iterator[subprocess.Popen[str] | None]:
    if n == 0:
        yield None
        return
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.wsclients",
            "--url",
            running.url,
            "--clients",
            str(n),
            "--protocol",
            running.protocol,
            "--topic",
            running.topic,
            *(
                []
                if running.max_latency_ms is None
                else ["--max-latency-ms", str(running.max_latency_ms)]
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=die_with_parent,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"the {n} clients did not connect (exit {proc.wait(10)})")
        yield proc
    finally:
        if proc.poll() is None:
            _command(proc, "quit")
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _command(proc: subprocess.Popen[str], cmd: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(cmd + "\n")
    proc.stdin.flush()
    return proc.stdout.readline() if cmd == "report" else ""


def measure(contender: Contender, clients: int, seconds: float, warmup: float) -> RunResult:
    """Start the contender, connect the clients, warm up, measure one window, stop it."""
    running = contender.start()
    try:
        with _clients(running, clients) as cl:
            time.sleep(warmup)  # a benchmark: the window is the measurement
            if cl is not None:
                _command(cl, "mark")
            pids = descendants(running.proc.pid)
            before, w0 = snapshot(pids), time.monotonic()
            time.sleep(seconds)
            pids = sorted(set(pids) | set(descendants(running.proc.pid)))
            after, wall = snapshot(pids), time.monotonic() - w0
            report = json.loads(_command(cl, "report")) if cl is not None else {}
            mem = {pid: memory(pid) for pid in pids}
        labels = label_processes(running.proc.pid, after.cmdline, _parents(pids))
        cpu = cpu_share(before, after, wall)
        cpu.thread = {
            (pid, f"{labels.get(pid, pid)}/{name}"): v for (pid, name), v in cpu.thread.items()
        }
        return RunResult(
            contender.name, clients, wall, cpu, labels, mem, running.first_data_s, report
        )
    finally:
        running.stop()


class StderrLines:
    """Reads a child's stderr in a thread (so its pipe never fills) and finds lines in it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._done = False
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, rx: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        i = 0
        with self._cond:
            while True:
                for line in self.lines[i:]:
                    m = rx.search(line)
                    if m:
                        return m
                i = len(self.lines)
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    tail = "\n".join(self.lines[-20:])
                    raise SystemExit(f"no line /{rx.pattern}/ from the server; it said:\n{tail}")
                self._cond.wait(left)


def first_data(url: str, hello: str | None, is_data: Callable[[Any], bool], timeout: float) -> None:
    """Connect (retrying until the port accepts), send ``hello``, return at the first data
    message."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ws = connect(url, compression=None, open_timeout=timeout)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)  # polling the port, as a client waiting for a server does
    with ws:
        if hello is not None:
            ws.send(hello)
        while True:
            raw = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            obj = json.loads(raw) if isinstance(raw, str) else None
            if isinstance(obj, dict) and is_data(obj):
                return


def die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the bench dies, so no server outlives a killed run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def terminate(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EegpiServer:
    """``eegpi serve --mock --autostart default`` with the shipped default pipeline; with
    ``config``, ``eegpi serve --config FILE`` instead, on the device that file names (a Pi's
    own chip and reader, for the whole tree measured on a board)."""

    def __init__(
        self,
        pipeline: Path = REPO / "pipelines" / "default.yaml",
        checkout: Path | None = None,
        max_latency_ms: float | None = None,
        config: Path | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.checkout = checkout  # another source tree of eegpi to run instead of this one
        self.max_latency_ms = max_latency_ms  # what its clients ask for (None: the default)
        self.config = config
        self.name = "eegpi" if checkout is None else f"eegpi@{checkout}"
        if max_latency_ms is not None:
            self.name += f" ({max_latency_ms:g} ms clients)"

    def command(self, pipelines: Path) -> list[str]:
        """The daemon's command line: its ports on loopback, the default pipeline from
        ``pipelines``, and the emulated chip unless a config names the device."""
        eegpi = Path(sys.executable).parent / "eegpi"
        cmd = [str(eegpi)] if eegpi.exists() else [sys.executable, "-m", "eegpi"]
        device = ["--mock"] if self.config is None else ["--config", str(self.config)]
        return [
            *cmd,
            "serve",
            *device,
            "--autostart",
            "default",
            "--grpc",
            "127.0.0.1:0",
            "--ws",
            "127.0.0.1:0",
            "--pipelines",
            str(pipelines),
        ]

    def start(self) -> Running:
        tmp = Path(tempfile.mkdtemp(prefix="eegpi-bench-"))
        shutil.copy(self.pipeline, tmp / "default.yaml")
        env = dict(os.environ)
        if self.checkout is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(self.checkout), env.get("PYTHONPATH", "")])
        t0 = time.monotonic()
        proc = subprocess.Popen(
            self.command(tmp),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=die_with_parent,
        )

        def stop() -> None:
            terminate(proc)
            shutil.rmtree(tmp, ignore_errors=True)

        try:
            lines = StderrLines(proc)
            port = int(lines.wait_for(LISTENING, START_TIMEOUT_S).group(1))
            url = f"ws://127.0.0.1:{port}/ws/data"
            first_data(
                url,
                json.dumps({"subscribe": "eeg_filtered"}),
                lambda o: "topic" in o,
                START_TIMEOUT_S,
            )
            first = time.monotonic() - t0
            lines.wait_for(READY, START_TIMEOUT_S)
        except BaseException:
            stop()
            raise
        return Running(proc, url, "eegpi", "eeg_filtered", first, stop, self.max_latency_ms)


def run_interleaved(
    contenders: list[Contender],
    clients: list[int],
    seconds: float,
    warmup: float,
    repeat: int,
    log: Callable[[str], None] = print,
) -> list[RunResult]:
    """Every contender at every client count, ``repeat`` rounds, interleaved so a change in
    the host's load touches all of them alike."""
    out = []
    for rep in range(repeat):
        for n in clients:
            for c in contenders:
                r = measure(c, n, seconds, warmup)
                log(
                    f"  [{rep + 1}/{repeat}] {c.name}, {n} clients: {100 * r.cpu.total:.1f} % "
                    f"of a core, start to first data {r.first_data_s:.2f} s"
                )
                out.append(r)
    return out


def span(values: list[float] | list[int], fmt: str = "{:.1f}") -> str:
    """'a' or 'a-b', the range over repetitions."""
    if not values:
        return "n/a"
    lo, hi = min(values), max(values)
    return (
        fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"
    )


def summarize(results: list[RunResult]) -> dict[str, Any]:
    """Ranges over the repetitions of one (contender, clients) cell."""
    per_label: dict[str, list[float]] = {}
    per_thread: dict[str, list[float]] = {}
    rss: dict[str, list[float]] = {}
    for r in results:
        for pid, share in r.cpu.process.items():
            per_label.setdefault(r.labels.get(pid, str(pid)), []).append(100 * share)
            rss.setdefault(r.labels.get(pid, str(pid)), []).append(r.mem[pid].rss)
        for (_, name), share in r.cpu.thread.items():
            per_thread.setdefault(name, []).append(100 * share)
    lat50 = [x for r in results if (x := r.latency(50)) is not None]
    lat99 = [x for r in results if (x := r.latency(99)) is not None]
    return {
        "cpu": [100 * r.cpu.total for r in results],
        "process": per_label,
        "thread": per_thread,
        "rss_by_process": rss,
        "rss": [r.rss for r in results],
        "pss": [r.pss for r in results],
        "p50": lat50,
        "p99": lat99,
        "first_data": [r.first_data_s for r in results],
        "gaps": [r.report.get("gap_samples", 0) for r in results],
        "lagged": [r.report.get("lagged_notices", 0) for r in results],
        "messages": [r.report.get("messages", 0) / r.wall_s for r in results],
        "rate": [r.report.get("samples", 0) / r.wall_s / max(1, r.clients) for r in results],
        "window": statistics.mean(r.wall_s for r in results),
    }


def cells(results: list[RunResult]) -> dict[tuple[str, int], dict[str, Any]]:
    """``summarize`` for each (contender, clients) pair, in the order they ran."""
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.name, r.clients), []).append(r)
    return {k: summarize(v) for k, v in groups.items()}


def print_results(results: list[RunResult]) -> None:
    mb = "{:.0f}"
    for (name, n), s in cells(results).items():
        print(f"{name}, 250 SPS x 8 ch, {n} JSON clients ({len(s['cpu'])} runs):")
        print(f"  CPU, whole tree      {span(s['cpu'])} % of one core")
        for label, v in s["process"].items():
            print(
                f"    {label:<18} {span(v)} %   RSS {span(s['rss_by_process'][label], '{:.0f}')} MB"
            )
        top = sorted(s["thread"].items(), key=lambda kv: -max(kv[1]))[:8]
        for name_, v in top:
            if max(v) >= 0.05:
                print(f"      thread {name_:<30} {span(v)} %")
        print(f"  memory, whole tree   RSS {span(s['rss'], mb)} MB, PSS {span(s['pss'], mb)} MB")
        if n:
            print(
                f"  newest-sample latency p50 {span(s['p50'])} ms, p99 {span(s['p99'])} ms "
                f"({span(s['messages'], '{:.0f}')} messages/s to all clients, "
                f"{span(s['rate'], '{:.0f}')} samples/s per client)"
            )
            print(
                f"  loss at the clients  {span(s['gaps'], mb)} samples in seq gaps, "
                f"{span(s['lagged'], mb)} lagged notices"
            )
        print(f"  start to first data  {span(s['first_data'], '{:.2f}')} s")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--clients", default="0,10", help="client counts, comma-separated")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window per run")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before each window")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions")
    ap.add_argument(
        "--against",
        type=Path,
        action="append",
        default=[],
        metavar="CHECKOUT",
        help="also run the eegpi of this source tree (e.g. an older commit's `git archive`, "
        "with its generated eegpi/v1 files), interleaved with this one",
    )
    ap.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="run eegpi with this config's device (on a Pi: its chip, e.g. /etc/eegpi/eegpi.yaml) "
        "instead of the emulated chip; the ports and pipeline stay the bench's",
    )
    ap.add_argument(
        "--also-latency-ms",
        type=float,
        action="append",
        default=[],
        metavar="MS",
        help="also run this eegpi with clients that subscribe at this max_latency_ms (the "
        "viewer's is 20), interleaved with the default 10 ms",
    )


def client_counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--clients: {text!r} is not a comma-separated list of integers") from None
    if not counts or any(c < 0 for c in counts):
        raise SystemExit(f"--clients: {text!r} needs one or more counts >= 0")
    return counts


def main(argv: list[str] | None = None) -> list[RunResult]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    results = run_interleaved(
        [
            EegpiServer(config=args.config),
            *(EegpiServer(checkout=c.resolve(), config=args.config) for c in args.against),
            *(EegpiServer(max_latency_ms=ms, config=args.config) for ms in args.also_latency_ms),
        ],
        client_counts(args.clients),
        args.seconds,
        args.warmup,
        args.repeat,
    )
    print_results(results)
    return results


if __name__ == "__main__":
    main()
