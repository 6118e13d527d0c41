"""`diffsem measure reliability`: fit the per-image reliability score (diffsem.runtime.reliability)
of the shipped decoders on the validation split, and measure its calibration on the test set.

The score re-encodes each decoded image with the link's encoder (the consistency features of
diffsem.runtime.reliability). Fit: the validation split, each image over one of AWGN / flat Rayleigh / selective (estimated
CSI, the receiver's noise variances), an SNR uniform in [-2, 22] dB (a symbol reported better is
read as 22 dB, in the fit and at the receiver) and an erasure fraction drawn
from {0, 0.1, 0.25, 0.5} (channel.transmit's "erasure" impairment), encoded at the encoder's
default SNR (the transmitter does not know the channel). Test: the first --test-n test images
over AWGN at SNR {0, 5, 10, 20} x erasure {0, 0.1, 0.25, 0.5}: Pearson correlation of the
predicted and the true per-image PSNR, one JSON line per decoder, and a reliability plot per k.
The line's `beyond_fit` holds AWGN 30, 40 and 60 dB (no erasure), mean true and predicted PSNR:
what a cable or a bench reads, outside r.
"""
from __future__ import annotations

import json
import time

import numpy as np

from diffsem import data
from diffsem.experiments.schemes import load_scheme
from diffsem.metrics import psnr
from diffsem.runtime import naming, reliability
from diffsem.runtime.cards import load_card

FIT_CHANNELS = ("awgn", "rayleigh", "selective")
ERASURES = (0.0, 0.1, 0.25, 0.5)
FIT_SNR_DB = (-2.0, 22.0)
TEST_SNRS = (0.0, 5.0, 10.0, 20.0)
BEYOND_FIT_SNRS = (30.0, 40.0, 60.0)   # a cable or a bench: above the fit's SNRs, no erasure


def run_channel(scheme, images, channel, snr_db, erasure, seed, batch=250):
    """(recons [N,1,28,28], noise_var [N,k], received symbols [N,k,2]) through channel.transmit;
    snr_db, erasure per image."""
    import torch

    from diffsem.channel import transmit
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    recs, nvs, syms = [], [], []
    csi = "perfect" if channel == "awgn" else "estimated"
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        snr = torch.as_tensor(snr_db[i:i + batch], dtype=torch.float32)
        frac = torch.as_tensor(erasure[i:i + batch], dtype=torch.float32)
        sym = torch.from_numpy(np.asarray(scheme.encode(x), np.float32))
        s_hat, nv = transmit(sym, snr, channel, csi, gen, impairment=("erasure", frac, 0.0))
        # the decoder is told the SNR the encoder ran at, as diffusion_decoder is (encoder_snr_db)
        recs.append(scheme.decode(s_hat.numpy(), np.full(len(x), scheme.encode_snr_db, np.float32), nv.numpy(), rng))
        nvs.append(nv.numpy())
        syms.append(s_hat.numpy())
    return np.concatenate(recs), np.concatenate(nvs), np.concatenate(syms)


