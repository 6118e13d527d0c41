"""`diffsem measure posterior`: are the diffusion decoders posterior samplers?

    diffsem measure posterior [--k 128 32] [--snr 0 5 10 20] [--steps 1 2] [--n 200] [--markdown PATH]

Per k and SNR (AWGN): the first --n images of the split are encoded at that SNR and sent once
through diffsem.channel.transmit (seeded with --seed). Each student of --steps then draws
--samples images per received frame (S = 8; draw j's source noise seeded with (seed, j)) at two
temperatures: its card's and 1.0 (the source noise at the scale it was trained with). Every
draw, the mean of the S draws and the DeepJSCC image of the same frame are encoded again at the
same SNR and compared with what was received (diffsem.experiments.posterior):

* normalised residual |y - enc(x')|^2 / sigma^2 per image (mean over symbols): a draw from the
  posterior gives 1 on average, the posterior mean less (N/(P+N) per symbol in the Gaussian
  case), a draw that ignores y more. `residual_original` is the transmitted image's own (the
  channel noise alone, 1 by construction): the yardstick.
* spread: pair_msd = mean squared distance between two draws of one frame, mean_mse = squared
  error of the mean of the S draws, ratio = pair_msd / (2 mean_mse), 1 / (1 + 1/S) for posterior
  draws (0.889 for S = 8); lower means over-confident draws.

One JSON line per (k, SNR, steps, temperature): scheme, steps, temperature, temperature_from
("card" or "full"), k, snr_db, samples, residual_sample_* (every draw on its own, pooled over
the S draws and the images), residual_mean_* (the mean of the S draws), residual_deepjscc_*
(* = mean, median, q10, q90 over images), residual_original_mean, pair_msd, mean_mse, ratio,
posterior_ratio, psnr_sample, psnr_mean, psnr_deepjscc, n, seed, split.
"""
from __future__ import annotations

import copy
import json
import sys
import time

import numpy as np

from diffsem import args as checks
from diffsem import metrics
from diffsem.experiments.posterior import normalised_residual, spread_ratio
from diffsem.experiments.schemes import encode_at, load_scheme
from diffsem_apps import decoder_measure
from diffsem_apps.decoder_measure import table

PROG = "diffsem measure posterior"
SAMPLES = 8
FULL_TEMPERATURE = 1.0
# what the page calls posterior-like: a draw's residual within this band around 1, the mean of the
# draws below a draw, the spread ratio within RATIO_TOL of 1 / (1 + 1/S)
RESIDUAL_BAND = (0.8, 1.25)
RATIO_TOL = 0.1


def _stats(values, prefix: str) -> dict:
    v = np.asarray(values, dtype=np.float64).ravel()
    q10, median, q90 = np.quantile(v, [0.1, 0.5, 0.9])
    return {f"{prefix}_mean": round(float(v.mean()), 4), f"{prefix}_median": round(float(median), 4),
            f"{prefix}_q10": round(float(q10), 4), f"{prefix}_q90": round(float(q90), 4)}


def _batched(fn, n: int, batch: int):
    return np.concatenate([np.asarray(fn(slice(i, i + batch))) for i in range(0, n, batch)])


def point_rows(student, deepjscc, images, snr_db: float, temperatures, samples: int = SAMPLES, seed: int = 0,
               batch: int = 256) -> list[dict]:
    """The rows of one (k, SNR) point for one student (its encoder sends; deepjscc decodes the same
    frames): one per temperature of `temperatures` (pairs (value, label))."""
    import torch

    from diffsem.channel import transmit
    n = len(images)
    snr = np.full(n, snr_db, dtype=np.float32)
    sent = _batched(lambda s: encode_at(student, images[s], snr_db), n, batch).astype(np.float32)
    s_hat, nv = transmit(torch.from_numpy(sent), float(snr_db), "awgn", "perfect",
                         torch.Generator().manual_seed(int(seed)))
    s_hat, nv = s_hat.numpy().astype(np.float32), nv.numpy().astype(np.float32)

    def decode(scheme, rng):
        return _batched(lambda s: scheme.decode(s_hat[s], snr[s], nv[s], rng), n, batch).astype(np.float32)

    def residual(x):
        return normalised_residual(s_hat, _batched(lambda s: encode_at(student, x[s], snr_db), n, batch), nv)

    dj = decode(deepjscc, np.random.default_rng(int(seed)))
    common = {"k": student.k, "snr_db": float(snr_db), "samples": int(samples)}
    reference = {**_stats(residual(dj), "residual_deepjscc"),
                 "residual_original_mean": round(float(normalised_residual(s_hat, sent, nv).mean()), 4),
                 "psnr_deepjscc": round(float(metrics.psnr(dj, images).mean()), 4)}
    rows = []
    for temperature, label in temperatures:
        sampler = copy.copy(student)
        sampler.temperature = float(temperature)
        draws = np.stack([decode(sampler, np.random.default_rng([int(seed), j])) for j in range(samples)])
        mean = draws.mean(0)
        spread = spread_ratio(draws, images)
        row = {"scheme": student.name, "steps": student.steps, "temperature": float(temperature),
               "temperature_from": label, **common,
               **_stats(np.stack([residual(x) for x in draws]), "residual_sample"),
               **_stats(residual(mean), "residual_mean"), **reference}
        row.update({key: round(float(spread[key]), 6) for key in ("pair_msd", "mean_mse", "ratio", "posterior_ratio")})
        row.update(psnr_sample=round(float(np.mean([metrics.psnr(x, images).mean() for x in draws])), 4),
                   psnr_mean=round(float(metrics.psnr(mean, images).mean()), 4), n=n, seed=int(seed))
        rows.append(row)
    return rows


