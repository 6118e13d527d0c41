"""`diffsem baseline digital`: the bit budget, the mode calibration, the cliff curve and the
frame power of the digital baseline, as JSON lines.
"""
from __future__ import annotations

import argparse
import json
import sys

from diffsem.baselines.digital.framing import bit_budget
from diffsem.baselines.digital.modem import MODES
from diffsem.baselines.digital.scheme import calibrate, frame_power, run_curve


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsem baseline digital",
                                description="digital (separation) baseline on the library channel: JSON lines")
    p.add_argument("--k", type=int, nargs="+", default=[128, 32])
    p.add_argument("--snr", type=float, nargs="+", default=[0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30])
    p.add_argument("--n", type=int, default=500, help="test images per point")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channel", default="awgn")
    p.add_argument("--mode", default=None, help="fixed mode (e.g. qpsk-1/2) instead of link adaptation")
    p.add_argument("--margin", type=float, default=0.0, help="link adaptation back-off (dB) over the thresholds")
    p.add_argument("--calibrate", action="store_true", help="measure the mode thresholds (FER <= 1%% at k)")
    p.add_argument("--budget", action="store_true", help="print the bit budget of every mode for each k")
    p.add_argument("--power", action="store_true",
                   help="average power per channel use of every mode over --n test images (mean, per-frame std)")
    args = p.parse_args(argv)
    if args.power:
        for k in args.k:
            for row in frame_power(k, args.n):
                print(json.dumps(row), flush=True)
        return 0
    if args.calibrate:
        for k in args.k:
            print(json.dumps({"k": k, "thresholds_db": calibrate(k, seed=args.seed)}), flush=True)
        return 0
    if args.budget:
        for k in args.k:
            for m in MODES:
                print(json.dumps(bit_budget(k, m).as_dict()))
        return 0
    for k in args.k:
        for row in run_curve(k, args.snr, args.n, args.seed, args.channel, args.mode, args.margin):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
