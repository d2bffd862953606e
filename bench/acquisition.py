"""Acquisition throughput on the emulated ADS1299: frames read, dropped, CPU use.

Runs the ``ads1299_source`` stage (driver, acquisition process or thread, block decoding)
against the emulator in real-time mode, so DRDY falls at the programmed rate in wall-clock time
and every late read costs samples exactly as on a board. The consumer loop stands in for the
pipeline; ``bench.realtime`` runs the whole default pipeline instead.

    python -m bench.acquisition                  # 16000 SPS for 60 s, acquisition process
    python -m bench.acquisition --rate 1000 --seconds 5 --acquisition thread
"""

from __future__ import annotations

import argparse
import resource
import time

from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.pipeline.stage import NullPublisher, StageContext
from eegpi.pipeline.stages.source import Ads1299Source, Ads1299SourceParams

__all__ = ["main"]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=16000, help="samples per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to acquire")
    parser.add_argument("--chips", type=int, default=1, help="daisy-chained chips (1..4)")
    parser.add_argument(
        "--as-fast", action="store_true", help="virtual time: DRDY as fast as frames are read"
    )
    parser.add_argument(
        "--acquisition", choices=("process", "thread"), default="process", help="where DRDY runs"
    )
    args = parser.parse_args(argv)

    cfg = DeviceConfig(
        backend="mock",
        acquisition=args.acquisition,
        emulator=EmulatorConfig(realtime=not args.as_fast),
    )
    source = Ads1299Source("acquire", Ads1299SourceParams(sample_rate=args.rate, chips=args.chips))
    source.open({}, StageContext(pipeline="bench", device=cfg, publisher=NullPublisher()))
    blocks = samples = 0
    first_seq = last_end = -1
    try:
        source.start()
        cpu0, wall0 = _cpu_s(), time.monotonic()
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
        cpu = _cpu_s() - cpu0
        stats = source.stats()
        acq = source._acq
        priority = acq.priority_set if acq is not None else False
        nice = acq.nice_set if acq is not None else False
        child = source._process.pid if source._process is not None else None
    finally:
        source.close()

    slots = last_end - first_seq if first_seq >= 0 else 0
    mode = "as fast as possible (virtual time)" if args.as_fast else "real time"
    print(
        f"emulated ADS1299 x{args.chips}, {args.rate} SPS, {mode}, "
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
    print(
        f"  scheduling             SCHED_FIFO {'granted' if priority else 'not used'}, "
        f"nice {'-15 granted' if nice else 'unchanged'}"
    )


if __name__ == "__main__":
    main()
