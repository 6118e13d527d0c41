"""`diffsem measure controls`: a perceptual gain counts only beside trivial post-processing of
DeepJSCC at the same PSNR cost.

    diffsem measure controls [--k 128 32] [--snr 0 5 10 20] [--steps 1 2] [--n 1000] [--markdown PATH]

Per k and SNR (AWGN, the first --n images of the split, seed --seed): DeepJSCC and each student
of --steps at its card's temperature decode the same channel draws
(diffsem.experiments.evaluate.reconstruct). A student's PSNR cost is c = PSNR(DeepJSCC) -
PSNR(student). Two controls are built from the DeepJSCC images at exactly that cost (bisection
on the mean PSNR of the whole set to --tol dB, diffsem.experiments.controls): white Gaussian noise
(sigma, clipped to [0, 1], seeded with --seed) and unsharp masking x + a (x - blur_1px(x))
(amount a; `reached: false` when even a = 256 cannot lose that much PSNR, or when the cost is
negative). Every image set is scored by diffsem.experiments.evaluate.score.

One JSON line per image set: scheme (deepjscc, student, deepjscc+noise, deepjscc+unsharp),
steps, temperature (a control carries its student's), k, snr_db, psnr, ssim, accuracy, fid,
hf_ratio, accuracy_robust (the classifier trained with noise and blur, models/classifier_robust.pt,
which noise or sharpening cannot fool), n, seed, split; students and controls add psnr_cost_db; controls add target_cost_db,
reached and sigma or amount.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np

from diffsem import args as checks
from diffsem import metrics
from diffsem.experiments import controls
from diffsem.experiments.evaluate import reconstruct, score
from diffsem.experiments.schemes import load_scheme
from diffsem_apps import decoder_measure
from diffsem_apps.decoder_measure import table

PROG = "diffsem measure controls"
CONTROLS = (("deepjscc+noise", "sigma"), ("deepjscc+unsharp", "amount"))


def _mean_psnr(images, originals) -> float:
    return float(np.mean(metrics.psnr(images, originals)))


def point_rows(deepjscc, students, images, labels, snr_db: float, seed: int = 0, tol: float = controls.TOL_DB,
               net=None, batch: int = 256, robust_net=None) -> list[dict]:
    """The rows of one (k, SNR) point: DeepJSCC, then per student the student and its two controls.
    robust_net: a second classifier whose accuracy is added as accuracy_robust."""
    common = {"k": deepjscc.k, "snr_db": float(snr_db)}

    def row(scheme, steps, temperature, recons, **extra):
        r = {"scheme": scheme, "steps": steps, "temperature": temperature, **common}
        r.update(score(recons, images, labels, net))
        if robust_net is not None:
            r["accuracy_robust"] = round(metrics.accuracy(recons, labels, net=robust_net), 5)
        r.update(extra, seed=int(seed))
        return r

    base, _ = reconstruct(deepjscc, images, "awgn", snr_db, seed=seed, batch=batch)
    base_psnr = _mean_psnr(base, images)
    rows = [row("deepjscc", None, None, base)]
    for student in students:
        recons, _ = reconstruct(student, images, "awgn", snr_db, seed=seed, batch=batch)
        target = _mean_psnr(recons, images)
        t = float(student.temperature)
        rows.append(row("student", student.steps, t, recons, psnr_cost_db=round(base_psnr - target, 4)))
        made = (controls.match_noise(base, images, target, seed=seed, tol=tol),
                controls.match_unsharp(base, images, target, tol=tol))
        for (name, param), c in zip(CONTROLS, made):
            rows.append(row(name, student.steps, t, c.images, **{param: round(float(c.parameter), 6)},
                            psnr_cost_db=round(base_psnr - c.psnr, 4),
                            target_cost_db=round(base_psnr - target, 4), reached=bool(c.reached)))
    return rows


# --- the markdown page -------------------------------------------------------------------------

def _beats_both(cells, key: str = "fid") -> bool:
    """The student better than both controls on `key`: a lower FID, or a higher accuracy."""
    mine, others = cells["student"][key], (cells["deepjscc+noise"][key], cells["deepjscc+unsharp"][key])
    return mine < min(others) if key == "fid" else mine > max(others)


def markdown_body(rows) -> list[str]:
    order = ("deepjscc", "student", "deepjscc+noise", "deepjscc+unsharp")
    ks = list(dict.fromkeys(r["k"] for r in rows))
    n, seed = rows[0]["n"], rows[0]["seed"]
    robust = all("accuracy_robust" in r for r in rows)
    keys = ("fid", "accuracy_robust") if robust else ("fid",)
    names = {"fid": "FID", "accuracy_robust": "robust accuracy"}
    out = [f"AWGN, the first {n} images of the {rows[0].get('split', 'test')} split, seed {seed}; each student "
           "at its card's temperature T. The PSNR cost is PSNR(DeepJSCC) - PSNR(student) (dB, mean per image); "
           "`+noise` adds white Gaussian noise of standard deviation sigma to the DeepJSCC images and "
           "`+unsharp` sharpens them by x + a (x - blur(x)) (Gaussian blur, 1 pixel), each at that same PSNR "
           "cost to 0.01 dB (clipped to [0, 1]). Cells: DeepJSCC / student / +noise / +unsharp. FID-FMNIST "
           "is biased upward at small n: compare within a row."
           + (" `accuracy` is the shipped classifier's, `robust accuracy` that of the same network trained on "
              "images blurred and noised at random (models/classifier_robust.pt, recipe "
              "models/recipes/classifier_robust.yaml): noise or sharpening cannot buy accuracy from it. One "
              f"image is {100 / n:.2g} accuracy points; a tie is not a win." if robust else ""), ""]
    total = 0
    wins = dict.fromkeys(keys, 0)
    unreached = False
    for k in ks:
        for steps in sorted({r["steps"] for r in rows if r["k"] == k and r["scheme"] == "student"}):
            snrs = sorted({r["snr_db"] for r in rows if r["k"] == k})
            temps = sorted({r["temperature"] for r in rows if r["k"] == k and r["steps"] == steps
                            and r["scheme"] == "student"})
            out += [f"## k = {k}, student s{steps} (T {'/'.join(f'{t:g}' for t in temps)})", ""]
            lines, here = [], dict.fromkeys(keys, 0)
            for s in snrs:
                cells = {r["scheme"]: r for r in rows if r["k"] == k and r["snr_db"] == s
                         and (r["scheme"] == "deepjscc" or r["steps"] == steps)}
                if any(name not in cells for name in order):
                    continue
                mark = "" if cells["deepjscc+unsharp"]["reached"] else " †"
                unreached |= bool(mark)
                beats = {key: _beats_both(cells, key) for key in keys}
                for key in keys:
                    here[key] += beats[key]

                def four(key, fmt):
                    return " / ".join(fmt(cells[name][key]) for name in order) + mark

                percent = lambda v: f"{100 * v:.1f}"  # noqa: E731
                lines.append([f"{s:g}", f"{cells['student']['psnr_cost_db']:.2f}",
                              four("fid", lambda v: f"{v:.1f}"), four("accuracy", percent)]
                             + ([four("accuracy_robust", percent)] if robust else [])
                             + [four("hf_ratio", lambda v: f"{v:.2f}"),
                                f"{cells['deepjscc+noise']['sigma']:.4f} / {cells['deepjscc+unsharp']['amount']:.3g}",
                                " / ".join("yes" if beats[key] else "no" for key in keys)])
            out += table(["SNR dB", "PSNR cost dB", "FID-FMNIST", "accuracy %"]
                         + (["robust accuracy %"] if robust else [])
                         + ["hf_ratio", "sigma / a", "student beats both on " + " / ".join(names[key] for key in keys)],
                         lines)
            out += ["", "The student beats both controls on " + ", on ".join(
                f"{names[key]} at {here[key]} of {len(lines)} points" for key in keys) + ".", ""]
            total += len(lines)
            for key in keys:
                wins[key] += here[key]
    if unreached:
        out += ["† unsharp masking could not lose that much PSNR (amount up to "
                f"{controls.MAX_AMOUNT:g}, or a negative cost): `reached: false`, the row shows the closest "
                "amount tried.", ""]
    out.append("**In all: the student beats both controls on " + ", on ".join(
        f"{names[key]} at {wins[key]} of {total} points" for key in keys) + ".**")
    return out


# --- command line ------------------------------------------------------------------------------

def _own_arguments(p) -> None:
    p.add_argument("--tol", type=checks.positive_float, default=controls.TOL_DB, help="PSNR match tolerance, dB")


def main(argv=None) -> int:
    argv = decoder_measure.argv_of(argv)
    a = decoder_measure.parse(PROG, __doc__, argv, 1000, _own_arguments)
    import torch

    from diffsem import data
    from diffsem.nn.classifier import ROBUST, load_classifier
    torch.set_num_threads(a.threads)
    images, labels = data.load(a.split)
    images, labels = images[:a.n], labels[:a.n]
    net = load_classifier()
    robust_net = load_classifier(name=ROBUST)
    rows = []
    for k in a.k:
        deepjscc = load_scheme("deepjscc", k, threads=a.threads)
        students = [load_scheme("student", k, s, threads=a.threads) for s in a.steps]  # card temperatures
        for snr in a.snr:
            t0 = time.perf_counter()
            for r in point_rows(deepjscc, students, images, labels, snr, a.seed, a.tol, net,
                                robust_net=robust_net):
                r["split"] = a.split
                rows.append(r)
                print(json.dumps(r), flush=True)
            print(f"{PROG}: k={k} {snr:g} dB: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    if a.markdown:
        decoder_measure.write_page(a.markdown, "Perceptual gain against trivial post-processing at the same PSNR "
                                   "cost", PROG, argv, markdown_body(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
