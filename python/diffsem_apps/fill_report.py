"""`diffsem report fill`: decoders against the impaired fraction of the frame, from `diffsem eval`
rows made with --fraction: a figure per k (PSNR and accuracy against the fraction, one line per
decoder and model generation) and, on stdout, a markdown table per k (PSNR / accuracy /
FID-FMNIST per fraction, and what each fraction costs against 0 %).

    diffsem report fill docs/results/fill.jsonl --out docs/figures --k 128 32 --snr 10

Rows carry `models` (`diffsem eval --label`) to tell model generations apart; rows without it
are shown as the current models.

`--generations BASELINE` prints instead, per k, one decoder's model generations side by side on
the rows of --n images: every clean-channel point (PSNR dB / accuracy %, and each generation
minus BASELINE) and AWGN at --snr with --fraction of the symbols erased:

    diffsem report fill docs/results/fill_test.jsonl docs/results/deepjscc_full.jsonl \
        docs/results/erasure_training.jsonl --generations "no erasure training" --k 128 32
"""
from __future__ import annotations

import argparse
from pathlib import Path

from diffsem.experiments.plots import fraction_figure, fraction_table, impairment, label, num, steps_of
from diffsem_apps.pd_report import load_rows

SHIPPED = "shipped"
CHANNEL_ORDER = {"awgn": 0, "rayleigh": 1, "selective": 2}


def _generation(row) -> str:
    return row.get("models") or SHIPPED


def _cell(row, fid=False) -> str:
    """PSNR / accuracy (one decimal; two beside FID-FMNIST, where a 10 000-image row is read
    to the image)."""
    if fid:
        return f"{num(row['psnr']):.2f} / {100 * num(row['accuracy']):.2f} / {num(row.get('fid')):.2f}"
    return f"{num(row['psnr']):.2f} / {100 * num(row['accuracy']):.1f}"


def _by_generation(rows, k: int, scheme: str, n: int, steps: int | None = None) -> dict[str, dict]:
    """generation -> {(channel, csi, snr, fraction): row}, the first row of each point kept;
    `steps`: a sampler's rows of that many steps only."""
    out: dict[str, dict] = {}
    for r in rows:
        if int(float(r["k"])) != k or r["scheme"] != scheme or int(float(r.get("n", 0))) != n:
            continue
        if steps is not None and steps_of(r) != steps:
            continue
        kind, fraction = impairment(r)
        if fraction and kind != "erasure":
            continue
        csi = "-" if r["channel"] == "awgn" else (r.get("csi") or "perfect")
        out.setdefault(_generation(r), {}).setdefault((r["channel"], csi, num(r["snr_db"]), fraction), r)
    return out


def generations_tables(rows, k: int, baseline: str, scheme: str = "deepjscc", n: int = 10000,
                       snr_db: float = 10.0, fraction: float = 0.25, steps: int | None = None) -> str:
    """Markdown: the model generations of one decoder on every clean point of `baseline`'s rows
    (each generation minus the baseline, dB), then AWGN at snr_db with `fraction` erased."""
    gens = _by_generation(rows, k, scheme, n, steps)
    if steps is not None:
        scheme = label({"scheme": scheme, "steps": steps})
    if baseline not in gens:
        raise ValueError(f"no rows of generation {baseline!r} for {scheme} at k = {k}, n = {n}")
    order = [g for g in gens if g != baseline] + [baseline]
    others = [g for g in order if g != baseline]
    clean = sorted((p for p in gens[baseline] if p[3] == 0.0), key=lambda p: (CHANNEL_ORDER.get(p[0], 9), p[1], p[2]))
    head = ("| channel | CSI | SNR | " + " | ".join(order) + " | "
            + " | ".join(f"{g} − {baseline}" for g in others) + " |")
    lines = [head, "|---|---|---:|" + "---:|" * (len(order) + len(others))]
    for p in clean:
        cells = [_cell(gens[g][p]) if p in gens[g] else "–" for g in order]
        deltas = [f"{num(gens[g][p]['psnr']) - num(gens[baseline][p]['psnr']):+.2f}" if p in gens[g] else "–"
                  for g in others]
        lines.append(f"| {p[0]} | {p[1]} | {p[2]:g} dB | " + " | ".join(cells + deltas) + " |")
    at0, at = ("awgn", "-", snr_db, 0.0), ("awgn", "-", snr_db, fraction)
    pct = f"{100 * fraction:g} %"
    erased = [f"| {scheme} | 0 %: PSNR / accuracy / FID | {pct}: PSNR / accuracy / FID | PSNR lost | accuracy lost |",
              "|---|---:|---:|---:|---:|"]
    for g in order:
        if at0 in gens[g] and at in gens[g]:
            a, b = gens[g][at0], gens[g][at]
            erased.append(f"| {g} | {_cell(a, True)} | {_cell(b, True)} | {num(a['psnr']) - num(b['psnr']):.2f} | "
                          f"{100 * (num(a['accuracy']) - num(b['accuracy'])):.2f} |")
    return (f"Without erasures, PSNR dB / accuracy % ({scheme}, k = {k}, {n} test images):\n\n" + "\n".join(lines)
            + f"\n\nAWGN {snr_db:g} dB, {pct} of the symbols erased:\n\n" + "\n".join(erased))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="diffsem report fill", description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", type=Path, help="JSON lines of diffsem eval --fraction ...")
    ap.add_argument("--out", type=Path, default=Path("docs/figures"), help="folder of <prefix>_k<k>.png")
    ap.add_argument("--prefix", default="fill")
    ap.add_argument("--k", nargs="+", type=int, default=[128, 32])
    ap.add_argument("--snr", type=float, default=10.0)
    ap.add_argument("--channel", default="awgn")
    ap.add_argument("--generations", metavar="BASELINE", default=None,
                    help="print the model generations against this one (its `models` label) instead")
    ap.add_argument("--scheme", default="deepjscc", help="with --generations: the decoder")
    ap.add_argument("--steps", type=int, default=None, help="with --generations: a sampler's rows of this many steps")
    ap.add_argument("--n", type=int, default=10000, help="with --generations: rows of this many images")
    ap.add_argument("--fraction", type=float, default=0.25, help="with --generations: the erased fraction")
    args = ap.parse_args(argv)
    rows = load_rows(ap, args.rows)
    if args.generations:
        for k in args.k:
            print(f"\n**k = {k}**\n\n" + generations_tables(rows, k, args.generations, args.scheme, args.n,
                                                             args.snr, args.fraction, args.steps))
        return 0
    for k in args.k:
        figure = fraction_figure(rows, args.out / f"{args.prefix}_k{k}.png", k, args.snr, args.channel)
        print(f"\n**k = {k}**, {args.channel} {args.snr:g} dB ([figure]({figure}))\n")
        print(fraction_table(rows, k, args.snr, args.channel))
    return 0
