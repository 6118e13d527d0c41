"""Markdown tables from `diffsem eval` JSON lines.

    python scripts/results_table.py docs/results/eval_models.jsonl                 # decoder tables
    python scripts/results_table.py --vs-teacher docs/results/eval_models.jsonl    # students vs teacher / DeepJSCC
    python scripts/results_table.py --ablation docs/results/ablation_variants.jsonl  # ablation variants

--vs-teacher: every student row against the teacher row of the same k/channel/CSI/SNR (ΔPSNR dB,
Δaccuracy points, FID ratio; the bar: |ΔPSNR| ≤ 0.5, Δacc ≥ −1, FID ratio ≤ 1.10) and against
DeepJSCC (FID reduction, Δaccuracy, PSNR cost, hf_ratio distance to 1).
The temperature calibration on the validation split is `diffsem calibrate` (diffsem.nn.calibration).
Each function returns markdown; `diffsem report results` writes them into docs/results/*.md
(diffsem_apps.results_docs).
"""
import argparse
import json
import sys

from diffsem.nn.calibration import BAR_FID_RATIO, MAX_ACC_DROP, MAX_DPSNR_DB, within_teacher_bar


def load(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def key(r):
    return (r["k"], r["channel"], r.get("csi") or "", r["snr_db"])


def vs_teacher(s, t) -> dict:
    return {"dpsnr": s["psnr"] - t["psnr"], "dacc": s["accuracy"] - t["accuracy"], "fid_ratio": s["fid"] / t["fid"]}


def meets(d) -> bool:
    return within_teacher_bar(d["dpsnr"], d["dacc"], d["fid_ratio"])


def fmt(d) -> str:
    return f"{d['dpsnr']:+.2f} / {100 * d['dacc']:+.1f} / {d['fid_ratio']:.2f}"


def readme_tables(rows) -> str:
    """Per (channel, k): PSNR / accuracy / FID-FMNIST / hf_ratio of every decoder at 0/5/10/20 dB, and the
    per-symbol noise variance ablation on the selective channel."""
    idx = {(r["k"], r["channel"], r.get("csi") or "", r["snr_db"], r["scheme"], r["steps"]): r for r in rows}
    cols = [("deepjscc", None, "DeepJSCC"), ("teacher", 32, "teacher (32)"), ("student", 1, "student 1"),
            ("student", 2, "student 2"), ("student", 4, "student 4")]
    present = {(r["scheme"], r["steps"]) for r in rows}
    cols = [c for c in cols if (c[0], c[1]) in present]
    out = []

    def temp(st, k):
        ts = {r.get("temperature") for r in rows if r["scheme"] == st[0] and r["steps"] == st[1]
              and r["k"] == k and r["channel"] in ("awgn", "rayleigh")}
        ts.discard(None)
        return f" (T {'/'.join(f'{t:g}' for t in sorted(ts))})" if ts else ""

    def cell(r):
        return f"{r['psnr']:.2f} / {100 * r['accuracy']:.1f} / {r['fid']:.1f} / {r['hf_ratio']:.2f}" if r else "–"

    for channel, csi in (("awgn", ""), ("rayleigh", "perfect")):
        for k in (128, 32):
            out.append(f"\n**k = {k}, {channel}** — PSNR dB / accuracy % / FID-FMNIST / hf_ratio\n")
            out.append("| SNR | " + " | ".join(c[2] + temp(c, k) for c in cols) + " |")
            out.append("|---" * (len(cols) + 1) + "|")
            for snr in (0.0, 5.0, 10.0, 20.0):
                out.append(f"| {snr:.0f} dB | " + " | ".join(cell(idx.get((k, channel, csi, snr, s, st)))
                                                           for s, st, _ in cols) + " |")

    out.append("\n**Per-symbol noise variance ablation** (8-tap selective fading, zero forcing) — PSNR dB\n")
    sel_steps = min((r["steps"] for r in rows if r["scheme"] == "student" and r["channel"] == "selective"), default=2)
    out.append(f"| k | CSI | SNR | DeepJSCC (noise_var) | same net, SNR only | gain | student {sel_steps} |")
    out.append("|---|---|---|---|---|---|---|")
    for k in (128, 32):
        for csi in ("perfect", "estimated"):
            for snr in (0.0, 5.0, 10.0, 20.0):
                a = idx.get((k, "selective", csi, snr, "deepjscc", None))
                b = idx.get((k, "selective", csi, snr, "deepjscc_nonv", None))
                s = idx.get((k, "selective", csi, snr, "student", sel_steps))
                if a and b:
                    out.append(f"| {k} | {csi} | {snr:.0f} dB | {a['psnr']:.2f} | {b['psnr']:.2f} | "
                               f"{a['psnr'] - b['psnr']:+.2f} | " + (f"{s['psnr']:.2f}" if s else "–") + " |")
    return "\n".join(out) + "\n"


def _student_cells(by, kk, students, tally, compare) -> list[str]:
    """One table row's cells: compare(row) -> (meets, text) per student step count, counted in tally."""
    cells = []
    for s in students:
        r = by.get((kk, s))
        if r is None:
            cells.append("–")
            continue
        ok, text = compare(r)
        tally[s][0] += ok
        tally[s][1] += 1
        cells.append(text)
    return cells


FID_CUT_BAR, PSNR_COST_BAR = 0.40, 0.8   # the generative decoder's target against DeepJSCC


def vs_teacher_tables(rows) -> str:
    teacher = {key(r): r for r in rows if r["scheme"] == "teacher"}
    deepjscc = {key(r): r for r in rows if r["scheme"] == "deepjscc"}
    students = sorted({r["steps"] for r in rows if r["scheme"] == "student"})
    out = [] if not teacher else ["\n**Students vs their teacher** — ΔPSNR dB / Δaccuracy points / FID ratio "
           f"(bar: |ΔPSNR| ≤ {MAX_DPSNR_DB}, Δacc ≥ −{100 * MAX_ACC_DROP:g}, FID ratio ≤ {BAR_FID_RATIO:.2f}; "
           "✗ = misses)\n",
           "| k | channel | SNR | " + " | ".join(f"student {s}" for s in students) + " |",
           "|---" * (3 + len(students)) + "|"]
    by = {(key(r), r["steps"]): r for r in rows if r["scheme"] == "student"}
    tally = {s: [0, 0] for s in students}
    for kk in sorted(teacher, key=lambda x: (-x[0], x[1], x[2], x[3])):
        if kk[1] not in ("awgn", "rayleigh"):
            continue
        def against_teacher(r, t=teacher[kk]):
            d = vs_teacher(r, t)
            ok = meets(d)
            return ok, fmt(d) + ("" if ok else " ✗") + f" (T {r.get('temperature')})"
        cells = _student_cells(by, kk, students, tally, against_teacher)
        out.append(f"| {kk[0]} | {kk[1]} | {kk[3]:.0f} dB | " + " | ".join(cells) + " |")
    if teacher:
        out.append("\n" + "; ".join(f"student {s}: {a}/{n} points meet the bar" for s, (a, n) in tally.items()))

    target = {s: [0, 0] for s in students}
    out += ["\n**Students vs DeepJSCC** — FID reduction % / Δaccuracy points / PSNR cost dB / "
            f"|1 − hf_ratio| student vs DeepJSCC (✓ = FID cut ≥ {100 * FID_CUT_BAR:.0f} % at a PSNR cost ≤ "
            f"{PSNR_COST_BAR} dB)\n",
            "| k | channel | SNR | " + " | ".join(f"student {s}" for s in students) + " |",
            "|---" * (3 + len(students)) + "|"]
    for kk in sorted(deepjscc, key=lambda x: (-x[0], x[1], x[2], x[3])):
        if kk[1] not in ("awgn", "rayleigh"):
            continue
        def against_deepjscc(r, d=deepjscc[kk]):
            ok = 1 - r["fid"] / d["fid"] >= FID_CUT_BAR and d["psnr"] - r["psnr"] <= PSNR_COST_BAR
            return ok, (f"{100 * (1 - r['fid'] / d['fid']):.0f} / {100 * (r['accuracy'] - d['accuracy']):+.1f} / "
                        f"{d['psnr'] - r['psnr']:.2f} / {abs(1 - r['hf_ratio']):.2f} vs {abs(1 - d['hf_ratio']):.2f}"
                        + (" ✓" if ok else ""))
        cells = _student_cells(by, kk, students, target, against_deepjscc)
        out.append(f"| {kk[0]} | {kk[1]} | {kk[3]:.0f} dB | " + " | ".join(cells) + " |")
    out.append("\n" + "; ".join(f"student {s}: {a}/{n} points meet the target" for s, (a, n) in target.items()))
    return "\n".join(out) + "\n"


def ablation_tables(rows) -> str:
    """Per variant (rows tagged `variant`, both decoders evaluated in one run): the noise-variance
    decoder's PSNR and its gain over the SNR-only decoder, on AWGN and selective fading."""
    by_variant = {}
    for r in rows:
        by_variant.setdefault((r["variant"], r["k"]), []).append(r)
    out = ["\n**Noise-variance decoder vs the SNR-only decoder, per variant** — PSNR dB with noise_var, "
           "gain dB (AWGN: no per-symbol information, the gap is the two decoders' fit)\n",
           "| variant | k | AWGN 0 / 5 dB | selective perfect 0 / 5 / 10 / 20 dB | selective estimated 0 / 5 / 10 / 20 dB |",
           "|---|---|---|---|---|"]
    for (variant, k), group in by_variant.items():
        idx = {(r["scheme"],) + key(r): r["psnr"] for r in group}

        def cells(channel, csi, snrs):
            res = []
            for snr in snrs:
                a, b = idx.get(("deepjscc", k, channel, csi, snr)), idx.get(("deepjscc_nonv", k, channel, csi, snr))
                res.append("–" if a is None or b is None else f"{a:.2f} {a - b:+.2f}")
            return " / ".join(res)

        out.append(f"| {variant}: {group[0].get('variant_desc', '')} | {k} | {cells('awgn', '', (0.0, 5.0))} | "
                   f"{cells('selective', 'perfect', (0.0, 5.0, 10.0, 20.0))} | "
                   f"{cells('selective', 'estimated', (0.0, 5.0, 10.0, 20.0))} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl", nargs="?")
    ap.add_argument("--vs-teacher", metavar="JSONL")
    ap.add_argument("--ablation", metavar="JSONL", help="rows tagged with a `variant`")
    args = ap.parse_args(argv)
    if not (args.jsonl or args.vs_teacher or args.ablation):
        ap.error("give a JSON-lines file")
    if args.jsonl:
        print(readme_tables(load(args.jsonl)))
    if args.vs_teacher:
        print(vs_teacher_tables(load(args.vs_teacher)))
    if args.ablation:
        print(ablation_tables(load(args.ablation)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
