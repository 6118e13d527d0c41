"""`diffsem report pd`: the perception-distortion figure of `diffsem eval` rows, one per k.

    diffsem report pd ROWS.jsonl [ROWS.jsonl ...] --out docs/figures --k 128 32 --snr 5 20

Rows carry `models` (`diffsem eval --label`) to tell model generations apart; the temperature
sweep of each diffusion decoder is drawn as a curve, DeepJSCC as a point.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffsem.experiments.plots import perception_distortion


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="diffsem report pd", description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", type=Path, help="JSON lines of diffsem eval / measure controls")
    ap.add_argument("--out", type=Path, default=Path("docs/figures"))
    ap.add_argument("--k", nargs="+", type=int, default=[128, 32])
    ap.add_argument("--snr", nargs="+", type=float, default=[5.0, 20.0])
    args = ap.parse_args(argv)
    rows = []
    for path in args.rows:
        if not path.is_file():
            ap.error(f"{path}: no such file")
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]
    for k in args.k:
        print(perception_distortion(rows, args.out / f"pd_k{k}.png", k, tuple(args.snr)))
    return 0
