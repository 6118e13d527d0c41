"""`diffsem report fill`: decoders against the impaired fraction of the frame, from `diffsem eval`
rows made with --fraction: a figure per k (PSNR and accuracy against the fraction, one line per
decoder and model generation) and, on stdout, a markdown table per k (PSNR / accuracy /
FID-FMNIST per fraction, and what each fraction costs against 0 %).

    diffsem report fill docs/results/fill.jsonl --out docs/figures --k 128 32 --snr 10

Rows carry `models` (`diffsem eval --label`) to tell model generations apart; rows without it
are shown as the current models.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from diffsem.experiments.plots import fraction_figure, fraction_table
from diffsem_apps.pd_report import load_rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="diffsem report fill", description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", type=Path, help="JSON lines of diffsem eval --fraction ...")
    ap.add_argument("--out", type=Path, default=Path("docs/figures"), help="folder of <prefix>_k<k>.png")
    ap.add_argument("--prefix", default="fill")
    ap.add_argument("--k", nargs="+", type=int, default=[128, 32])
    ap.add_argument("--snr", type=float, default=10.0)
    ap.add_argument("--channel", default="awgn")
    args = ap.parse_args(argv)
    rows = load_rows(ap, args.rows)
    for k in args.k:
        figure = fraction_figure(rows, args.out / f"{args.prefix}_k{k}.png", k, args.snr, args.channel)
        print(f"\n**k = {k}**, {args.channel} {args.snr:g} dB ([figure]({figure}))\n")
        print(fraction_table(rows, k, args.snr, args.channel))
    return 0
