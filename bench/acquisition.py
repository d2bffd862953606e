"""Acquisition on the emulated ADS1299: per-frame cost of the loop, or real-time throughput.

``--as-fast`` (virtual time: DRDY is due as soon as the reader asks) measures what one frame
costs the acquisition loop (edge event -> SPI read -> ring), in CPU time of the loop's thread,
split into the reader's own work and the emulated chip's (the time spent inside the ``gpiod``
and ``spidev`` stand-ins). The reader's share is what a board runs in Python too; there the
chip's share is replaced by two system calls (``read`` of the edge event, the SPI ioctl) and
the wire time of the frame.

Without it, the ``ads1299_source`` stage (driver, acquisition process or thread, block
decoding) runs against the emulator in real time, so DRDY falls at the programmed rate in
wall-clock time and every late read costs samples exactly as on a board. The consumer loop
stands in for the pipeline; ``bench.realtime`` runs the whole default pipeline instead.

    python -m bench.acquisition --as-fast        # per-frame cost, 100000 frames
    python -m bench.acquisition                  # 16000 SPS for 60 s, acquisition process
    python -m bench.acquisition --rate 1000 --seconds 5 --acquisition thread
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.realtime import _pid_cpu_s
from eegpi.ads1299.settings import chain_settings
from eegpi.hardware import open_device
from eegpi.hardware.acquisition import Acquisition
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.pipeline.stage import NullPublisher, StageContext
from eegpi.pipeline.stages.source import Ads1299Source, Ads1299SourceParams

__all__ = ["frame_cost", "main"]


class _Timed:
    """A proxy of a stand-in whose named methods add their run time to ``spent_ns``."""

    def __init__(self, target: Any, names: tuple[str, ...]) -> None:
        self._target = target
        self.spent_ns = 0
        self.calls = 0
        for name in names:
            setattr(self, name, self._timed(getattr(target, name)))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.thread_time_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return method(*args, **kwargs)
            finally:
                self.spent_ns += clock() - t0
                self.calls += 1

        return timed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _Nothing:
    def call(self) -> None:
        pass


def _wrapper_cost_ns(calls: int = 20_000) -> tuple[float, float]:
    """What timing one call costs (two thread-clock readings), inside and outside the share it
    adds to ``spent_ns``: subtracted from the chip's and the reader's shares."""
    timed = _Timed(_Nothing(), ("call",))
    bare = _Nothing()
    t0 = time.thread_time_ns()
    for _ in range(calls):
        bare.call()
    t1 = time.thread_time_ns()
    for _ in range(calls):
        timed.call()
    t2 = time.thread_time_ns()
    per_call = max(0.0, ((t2 - t1) - (t1 - t0)) / calls)
    inside = timed.spent_ns / calls
    return inside, max(0.0, per_call - inside)


def frame_cost(
    frames: int = 100_000, rate: int = 16000, chips: int = 1, pause_s: float = 0.0
) -> dict[str, float]:
    """CPU time per frame of the acquisition loop in virtual time, in microseconds: ``total``,
    ``chip`` (inside the stand-ins) and ``reader`` (the rest: slots, ring, the loop).

    ``pause_s``: sleep this long (real time, not counted) before each frame, as a reader at a
    low rate does: the same work then runs with caches gone cold, which costs several times
    more CPU time than back to back."""
    cfg = DeviceConfig(backend="mock", emulator=EmulatorConfig(realtime=False))
    device = open_device(cfg, chips)
    try:
        settings = chain_settings(
            sample_rate=rate,
            gain=24,
            input="normal",
            srb2=False,
            chips=chips,
            channels_per_chip=device.channels_per_chip,
        )
        device.configure(settings)
        link: Any = device.link
        spi = _Timed(link.spi._dev, ("xfer", "xfer2"))
        drdy = _Timed(link.drdy._request, ("wait_edge_events", "read_edge_events"))
        link.spi._dev, link.drdy._request = spi, drdy
        asleep_ns = [0]  # CPU time the pauses themselves cost (the sleep's system call)
        if pause_s > 0:
            wait = getattr(drdy, "wait_edge_events")  # noqa: B009 (set by _Timed)

            def paused(timeout: Any = None) -> Any:
                if timeout:  # the wait for the next frame, not the check after a read
                    t0 = time.thread_time_ns()
                    time.sleep(pause_s)
                    asleep_ns[0] += time.thread_time_ns() - t0
                return wait(timeout)

            setattr(drdy, "wait_edge_events", paused)  # noqa: B010
        inside_ns, outside_ns = _wrapper_cost_ns()
        # A ring that holds the whole run: no consumer competes for the GIL or the CPU.
        acq = Acquisition(device, rate, capacity=frames + 8192)
        acq.start()
        assert acq._thread is not None
        clock_id = time.pthread_getcpuclockid(acq._thread.ident or 0)
        t0 = time.clock_gettime_ns(clock_id) - asleep_ns[0]
        chip0, n0 = spi.spent_ns + drdy.spent_ns, acq.frames_read
        calls0 = spi.calls + drdy.calls
        wall0 = time.monotonic()
        acq.ring.wait(min(n0 + frames, acq.capacity), 600.0)
        t1 = time.clock_gettime_ns(clock_id) - asleep_ns[0]
        chip1, n1 = spi.spent_ns + drdy.spent_ns, acq.frames_read
        calls = spi.calls + drdy.calls - calls0
        wall = time.monotonic() - wall0
        acq.stop()
        missed = acq.missed
    finally:
        device.close()
    n = max(n1 - n0, 1)
    # Less what the timing itself cost (a few thread-clock readings per frame).
    chip = (chip1 - chip0 - calls * inside_ns) / n / 1e3
    total = (t1 - t0 - calls * (inside_ns + outside_ns)) / n / 1e3
    return {
        "frames": float(n),
        "total_us": total,
        "chip_us": chip,
        "reader_us": total - chip,
        "frames_per_s": n / wall,
        "calls_per_frame": calls / n,
        "missed": float(missed),
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=16000, help="samples per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to acquire")
    parser.add_argument("--chips", type=int, default=1, help="daisy-chained chips (1..4)")
    parser.add_argument(
        "--as-fast",
        action="store_true",
        help="virtual time: per-frame cost of the acquisition loop (reader vs emulated chip)",
    )
    parser.add_argument("--frames", type=int, default=100_000, help="frames for --as-fast")
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=0.0,
        help="--as-fast: sleep this long before each frame (4 = 250 SPS's caches, not its rate)",
    )
    parser.add_argument(
        "--acquisition", choices=("process", "thread"), default="process", help="where DRDY runs"
    )
    args = parser.parse_args(argv)
    if args.as_fast:
        _print_frame_cost(args.frames, args.rate, args.chips, args.pause_ms / 1e3)
        return

    cfg = DeviceConfig(
        backend="mock",
        acquisition=args.acquisition,
        emulator=EmulatorConfig(realtime=True),
    )
    source = Ads1299Source("acquire", Ads1299SourceParams(sample_rate=args.rate, chips=args.chips))
    source.open({}, StageContext(pipeline="bench", device=cfg, publisher=NullPublisher()))
    blocks = samples = 0
    first_seq = last_end = -1
    try:
        source.start()
        child = source._process.pid if source._process is not None else None
        cpu0, child0, wall0 = _cpu_s(), _pid_cpu_s(child), time.monotonic()
        while time.monotonic() - wall0 < args.seconds:
            block = source.read(1.0)
            if block is None:
                continue
            if first_seq < 0:
                first_seq = block.seq
            blocks += 1
            samples += block.n_samples
            last_end = block.end_seq
        wall = time.monotonic() - wall0
        cpu, child_cpu = _cpu_s() - cpu0, _pid_cpu_s(child) - child0
        stats = source.stats()
        acq = source._acq
        priority = acq.priority_set if acq is not None else False
        nice = acq.nice_set if acq is not None else False
    finally:
        source.close()

    slots = last_end - first_seq if first_seq >= 0 else 0
    print(
        f"emulated ADS1299 x{args.chips}, {args.rate} SPS, real time, "
        f"acquisition {args.acquisition}, {wall:.1f} s"
    )
    print(f"  sample slots elapsed   {slots}")
    print(
        f"  frames delivered       {samples}  in {blocks} blocks "
        f"({samples / max(blocks, 1):.1f} samples/block)"
    )
    print(f"  frames read (stats)    {stats.samples_acquired}")
    print(
        f"  dropped                {stats.samples_dropped} "
        f"({100 * stats.samples_dropped / max(slots, 1):.3f} % of slots)"
    )
    print(f"  throughput             {samples / wall:.0f} frames/s")
    where = "this process" if child is None else "this process, not the acquisition process"
    print(f"  CPU                    {100 * cpu / wall:.1f} % of one core ({where})")
    if child is not None:
        print(
            f"  CPU acquisition proc.  {100 * child_cpu / wall:.2f} % of one core (CPU time from "
            "/proc, emulated chip included)"
        )
    print(
        f"  scheduling             SCHED_FIFO {'granted' if priority else 'not used'}, "
        f"nice {'-15 granted' if nice else 'unchanged'}"
    )


PI4_FACTOR = 3.0
"""How much slower a Raspberry Pi 4's Cortex-A72 at 1.5 GHz runs this Python than the
development machine's cores (pyperformance-style pure-Python loops: roughly 3x). An estimate,
not a measurement: run this benchmark on the Pi for its own figure."""


def _print_frame_cost(frames: int, rate: int, chips: int, pause_s: float = 0.0) -> None:
    threads = threading.active_count()
    r = frame_cost(frames, rate, chips, pause_s)
    pi_us = r["reader_us"] * PI4_FACTOR
    print(
        f"acquisition loop, emulated ADS1299 x{chips}, virtual time, {int(r['frames'])} frames "
        f"(CPU time of the loop's thread; {threads} thread(s) besides"
        + (f"; {pause_s * 1e3:g} ms asleep before each frame, not counted)" if pause_s else ")")
    )
    print(f"  per frame              {r['total_us']:.1f} us")
    print(f"    reader's own work    {r['reader_us']:.1f} us (slots, ring, loop: Python on a Pi)")
    print(f"    emulated chip        {r['chip_us']:.1f} us (gpiod and spidev stand-ins)")
    print(
        f"  frames per second      {r['frames_per_s']:.0f} (wall clock, chip included, timing "
        f"of {r['calls_per_frame']:.1f} stand-in calls a frame subtracted from the CPU figures)"
    )
    if pause_s:
        return  # a rate estimate from cold-cache figures would mislead
    wire_us = 27 * chips * 8 / 8  # a 27-byte frame per chip at 8 MHz SCLK
    print(
        f"  on a Pi 4 (x{PI4_FACTOR:g}, estimated) reader ~{pi_us:.0f} us per frame; with the "
        f"frame's {wire_us:.0f} us on the SPI wire, at most ~{1e6 / (pi_us + wire_us):.0f} "
        "frames/s from one core (before the edge-event read and the SPI ioctl themselves)"
    )


if __name__ == "__main__":
    main()
