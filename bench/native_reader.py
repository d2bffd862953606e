"""Per-frame cost of the native reader's own loop, on the emulator in virtual time.

The native reader's thread measures itself (CLOCK_THREAD_CPUTIME_ID, and its user-space part
from getrusage): edge events polled and read, one SPI transfer, the labels, the ring stores.
On the emulator the descriptors are a pipe and a socket served by the emulator's Python thread,
whose time is not the reader's (it stands in for the kernel and the chip), so the figure is what
the loop costs a core, system calls included. CPU time, not wall time: the host may be shared.

    python -m bench.native_reader                 # 50000 frames, 1 chip
    python -m bench.native_reader --frames 20000 --chips 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from eegpi.ads1299.settings import chain_settings
from eegpi.hardware import open_device
from eegpi.hardware.config import DeviceConfig, EmulatorConfig
from eegpi.hardware.native.build import build_library
from eegpi.hardware.native.library import load_library
from eegpi.hardware.native.reader import NativeAcquisition

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000, help="frames to read")
    parser.add_argument("--chips", type=int, default=1, help="daisy-chained chips (1..4)")
    parser.add_argument("--rate", type=int, default=16000, help="programmed data rate")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        lib = load_library(build_library(Path(tmp)))
        cfg = DeviceConfig(backend="mock", emulator=EmulatorConfig(realtime=False))
        device = open_device(cfg, args.chips)
        try:
            device.configure(
                chain_settings(
                    sample_rate=args.rate,
                    gain=24,
                    input="normal",
                    srb2=False,
                    chips=args.chips,
                    channels_per_chip=8,
                )
            )
            acq = NativeAcquisition(device, args.rate, lossless=True, library=lib)
            wall0 = time.monotonic()
            acq.start()
            taken = 0
            while taken < args.frames:
                acq.wait(1, 10.0)
                taken += len(acq.take())
            acq.stop()
            wall = time.monotonic() - wall0
        finally:
            device.close()
    stats = acq.stats
    frames = max(stats.frames, 1)
    print(
        f"native reader, emulated ADS1299 x{args.chips} ({device.frame_len}-byte frames), "
        f"virtual time, {stats.frames} frames in {wall:.1f} s wall"
    )
    print(f"  reader thread CPU      {stats.cpu_ns / frames / 1e3:.2f} us/frame")
    print(f"    of it in user space  {stats.user_ns / frames / 1e3:.2f} us/frame (getrusage)")
    print(f"  missed / overflowed    {acq.missed} / {acq.overflowed}")


if __name__ == "__main__":
    main()
