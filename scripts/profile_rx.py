#!/usr/bin/env python3
"""CPU per frame of the burst receiver, the per-frame reference (diffsem.phy.burst_rx) against
the batched one the RX block runs (diffsem.phy.burst_batch), on the stream `diffsem bench phy`
records: 128-symbol bursts with 320 zeros either side, AWGN 20 dB, no trigger but the matched
filter's. Pushed in chunks as a GNU Radio work() call hands them over (2800 samples: the default
buffers; 24000: what the RX block's 64k buffers give when it is behind). Both receivers alternate
in one process, so the ratio holds when the machine's load moves the absolute figures.

    python scripts/profile_rx.py --frames 500 --chunks 2800,24000 --repeats 3 [--profile]

--profile adds a cProfile summary (cumulative time by function) of each receiver at the last chunk
size: where the time goes per frame.
"""
from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import time

import numpy as np

from diffsem import phy
from diffsem.phy import burst_batch, burst_rx


def bench_stream(frames: int, snr_db: float = 20.0, k: int = 128, pad: int = 320, seed: int = 0) -> np.ndarray:
    payloads = [phy.reference_symbols(seed, seq, k) for seq in range(frames)]
    x, _ = phy.BurstBuilder(phy.DEFAULT_LAYOUT, 4, pad, pad).build(payloads, range(frames))
    rng = np.random.default_rng(seed)
    sigma = phy.noise_voltage_for_snr(snr_db)
    noise = rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size)
    return (x + sigma / math.sqrt(2) * noise).astype(np.complex64)


def run(receiver, x: np.ndarray, chunk: int) -> int:
    frames = 0
    for i in range(0, x.size, chunk):
        frames += sum(kind == "frame" for kind, _ in receiver.push(x[i:i + chunk]))
    return frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--chunks", default="2800,24000", help="samples per push, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    x = bench_stream(args.frames)
    kinds = {"reference": burst_rx.BurstReceiver, "batched": burst_batch.BatchReceiver}
    chunks = [int(c) for c in args.chunks.split(",")]
    for chunk in chunks:
        cpu = {name: [] for name in kinds}
        for _ in range(args.repeats):
            for name, cls in kinds.items():
                t0 = time.process_time()
                got = run(cls(), x, chunk)
                cpu[name].append((time.process_time() - t0) / max(got, 1))
                assert got == args.frames, (name, got)
        ref, bat = (float(np.median(cpu[n])) for n in kinds)
        print(f"chunk {chunk:6d}: reference {1e3 * ref:.3f} ms/frame, batched {1e3 * bat:.3f} ms/frame, "
              f"ratio {ref / bat:.2f} (median of {args.repeats}, CPU time)")
    if args.profile:
        for name, cls in kinds.items():
            prof = cProfile.Profile()
            prof.enable()
            run(cls(), x, chunks[-1])
            prof.disable()
            print(f"\n--- {name}, chunk {chunks[-1]}: cumulative seconds over {args.frames} frames")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(r"diffsem/phy", 18)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