def _plot(path, results, k):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.6), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        pred, true, snr = r["pred"], r["true"], r["snr"]
        for s, c in zip(TEST_SNRS, ("tab:red", "tab:orange", "tab:green", "tab:blue")):
            m = snr == s
            ax.scatter(pred[m], true[m], s=3, alpha=0.25, color=c, label=f"{s:g} dB")
        edges = np.percentile(pred, np.linspace(0, 100, 11))
        idx = np.clip(np.digitize(pred, edges[1:-1]), 0, 9)
        bx = [pred[idx == b].mean() for b in range(10) if (idx == b).any()]
        by = [true[idx == b].mean() for b in range(10) if (idx == b).any()]
        ax.plot(bx, by, "k-o", ms=4, label="binned mean")
        lo, hi = min(pred.min(), true.min()), max(pred.max(), true.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="ideal")
        ax.set_xlabel("predicted PSNR (dB, receiver only)")
        ax.set_ylabel("true PSNR (dB)")
        ax.set_title(f"{name} k={k}: r = {r['pearson']:.3f}")
        ax.legend(fontsize=7, markerscale=3)
    fig.suptitle("Reliability: AWGN, SNR {0,5,10,20} dB x erasure {0,10,25,50} %, test set")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    """diffsem measure reliability [--fit-n N] [--test-n N] [--k 32,128] [--decoders deepjscc,student_s2]"""
    import argparse
    from pathlib import Path

    from diffsem import models_dir
    p = argparse.ArgumentParser(prog="diffsem measure reliability", description=__doc__)
    p.add_argument("--fit-n", type=int, default=2000, help="validation images for the fit")
    p.add_argument("--test-n", type=int, default=500, help="test images per (SNR, erasure) point")
    p.add_argument("--k", default="32,128")
    p.add_argument("--decoders", default="deepjscc,student_s2", help="deepjscc, student_s1/s2/s4")
    p.add_argument("--out", default=None, help="mapping file (default: models/reliability.json)")
    p.add_argument("--figures", default="docs/figures")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = Path(a.out) if a.out else Path(models_dir()) / reliability.FILE_NAME
    doc = json.loads(out.read_text()) if out.is_file() else {}
    doc.update(about=("predicted per-image PSNR = weights . features (diffsem.runtime.reliability), "
                      "ridge regression on the validation split; made by: diffsem measure reliability "
                      + " ".join(argv or [])).strip(),
               fit=dict(split="val", n=a.fit_n, channels=list(FIT_CHANNELS), snr_db=list(FIT_SNR_DB),
                        erasure=list(ERASURES), csi="estimated on fading channels", seed=a.seed))
    doc.setdefault("models", {})
    xv, _ = data.load("val")
    xt, _ = data.load("test")
    xv, xt = xv[:a.fit_n], xt[:a.test_n]
    rng = np.random.default_rng(a.seed)
    fit_snr = rng.uniform(*FIT_SNR_DB, len(xv)).astype(np.float32)
    fit_era = rng.choice(ERASURES, len(xv)).astype(np.float32)
    fit_ch = np.arange(len(xv)) % len(FIT_CHANNELS)
    for k in [int(v) for v in a.k.split(",")]:
        results = {}
        for dec in a.decoders.split(","):
            t0 = time.time()
            name, steps = (dec.split("_s")[0], int(dec.split("_s")[1])) if "_s" in dec else (dec, None)
            scheme = load_scheme(name, k, steps, threads=a.threads)
            nvs, recs, syms, trues = [], [], [], []
            for c, ch in enumerate(FIT_CHANNELS):
                m = fit_ch == c
                rec, nv, sym = run_channel(scheme, xv[m], ch, fit_snr[m], fit_era[m], a.seed + 1 + c)
                nvs.append(nv), recs.append(rec), syms.append(sym), trues.append(psnr(rec, xv[m]))
            recs = np.concatenate(recs)
            encode = lambda x, snr, scheme=scheme: scheme.encode(x, float(snr[0]))  # noqa: E731 (one SNR)
            entry = reliability.fit(np.concatenate(nvs), recs, np.concatenate(syms),
                                    reliability.reencode(encode, recs), np.concatenate(trues),
                                    noise_var_floor=10 ** (-FIT_SNR_DB[1] / 10))
            model_name = naming.artifact_name(name, k, steps)
            entry["model_sha256"] = load_card(models_dir() / f"{model_name}.json")["sha256"]  # the file it was fitted for
            doc["models"][model_name] = entry
            model = reliability.Reliability(entry, encode)
            pred, true, snr_all, era_all, rows = [], [], [], [], []
            def test_point(s, e):
                """(predicted, true per-image PSNR) of the test images at AWGN SNR s, erasure e."""
                rec, nv, sym = run_channel(scheme, xt, "awgn", np.full(len(xt), s, np.float32),
                                           np.full(len(xt), e, np.float32), a.seed + 100)
                return model.predict(nv, rec, sym)[0], psnr(rec, xt)
            for s in TEST_SNRS:
                for e in ERASURES:
                    pr, tr = test_point(s, e)
                    pred.append(pr), true.append(tr)
                    snr_all.append(np.full(len(xt), s)), era_all.append(np.full(len(xt), e))
                    rows.append(dict(snr_db=s, erasure=e, true_psnr_db=round(float(tr.mean()), 3),
                                     predicted_psnr_db=round(float(pr.mean()), 3),
                                     pearson_within=round(float(np.corrcoef(pr, tr)[0, 1]), 3)))
            beyond = []
            for s in BEYOND_FIT_SNRS:   # not in r: the fit never saw these
                pr, tr = test_point(s, 0.0)
                beyond.append(dict(snr_db=s, true_psnr_db=round(float(tr.mean()), 3),
                                   predicted_psnr_db=round(float(pr.mean()), 3)))
            pred, true = np.concatenate(pred), np.concatenate(true)
            r = float(np.corrcoef(pred, true)[0, 1])
            results[dec] = dict(pred=pred, true=true, snr=np.concatenate(snr_all), erasure=np.concatenate(era_all), pearson=r)
            print(json.dumps(dict(decoder=dec, k=k, test_n=len(xt), fit_n=len(xv), pearson=round(r, 4),
                                  rmse_db=round(float(np.sqrt(np.mean((pred - true) ** 2))), 3),
                                  seconds=round(time.time() - t0, 1), points=rows, beyond_fit=beyond)), flush=True)
        Path(a.figures).mkdir(parents=True, exist_ok=True)
        _plot(Path(a.figures) / f"reliability_{k}.png", results, k)
    out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
