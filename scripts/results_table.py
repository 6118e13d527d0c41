#!/usr/bin/env python3
"""Markdown tables for the README from `diffsem eval` JSON lines (docs/results/eval_models.jsonl).

    python scripts/results_table.py docs/results/eval_models.jsonl
"""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
idx = {(r["k"], r["channel"], r.get("csi") or "", r["snr_db"], r["scheme"], r["steps"]): r for r in rows}
cols = [("deepjscc", None, "DeepJSCC"), ("teacher", 32, "teacher (32)"), ("student", 1, "student 1"),
        ("student", 2, "student 2"), ("student", 4, "student 4")]


def cell(r):
    return f"{r['psnr']:.2f} / {100 * r['accuracy']:.1f} / {r['fid']:.1f} / {r['hf_ratio']:.2f}" if r else "–"


for channel, csi in (("awgn", ""), ("rayleigh", "perfect")):
    for k in (128, 32):
        print(f"\n**k = {k}, {channel}** — PSNR dB / accuracy % / FID-FMNIST / hf_ratio\n")
        print("| SNR | " + " | ".join(c[2] for c in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for snr in (0.0, 5.0, 10.0, 20.0):
            print(f"| {snr:.0f} dB | " + " | ".join(cell(idx.get((k, channel, csi, snr, s, st))) for s, st, _ in cols) + " |")

print("\n**Per-symbol noise variance ablation** (8-tap selective fading, zero forcing) — PSNR dB\n")
print("| k | CSI | SNR | DeepJSCC (noise_var) | same net, SNR only | gain | student 2 |")
print("|---|---|---|---|---|---|---|")
for k in (128, 32):
    for csi in ("perfect", "estimated"):
        for snr in (0.0, 5.0, 10.0, 20.0):
            a = idx.get((k, "selective", csi, snr, "deepjscc", None))
            b = idx.get((k, "selective", csi, snr, "deepjscc_nonv", None))
            s = idx.get((k, "selective", csi, snr, "student", 2))
            if a and b:
                print(f"| {k} | {csi} | {snr:.0f} dB | {a['psnr']:.2f} | {b['psnr']:.2f} | "
                      f"{a['psnr'] - b['psnr']:+.2f} | {s['psnr']:.2f} |")
