"""Pipeline throughput against bare numpy/scipy on the same data: framework efficiency.

Runs the default pipeline's processing chain (to_voltage -> bandpass 1-40 Hz order 4 -> notch
50 Hz) through the real stages, block by block as the pipeline thread calls them, and the same
maths written directly with ``scipy.signal.sosfilt``. Both sides alternate over the same blocks
in rounds (so a change in the host's load touches both alike) and are timed in CPU time of this
process (``time.process_time``), not wall-clock time: the host may be running other work.
Prints samples per CPU-second for both and the framework efficiency, bare time / eegpi time
(1.0: the stages cost what the bare maths costs; the target at 16 kSPS blocks is >= 0.8).
One run, figures printed, nothing asserted.

    python -m bench.pipeline [--rate 16000] [--seconds 60] [--block-ms 10]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import signal

from eegpi.pipeline.stage import NullPublisher, StageContext
from eegpi.pipeline.stages.convert import ToVoltage
from eegpi.pipeline.stages.filters import Bandpass, BandpassParams, Notch, NotchParams
from eegpi.stream import Block, StreamMeta

ROUNDS = 20  # alternations of the eegpi and the bare side


def _blocks(rate: int, seconds: float, block: int, channels: int = 8) -> list[Any]:
    rng = np.random.default_rng(1)
    n = int(rate * seconds)
    counts = rng.integers(-200_000, 200_000, size=(n, channels), dtype=np.int32)
    return [counts[i : i + block] for i in range(0, n, block)]


def run(rate: int, seconds: float, block_ms: float) -> dict[str, float]:
    block = max(1, int(rate * block_ms / 1000))
    chunks = _blocks(rate, seconds, block)
    n_samples = sum(len(c) for c in chunks)
    meta = StreamMeta(
        float(rate),
        tuple(f"ch{i + 1}" for i in range(8)),
        "counts",
        {"gain": (24,) * 8, "vref_v": 4.5},
    )
    from eegpi.hardware.config import DeviceConfig

    ctx = StageContext("bench", DeviceConfig(backend="mock"), NullPublisher())
    stages = [
        ToVoltage("to_voltage", ToVoltage.Params()),
        Bandpass("filter", BandpassParams(low_hz=1.0, high_hz=40.0, order=4)),
        Notch("notch", NotchParams(freq_hz=50.0)),
    ]
    m: Mapping[str, StreamMeta] = {"in": meta}
    for st in stages:
        m = {"in": st.open(m, ctx)["out"]}

    scale = 4.5e6 / (24 * 2**23)
    sos_bp = signal.butter(4, [1.0, 40.0], btype="bandpass", fs=rate, output="sos")
    b_n, a_n = signal.iirnotch(50.0, 30.0, fs=rate)
    sos_n = signal.tf2sos(b_n, a_n)
    zi_bp = np.zeros((sos_bp.shape[0], 2, 8))
    zi_n = np.zeros((sos_n.shape[0], 2, 8))

    t_stages = t_bare = 0.0
    seq = 0
    b = y = np.zeros(0)
    per_round = max(1, len(chunks) // ROUNDS)
    for start in range(0, len(chunks), per_round):
        batch = chunks[start : start + per_round]
        t0 = time.process_time()
        for c in batch:
            blk = Block(c, seq, 0.0, meta)
            for st in stages:
                blk = st.process({"in": blk})["out"]
            seq += len(c)
        t1 = time.process_time()
        for c in batch:
            x = c * scale
            y, zi_bp = signal.sosfilt(sos_bp, x, axis=0, zi=zi_bp)
            y, zi_n = signal.sosfilt(sos_n, y, axis=0, zi=zi_n)
        t2 = time.process_time()
        t_stages += t1 - t0
        t_bare += t2 - t1
    b = np.asarray(blk.data)
    return {
        "samples": n_samples,
        "block": block,
        "stages_sps": n_samples / t_stages,
        "bare_sps": n_samples / t_bare,
        "overhead_ratio": t_stages / t_bare,
        "efficiency": t_bare / t_stages,
        "realtime_factor": n_samples / t_stages / rate,
        # both sides computed the same numbers: the last block's largest difference, in uV
        "max_abs_diff_uv": float(np.max(np.abs(b - y))) if b.shape == y.shape else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate", type=int, default=16000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--block-ms", type=float, default=10.0)
    args = ap.parse_args(argv)
    r = run(args.rate, args.seconds, args.block_ms)
    print(f"pipeline throughput, {args.rate} SPS x 8 ch, {r['block']:.0f}-sample blocks:")
    print(
        f"  eegpi stages : {r['stages_sps']:,.0f} samples per CPU-second "
        f"({r['realtime_factor']:.0f}x real time)"
    )
    print(f"  bare scipy   : {r['bare_sps']:,.0f} samples per CPU-second")
    print(f"  overhead     : {r['overhead_ratio']:.2f}x the bare numpy/scipy time")
    print(f"  efficiency   : {r['efficiency']:.2f} (bare time / eegpi time; target >= 0.8)")
    print(f"  same output  : largest difference {r['max_abs_diff_uv']:.2g} uV in the last block")


if __name__ == "__main__":
    main()