def posterior_like(row) -> bool:
    lo, hi = RESIDUAL_BAND
    return (lo <= row["residual_sample_mean"] <= hi and row["residual_mean_mean"] < row["residual_sample_mean"]
            and abs(row["ratio"] - row["posterior_ratio"]) <= RATIO_TOL)


# --- the markdown page -------------------------------------------------------------------------

def markdown_body(rows) -> list[str]:
    r0 = rows[0]
    s = r0["samples"]
    out = [f"AWGN, the first {r0['n']} images of the {r0.get('split', 'test')} split, one channel draw per "
           f"image (seed {r0['seed']}), S = {s} draws per received frame from each student, at its card's "
           "temperature and at 1.0 (the source noise at its trained scale). Every image is encoded again at the "
           "same SNR; the normalised residual is |y - enc(x')|^2 / sigma^2 per image (mean over symbols), "
           "shown as mean (median, 10-90 % quantiles) over images.", "",
           "**What a posterior sampler would show:** a draw's residual about 1 (the transmitted image's own "
           "residual, the channel noise alone, is 1 by construction: column `original`), the mean of the draws "
           "lower, like the MMSE-like DeepJSCC image (in a linear Gaussian code; the encoder here is not linear, so "
           "the re-encoded mean is not the posterior mean of the symbols and its residual need not fall below 1, "
           "while a posterior draw's is 1 whatever the encoder); and draws that spread as much as they err: "
           f"ratio = pair_msd / (2 mean_mse) = 1 / (1 + 1/S) = {1 / (1 + 1 / s):.3f} for S = {s}. A ratio "
           "far below means over-confident draws (too little spread for the error they make). "
           f"`posterior-like` here: a draw's mean residual within {RESIDUAL_BAND[0]:g}-{RESIDUAL_BAND[1]:g}, "
           f"the mean of the draws below it, and the ratio within {RATIO_TOL:g} of {1 / (1 + 1 / s):.3f}.", ""]
    for k in dict.fromkeys(r["k"] for r in rows):
        out += [f"## k = {k}", ""]
        lines = []
        for r in sorted((r for r in rows if r["k"] == k), key=lambda r: (r["snr_db"], r["steps"], r["temperature"])):
            def res(p):
                return f"{r[p + '_mean']:.2f} ({r[p + '_median']:.2f}, {r[p + '_q10']:.2f}-{r[p + '_q90']:.2f})"

            lines.append([f"{r['snr_db']:g}", f"s{r['steps']}", f"{r['temperature']:g} ({r['temperature_from']})",
                          res("residual_sample"), res("residual_mean"), res("residual_deepjscc"),
                          f"{r['residual_original_mean']:.2f}", f"{r['pair_msd']:.5f}", f"{r['mean_mse']:.5f}",
                          f"{r['ratio']:.3f}", f"{r['psnr_sample']:.2f} / {r['psnr_mean']:.2f} / {r['psnr_deepjscc']:.2f}",
                          "yes" if posterior_like(r) else "no"])
        out += table(["SNR dB", "student", "T", "residual: one draw", f"mean of {s}", "DeepJSCC", "original",
                      "pair_msd", "mean_mse", "ratio", "PSNR draw / mean / DeepJSCC", "posterior-like"], lines)
        out.append("")
    like = [r for r in rows if posterior_like(r)]
    below = sum(r["ratio"] < r["posterior_ratio"] - RATIO_TOL for r in rows)
    high = sum(r["residual_sample_mean"] > RESIDUAL_BAND[1] for r in rows)
    low = sum(r["residual_sample_mean"] < RESIDUAL_BAND[0] for r in rows)
    out.append(f"**Posterior-like at {len(like)} of {len(rows)} points** "
               f"({sum(r['temperature_from'] == 'full' for r in like)} of them at T = 1.0). A draw's residual is "
               f"above {RESIDUAL_BAND[1]:g} at {high} points and below {RESIDUAL_BAND[0]:g} at {low}; the spread "
               f"ratio is more than {RATIO_TOL:g} below {1 / (1 + 1 / s):.3f} at {below} points.")
    return out


# --- command line ------------------------------------------------------------------------------

def _own_arguments(p) -> None:
    p.add_argument("--samples", type=checks.int_range(2, 64), default=SAMPLES, help="draws per received frame")


def main(argv=None) -> int:
    argv = decoder_measure.argv_of(argv)
    a = decoder_measure.parse(PROG, __doc__, argv, 200, _own_arguments)
    import torch

    from diffsem import data
    torch.set_num_threads(a.threads)
    images, _ = data.load(a.split)
    images = images[:a.n]
    rows = []
    for k in a.k:
        deepjscc = load_scheme("deepjscc", k, threads=a.threads)
        for steps in a.steps:
            student = load_scheme("student", k, steps, threads=a.threads)  # its card's temperature
            temperatures = [(student.temperature, "card")]
            if student.temperature != FULL_TEMPERATURE:
                temperatures.append((FULL_TEMPERATURE, "full"))
            for snr in a.snr:
                t0 = time.perf_counter()
                for r in point_rows(student, deepjscc, images, snr, temperatures, a.samples, a.seed):
                    r["split"] = a.split
                    rows.append(r)
                    print(json.dumps(r), flush=True)
                print(f"{PROG}: k={k} s{steps} {snr:g} dB: {time.perf_counter() - t0:.1f} s", file=sys.stderr,
                      flush=True)
    if a.markdown:
        decoder_measure.write_page(a.markdown, "Are the diffusion decoders posterior samplers?", PROG, argv,
                                   markdown_body(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
