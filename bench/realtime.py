"""The whole default pipeline in real time on the emulated ADS1299: frames read, dropped, CPU.

Loads ``pipelines/default.yaml`` with the sample rate overridden and runs it through the real
``PipelineRunner`` (source -> to_voltage -> bandpass -> notch, both websocket sinks publishing
to a publisher that discards), so the pipeline thread competes with acquisition exactly as in
the daemon, minus the network. The emulator runs in real time: DRDY falls at the programmed
rate in wall-clock time and a late read costs conversions as on a board.

    python -m bench.realtime                          # 16000 SPS, 60 s, acquisition process
    python -m bench.realtime --rate 8000 --seconds 10 --acquisition thread
    python -m bench.realtime --rate 250 --seconds 600 --load 1   # beside one CPU-bound process
    python -m bench.realtime --rate 250 --seconds 60 --page-out 100  # under memory pressure

Prints one run's figures; nothing is asserted. Before the run it measures the host's floor: at
1000 SPS and slower, where the reader sleeps at SCHED_FIFO until DRDY, how often a bare thread
sleeping the same way wakes more than one period late; faster, where the emulator busy-waits, how
often a bare busy loop is kept off the CPU for longer than one period (a VM or a shared host
does this; no acquisition design can read a frame while the host runs something else).
At 1000 SPS and slower it also watches the host *during* the run (:mod:`bench.witness`: a
SCHED_FIFO sleeper per CPU, just below the reader's priority) and says how many of the run's
loss gaps fell within a stall the witnesses saw too.

``--page-out MS`` makes the kernel reclaim every page of the acquisition process every MS ms
(``process_madvise(MADV_PAGEOUT)``, Linux 5.10 and later, as root), as memory pressure on a
Pi does, and counts the process's major faults: pages it then waited for from swap or disk.
Anonymous pages are only reclaimed where swap is on (``swapon --show``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any

from bench.proctree import parse_kb
from bench.report import BusyLoops
from bench.witness import Gap, Witnessed, Witnesses, explained, sleep_to_boundaries
from eegpi.broker.commands import DEFAULT_MAX_LATENCY_MS
from eegpi.hardware.acquisition import SLEEPER_PRIORITY
from eegpi.hardware.config import AcquisitionMode, DeviceConfig, EmulatorConfig, ReaderKind
from eegpi.pipeline.runner import PipelineRunner
from eegpi.pipeline.spec import parse_pipeline
from eegpi.pipeline.stage import NullPublisher, StageContext
from eegpi.pipeline.stages.source import Ads1299Source
from eegpi.safe_yaml import load_yaml_file
from eegpi.stream import Block

__all__ = ["SPECIAL_MAPPINGS", "PageOut", "main", "page_out", "run", "witness_summary"]

DEFAULT_PIPELINE = Path(__file__).resolve().parent.parent / "pipelines" / "default.yaml"


class _CountingPublisher(NullPublisher):
    """Counts the blocks and notes the loss gaps of one topic (with the CLOCK_MONOTONIC time
    of each gap's first lost conversion), and ticks as for clients watching at the default
    latency."""

    def __init__(self, rate: int) -> None:
        self.blocks = 0
        self.gaps: list[Gap] = []
        self._rate = rate
        self._topic: str | None = None
        self._next_seq = 0
        self._unix_minus_mono_s = time.time() - time.monotonic()

    def publish(self, topic: str, block: Block) -> None:
        self.blocks += 1
        if self._topic is None:
            self._topic, self._next_seq = topic, block.seq
        if topic != self._topic or block.n_samples == 0:
            return
        lost = block.seq - self._next_seq
        if lost > 0:
            first_lost = block.timestamp - lost / self._rate - self._unix_minus_mono_s
            self.gaps.append(Gap(int(first_lost * 1e9), lost))
        self._next_seq = block.end_seq

    def patience_ms(self, topic: str) -> float | None:
        return DEFAULT_MAX_LATENCY_MS  # the pipeline ticks at tick_ms


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pid_cpu_s(pid: int | None) -> float:
    """utime + stime of another process, from /proc (0 when it is unknown or gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_stalls(seconds: float, period_s: float) -> tuple[int, float]:
    """The host's own floor: how often a bare busy loop (as the emulator's DRDY wait is) is
    kept off the CPU for longer than one sample period, and the longest such stall."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -15)  # as the acquisition thread asks for
    limit = int(period_s * 1e9)
    end = time.monotonic_ns() + int(seconds * 1e9)
    last = time.monotonic_ns()
    count, longest = 0, 0
    while last < end:
        now = time.monotonic_ns()
        if now - last > limit:
            count += 1
            longest = max(longest, now - last)
        last = now
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    return count, longest / 1e3


def sleeper_lateness(seconds: float, period_s: float) -> tuple[int, float]:
    """The host's floor for a reader that sleeps until DRDY: a bare thread at the reader's
    SCHED_FIFO priority sleeps to each period boundary; how often it woke more than one period
    late (each such wake-up would have cost a conversion) and the latest wake-up."""
    result: list[tuple[int, float]] = []

    def sleeper() -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(SLEEPER_PRIORITY))
        end = time.monotonic_ns() + int(seconds * 1e9)
        _, stalls, latest = sleep_to_boundaries(int(period_s * 1e9), lambda due: due >= end)
        count = len(stalls)
        result.append((count, latest / 1e3))

    thread = threading.Thread(target=sleeper, name="bench-floor")
    thread.start()
    thread.join()
    return result[0]


_MADV_PAGEOUT = 21
_EINVAL = 22
_SYS_PIDFD_OPEN = 434  # the same numbers on every Linux architecture
_SYS_PROCESS_MADVISE = 440
SPECIAL_MAPPINGS = ("[vsyscall]", "[vvar]", "[vdso]", "[vvar_vclock]")


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def page_out(pid: int) -> tuple[int, str]:
    """Ask the kernel to reclaim every page of ``pid`` now, as memory pressure would
    (``process_madvise(MADV_PAGEOUT)``, Linux 5.10 and later, as root): the bytes of mappings
    it took the advice for (0: all locked), and why it refused, if it did ("" otherwise)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(_SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        return 0, f"pidfd_open: {os.strerror(ctypes.get_errno())}"
    accepted, refused = 0, ""
    try:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            if line.endswith(SPECIAL_MAPPINGS):
                continue
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            vec = _IoVec(lo, hi - lo)
            done = libc.syscall(_SYS_PROCESS_MADVISE, pidfd, ctypes.byref(vec), 1, _MADV_PAGEOUT, 0)
            if done > 0:
                accepted += done
            elif ctypes.get_errno() != _EINVAL:  # EINVAL: a locked or special mapping
                refused = f"process_madvise: {os.strerror(ctypes.get_errno())}"
    except OSError:
        pass  # the process ended
    finally:
        os.close(pidfd)
    return accepted, refused


class PageOut:
    """Reclaims every page of a process every ``interval_s`` (:func:`page_out`)."""

    def __init__(self, pid: int, interval_s: float) -> None:
        self._pid, self._interval = pid, interval_s
        self._stop = threading.Event()
        self.rounds = 0
        self.accepted = 0
        """Bytes of mappings the kernel took the advice for, summed over the rounds (0: all
        locked); what it reclaimed of them shows as the major faults that follow."""
        self.refused = ""
        self._thread = threading.Thread(target=self._run, name="bench-page-out", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            accepted, refused = page_out(self._pid)
            self.accepted += accepted
            self.refused = refused or self.refused
            self.rounds += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _proc_fields(pid: int | None) -> tuple[int, int]:
    """Major faults and locked kB (VmLck) of a process, from /proc (0, 0 when unknown)."""
    if pid is None:
        return 0, 0
    try:
        majflt = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[9])
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    return majflt, round(parse_kb(status, "VmLck") * 1024)


def run(
    rate: int,
    seconds: float,
    acquisition: AcquisitionMode,
    chips: int = 1,
    page_out_ms: float = 0.0,
    witness: bool = False,
    reader: ReaderKind = "python",
) -> dict[str, Any]:
    """One real-time run of the default pipeline; returns the figures ``main`` prints.

    ``witness``: watch the host's stalls during the run (:mod:`bench.witness`) and tell how
    many of its loss gaps they account for."""
    doc = load_yaml_file(DEFAULT_PIPELINE, "pipeline file")  # read as the daemon reads it
    for stage in doc["stages"]:
        if stage["type"] == "ads1299_source":
            stage["params"] = {**stage.get("params", {}), "sample_rate": rate, "chips": chips}
    spec = parse_pipeline(doc, str(DEFAULT_PIPELINE))
    cfg = DeviceConfig(
        backend="mock",
        acquisition=acquisition,
        reader=reader,
        emulator=EmulatorConfig(realtime=True),
    )
    publisher = _CountingPublisher(rate)
    runner = PipelineRunner(spec, StageContext("bench", cfg, publisher))
    runner.open()
    witnesses: Witnesses | None = None
    source = runner.source
    assert isinstance(source, Ads1299Source)
    try:
        runner.start()
        # the witnesses start before the window, so they watch all of it
        witnesses = Witnesses(1 / rate) if witness else None
        child = source._process.pid if source._process is not None else None
        wall0, cpu0, child0 = time.monotonic(), _self_cpu_s(), _pid_cpu_s(child)
        stats0 = runner.snapshot().stats
        acq0 = source._acq
        missed0 = acq0.missed if acq0 is not None else 0
        overflowed0 = acq0.overflowed if acq0 is not None else 0
        faults0, _ = _proc_fields(child)
        squeeze = PageOut(child, page_out_ms / 1000) if page_out_ms and child else None
        window_ns = time.monotonic_ns()
        try:
            time.sleep(seconds)  # a benchmark, not a test: the run is the measurement
        finally:
            if squeeze is not None:
                squeeze.stop()
        window_end_ns = time.monotonic_ns()
        faults1, locked_kb = _proc_fields(child)
        wall = time.monotonic() - wall0
        child1 = _pid_cpu_s(child)
        cpu, child_cpu = _self_cpu_s() - cpu0, child1 - child0 if child1 else float("nan")
        snap = runner.snapshot()
        acq = source._acq
        priority = acq.priority_set if acq is not None else False
        nice = acq.nice_set if acq is not None else False
        # counted over the measured window only, like `dropped` below
        missed = (acq.missed if acq is not None else 0) - missed0
        overflowed = (acq.overflowed if acq is not None else 0) - overflowed0
        witnessed = witnesses.stop() if witnesses is not None else None
    finally:
        if witnesses is not None:
            witnesses.stop()  # none is left watching after a failed run
        runner.stop()
    gaps = [gap for gap in list(publisher.gaps) if window_ns <= gap.at_ns < window_end_ns]
    acquired = snap.stats.samples_acquired - stats0.samples_acquired
    dropped = snap.stats.samples_dropped - stats0.samples_dropped
    return {
        "wall_s": wall,
        "acquired": acquired,
        "dropped": dropped,
        "missed": missed,
        "overflowed": overflowed,
        "slots": acquired + dropped,
        "parent_cpu": cpu / wall,
        "child_cpu": child_cpu / wall,
        "child_pid": child,
        "priority": priority,
        "nice": nice,
        "error": snap.error,
        "blocks": publisher.blocks,
        "major_faults": faults1 - faults0,
        "locked_kb": locked_kb,
        "page_out": squeeze,
        "gaps": gaps,
        "witnessed": witnessed,
        "explained": explained(gaps, witnessed.stalls, int(1e9 / rate)) if witnessed else 0,
    }


def witness_summary(r: dict[str, Any], rate: int) -> str:
    """What the witnesses saw during run ``r`` and how many of its loss gaps that explains."""
    w: Witnessed = r["witnessed"]
    gaps: list[Gap] = r["gaps"]
    fifo = "" if w.fifo else " (SCHED_FIFO refused: they saw their own scheduling too)"
    return (
        f"during the run, witnesses (a SCHED_FIFO sleeper per CPU, just below the reader's "
        f"priority{fifo}) woke more than one period ({1e6 / rate:.0f} us) late "
        f"{len(w.stalls)} times in {w.wakeups} wake-ups (longest {w.longest_ms:.1f} ms); "
        f"{r['explained']} of the run's {len(gaps)} loss gaps ({sum(g.count for g in gaps)} "
        "conversions) fell within such a stall"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=16000, help="samples per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run")
    parser.add_argument("--chips", type=int, default=1, help="daisy-chained chips (1..4)")
    parser.add_argument(
        "--acquisition", choices=("process", "thread"), default="process", help="where DRDY runs"
    )
    parser.add_argument(
        "--reader",
        choices=("python", "native"),
        default="python",
        help="the acquisition process's DRDY loop: Python, or the C reader (eegpi build-native)",
    )
    parser.add_argument(
        "--load", type=int, default=0, help="CPU-bound processes to run beside (busy loops)"
    )
    parser.add_argument(
        "--page-out",
        type=float,
        default=0.0,
        metavar="MS",
        help="reclaim the acquisition process's pages every MS ms, as memory pressure would",
    )
    parser.add_argument(
        "--floor-seconds",
        type=float,
        default=10.0,
        help="first measure the host's scheduling stalls for this long (0: skip)",
    )
    args = parser.parse_args(argv)
    loops = BusyLoops(args.load)
    try:
        sleeps = args.rate <= 1000  # the reader sleeps until DRDY; faster, the emulator spins
        measure = sleeper_lateness if sleeps else host_stalls
        floor = measure(args.floor_seconds, 1 / args.rate) if args.floor_seconds > 0 else None
        r = run(
            args.rate,
            args.seconds,
            args.acquisition,
            args.chips,
            args.page_out,
            witness=sleeps,
            reader=args.reader,
        )
    finally:
        loops.stop()
    load = f", beside {args.load} busy loop(s)" if args.load else ""
    print(
        f"default pipeline, emulated ADS1299 x{args.chips}, {args.rate} SPS, real time, "
        f"acquisition {args.acquisition}, {args.reader} reader, {r['wall_s']:.1f} s{load} "
        f"(host load average {os.getloadavg()[0]:.1f} at the end)"
    )
    print(f"  frames acquired        {r['acquired']}")
    print(
        f"  dropped                {r['dropped']} ({100 * r['dropped'] / max(r['slots'], 1):.3f} "
        f"% of {r['slots']} slots; missed DRDY {r['missed']}, ring overflow {r['overflowed']})"
    )
    print(f"  blocks published       {r['blocks']} (two sinks)")
    print(f"  CPU daemon side        {100 * r['parent_cpu']:.1f} % of one core (CPU time)")
    if r["child_pid"] is not None:
        print(
            f"  CPU acquisition proc.  {100 * r['child_cpu']:.2f} % of one core "
            "(CPU time from /proc, emulated chip included)"
        )
    print(
        f"  scheduling             SCHED_FIFO {'granted' if r['priority'] else 'not used'}, "
        f"nice {'-15 granted' if r['nice'] else 'unchanged'}"
    )
    if r["child_pid"] is not None:
        locked = f"locked ({r['locked_kb']} kB mapped)" if r["locked_kb"] else "not locked"
        print(f"  memory                 {locked}; {r['major_faults']} major faults in the run")
    squeeze = r["page_out"]
    if squeeze is not None:
        advised = squeeze.accepted / max(squeeze.rounds, 1) / 1e6
        refused = f" ({squeeze.refused})" if squeeze.refused else ""
        print(
            f"  memory pressure        every {args.page_out:g} ms: {squeeze.rounds} rounds, "
            f"{advised:.1f} MB of mappings open to reclaim a round{refused}"
        )
    if floor is not None:
        stalls, longest = floor
        what = (
            "a bare SCHED_FIFO thread sleeping to each period woke more than one period late"
            if sleeps
            else "a bare busy loop was kept off the CPU longer than one period"
        )
        print(
            f"  host floor             {what} ({1e6 / args.rate:.1f} us) {stalls} times in "
            f"{args.floor_seconds:g} s (longest {longest:.0f} us): the run's drops come from "
            "stalls like these"
        )
    if r["witnessed"] is not None:
        print(f"  host stalls            {witness_summary(r, args.rate)}")
    if r["error"]:
        print(f"  pipeline error         {r['error']}")


if __name__ == "__main__":
    main()
