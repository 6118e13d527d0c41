"""`diffsem eval`: schemes x bandwidths x channels x SNRs on Fashion-MNIST, one JSON object per line.

    diffsem eval --scheme deepjscc teacher student --steps 1 2 --k 128 32 \\
        --channel awgn rayleigh selective --csi perfect estimated --snr 0 5 10 20 \\
        --csv runs/eval.csv --plots runs/plots --mosaic runs/mosaic.png
    diffsem eval --scheme deepjscc student linear --steps 2 --k 32 --snr 10 \\
        --impairment erasure --fraction 0 0.1 0.25 0.5 --mosaic runs/fill.png --mosaic-fraction 0.25

The points are diffsem.experiments.grid's (the grid `diffsem sweep` walks too); any scheme of
diffsem.experiments.schemes.KINDS runs, the baselines (linear, digital, separation) included.
Each point: the first --n test images are encoded by the scheme, sent through
diffsem.channel.transmit (the training channel: ZF equalisation, per-symbol noise variance, a
torch.Generator seeded with --seed so every scheme sees the same channel and noise draws), hit by
the point's partial-frame impairment (--impairment, --fraction: diffsem.channel.impair, drawn from
a generator of its own seeded from --seed, so the channel noise is the same at every fraction and
the cells erased at a fraction include those erased at a smaller one), decoded with the nominal
SNR and the reported per-symbol noise variance (an erased cell: symbol 0 with
ERASED_NOISE_VAR, what the receiver reports; each scheme's own decode takes it: the linear LMMSE
shrinks it to the mean, the digital demapper's LLRs go to 0, a channel erasure for its Viterbi
decoder), and scored by `score` (diffsem.metrics: PSNR per image on [0,1], SSIM, classifier
accuracy, FID-FMNIST, hf_ratio). The separation bound (offline) is computed at the impaired
frame's capacity (diffsem.baselines.separation.capacity_bits).

Row keys: scheme, steps, k, channel, [csi: fading channels], [impairment, fraction, sir_db: points
of the grid; impairment "none" at fraction 0, sir_db narrowband only], snr_db, psnr, ssim,
accuracy, fid, hf_ratio, n, seed (+ tx_snr_db with --tx-snr fixed; + nonfinite when a decoder produced NaN/inf
pixels, which are scored as 0; + the scheme's own columns, schemes.row_fields: temperature of a
sampler, mode and delivered of the digital link, delivered of the separation bound). The encoder is given the point's SNR when its encode() takes
`snr_db` (the SNR-adaptive encoders are trained that way); --tx-snr fixed runs it at its default.

`evaluate_point` is the one runner: the sweep (library and flowgraph paths, the latter as an
injected channel path) and the GNU Radio demo reuse it and `score`; rows go through
diffsem.experiments.rows, figures through diffsem.experiments.plots.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from diffsem import args as checks
from diffsem import metrics
from diffsem.experiments.rows import RowWriter, done_keys
from diffsem.experiments.rows import key as row_key
from diffsem.experiments import grid, plots
from diffsem.experiments import schemes as _schemes
from diffsem.experiments.schemes import KINDS, encode_at, samples
from diffsem.args import UsageError

log = logging.getLogger("diffsem.experiments.evaluate")

SCHEMES = _schemes.ALL_SCHEMES  # deepjscc_nonv: the ablation without noise_var
DEFAULT_SCHEMES = ("deepjscc", "teacher", "student")
RESUME_KEY = ("scheme", "steps", "temperature", "k", "channel", "csi", "impairment", "fraction", "sir_db",
              "snr_db", "n", "seed")  # grid coordinates
ROW_KEYS = ("scheme", "steps", "k", "channel", "csi", "impairment", "fraction", "sir_db", "snr_db", "psnr", "ssim",
            "accuracy", "fid", "hf_ratio", "n", "seed", "tx_snr_db", "nonfinite", "temperature", "mode", "delivered")
IMPAIRMENT_STREAM = 1  # the impairment generator's seed: SeedSequence((seed, IMPAIRMENT_STREAM))


def load_scheme(name: str, k: int, steps=None, backend: str = "onnx", device: str = "cpu", **kwargs):
    """schemes.make_scheme (tests substitute a fake). kwargs (threads) go to it as given; the
    temperature comes from the card unless --temperature."""
    return _schemes.make_scheme(name, k, steps=steps, backend=backend, device=device, **kwargs)


def at_temperatures(scheme, temperatures) -> list:
    """`scheme` once per sampling temperature (shallow copies) for the diffusion decoders; a
    scheme without a sampler (deepjscc) is returned once, whatever the temperatures."""
    import copy
    if not temperatures or not samples(scheme):
        return [scheme]
    out = []
    for t in temperatures:
        if not 0.0 <= float(t) <= 2.0:
            raise ValueError(f"temperature {t} out of range [0, 2]")
        s = copy.copy(scheme)
        s.temperature = float(t)
        out.append(s)
    return out


def _finite_or_none(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def score(recons, images, labels, net=None, device: str = "cpu") -> dict:
    """Metrics of reconstructions against the originals (no channel, no scheme): psnr, ssim,
    accuracy, fid, hf_ratio (means over images where per-image) and n."""
    n = len(images)
    logits, feats = metrics.classifier_outputs(recons, net, device=device)
    fid = float("nan")
    if n >= 2:
        mu_x, cov_x = metrics.reference_stats(images, net, device)
        fid = metrics.frechet_distance(*metrics.feature_stats(feats), mu_x, cov_x)
    return {"psnr": round(float(np.mean(metrics.psnr(recons, images))), 4),
            "ssim": round(float(np.mean(metrics.ssim(recons, images))), 5),
            "accuracy": round(metrics.accuracy_from_logits(logits, labels), 5),
            "fid": _finite_or_none(round(fid, 4)),
            "hf_ratio": _finite_or_none(round(metrics.hf_ratio(recons, images), 5)),
            "n": int(n)}


def active_impairment(impairment):
    """`impairment` (kind, fraction, sir_db) when it hits anything, else None (no kind, "none",
    or fraction 0: the point is the unimpaired one, draw for draw)."""
    if impairment is None or impairment[0] in (None, "", "none") or not float(impairment[1]):
        return None
    return (impairment[0], float(impairment[1]), float(impairment[2]))


def impairment_generator(seed: int):
    """The torch generator of a point's impairment draws: its own stream of `seed`, so that the
    channel's noise draws do not depend on the impairment."""
    import torch
    state = np.random.SeedSequence((int(seed), IMPAIRMENT_STREAM)).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def power_off(per_image_power: np.ndarray, tolerance: float = 0.05) -> bool:
    """Whether the images' mean symbol power is off unit by more than `tolerance` and by more
    than a few images' spread allows: power is unit on average over images, not per image, so a
    mosaic's handful of images may sit 10 % off a codec that is right (one image: off by 2x)."""
    p = np.asarray(per_image_power, dtype=np.float64)
    spread = 4.0 * float(np.std(p)) / np.sqrt(len(p)) if len(p) > 1 else 1.0
    return abs(float(np.mean(p)) - 1.0) > max(tolerance, spread)


def transmit_and_decode(scheme, images, channel: str, snr_db: float, csi: str = "perfect", seed: int = 0,
                        batch: int = 256, tx_snr_known: bool = True, impairment=None) -> tuple[np.ndarray, int]:
    """Reconstructions of `images` through `scheme` over the channel; (recons, nonfinite pixel count).

    tx_snr_known: give the encoder the channel SNR (as in training); False leaves the encoder at
    its own default SNR, as a transmitter without feedback would run, and tells the decoder that
    SNR (the channel reaches it through the noise variances). impairment: None or
    (kind, fraction, sir_db) of diffsem.channel.impair (drawn from impairment_generator(seed)).
    """
    import torch

    from diffsem.channel import transmit

    generator = torch.Generator().manual_seed(int(seed))
    impairment = active_impairment(impairment)
    imp_generator = impairment_generator(seed) if impairment else None
    rng = np.random.default_rng(int(seed))
    out, nonfinite, power = [], 0, []
    for i in range(0, len(images), batch):
        x = np.ascontiguousarray(images[i:i + batch], dtype=np.float32)
        symbols = np.asarray(encode_at(scheme, x, snr_db if tx_snr_known else None), dtype=np.float32)
        if symbols.shape != (len(x), scheme.k, 2):
            raise ValueError(f"{scheme.name}: encode gave {list(symbols.shape)}, expected [{len(x)}, {scheme.k}, 2]")
        power.append(np.mean(np.sum(symbols.astype(np.float64) ** 2, axis=-1), axis=-1))  # per image
        s_hat, noise_var = transmit(torch.from_numpy(symbols), float(snr_db), channel, csi, generator,
                                    impairment=impairment, impairment_generator=imp_generator)
        # A neural codec's decoder is conditioned on the SNR its encoder ran at (its symbols are scaled
        # per SNR; runtime.inference.DESIGN_SNR_DB); the baselines have no encoder SNR and take the channel's.
        told = snr_db if tx_snr_known else getattr(scheme, "encode_snr_db", snr_db)
        snr = np.full(len(x), told, dtype=np.float32)
        rec = np.asarray(scheme.decode(s_hat.numpy().astype(np.float32), snr,
                                       noise_var.numpy().astype(np.float32), rng), dtype=np.float32)
        if rec.shape != x.shape:
            raise ValueError(f"{scheme.name}: decode gave {list(rec.shape)}, expected {list(x.shape)}")
        bad = ~np.isfinite(rec)
        if bad.any():
            nonfinite += int(bad.sum())
            rec = np.where(bad, 0.0, rec).astype(np.float32)
        out.append(rec)
    power = np.concatenate(power) if power else np.zeros(0)
    if len(power) and power_off(power):
        mean = float(np.mean(power))
        log.warning("%s: encoder output has average power %.3f per complex symbol, not 1: the SNR "
                    "axis is off by %.2f dB", scheme.name, mean, 10 * np.log10(mean))
    if nonfinite:
        log.error("%s: %d non-finite output pixels at %s %.1f dB (scored as 0)", scheme.name, nonfinite,
                  channel, snr_db)
    return (np.concatenate(out) if out else np.zeros((0, 1, 28, 28), np.float32)), nonfinite


def reconstruct(scheme, images, channel: str, snr_db: float, csi: str = "perfect", seed: int = 0,
                batch: int = 256, tx_snr_known: bool = True, channel_path=None,
                impairment=None) -> tuple[np.ndarray, int]:
    """(reconstructions, nonfinite pixel count) of one point: an offline scheme (a bound)
    reconstructs by itself (told the impairment, when there is one); otherwise
    `channel_path(scheme, images)` when given (the flowgraph path, which returns (recons, 0) and
    takes no impairment), else the library channel (transmit_and_decode)."""
    impairment = active_impairment(impairment)
    if getattr(scheme, "offline", False):
        extra = {"impairment": impairment} if impairment else {}
        return np.asarray(scheme.reconstruct(images, float(snr_db), **extra), np.float32), 0
    if channel_path is not None:
        if impairment:
            raise ValueError("a partial-frame impairment (fraction > 0) runs on the library channel only")
        return np.asarray(channel_path(scheme, images), np.float32), 0
    return transmit_and_decode(scheme, images, channel, snr_db, csi, seed, batch, tx_snr_known, impairment)


def evaluate_point(scheme, images, labels, channel: str, snr_db: float, csi: str = "perfect", seed: int = 0,
                   batch: int = 256, net=None, device: str = "cpu", tx_snr_known: bool = True,
                   channel_path=None, impairment=None) -> dict:
    """One row: `scheme` over `channel` at `snr_db`, scored on `images`/`labels`, with the
    scheme's own columns (schemes.row_fields). channel_path: see `reconstruct`. impairment:
    (kind, fraction, sir_db) of diffsem.channel.impair, or None; given, the row carries
    impairment, fraction and sir_db (grid.impairment_fields)."""
    _schemes.at_snr(scheme, snr_db)
    recons, nonfinite = reconstruct(scheme, images, channel, snr_db, csi, seed, batch, tx_snr_known,
                                    channel_path, impairment)
    row = {"scheme": scheme.name, "steps": scheme.steps, "k": scheme.k, "channel": channel}
    if channel != "awgn":
        row["csi"] = csi
    if impairment is not None:
        fields = grid.impairment_fields(*impairment)
        row.update({k_: v for k_, v in fields.items() if v is not None})
    row["snr_db"] = float(snr_db)
    row.update(score(recons, images, labels, net, device))
    row["seed"] = int(seed)
    if not tx_snr_known:
        row["tx_snr_db"] = getattr(scheme, "encode_snr_db", None)
    if nonfinite:
        row["nonfinite"] = nonfinite
    row.update(_schemes.row_fields(scheme))
    return row


def evaluate_points(points, images, labels, load, batch: int = 256, on_row=None, net=None, device: str = "cpu",
                    tx_snr_known: bool = True, retemper: bool = False) -> tuple[list[dict], int]:
    """Every point of a grid (diffsem.experiments.grid.make_points) through `evaluate_point`;
    load(name, k, steps) gives the scheme (cached here; a scheme that fails to load is logged
    once and its points skipped). retemper: run a sampling scheme at the point's temperature
    (a calibration sweep) rather than its own. Returns (rows, schemes that failed to load)."""
    rows, loaded, failed = [], {}, set()
    for p in points:
        key = (p["scheme"], p["k"], p["steps"])
        if key in failed:
            continue
        if key not in loaded:
            try:
                loaded[key] = load(*key)
            except Exception as exc:  # noqa: BLE001 - a missing model skips its scheme, loudly
                failed.add(key)
                log.error("cannot load scheme %s k=%d steps=%s: %s", *key, exc)
                continue
        scheme = loaded[key]
        if retemper and p["temperature"] is not None:
            try:
                (scheme,) = at_temperatures(scheme, [p["temperature"]])
            except ValueError as exc:
                failed.add(key)
                log.error("scheme %s k=%d steps=%s: %s", *key, exc)
                continue
        t0 = time.perf_counter()
        csi = p.get("csi") or "perfect"
        impairment = grid.point_impairment(p)
        row = evaluate_point(scheme, images, labels, p["channel"], p["snr_db"], csi, p["seed"], batch, net, device,
                             tx_snr_known, impairment=impairment)
        log.info("%s k=%s steps=%s %s/%s %.1f dB%s: %.1f s", scheme.name, scheme.k, scheme.steps,
                 p["channel"], csi, p["snr_db"], impairment_text(impairment), time.perf_counter() - t0)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows, len(failed)


# --- outputs: CSV, plots, mosaic -------------------------------------------------------------

def CsvWriter(path) -> RowWriter:
    """The eval rows' CSV: diffsem.experiments.rows.RowWriter under ROW_KEYS."""
    return RowWriter(path, ROW_KEYS)


def write_plots(rows: list[dict], out_dir) -> list[Path]:
    """PSNR, accuracy and FID-FMNIST vs SNR, every scheme on one figure per (k, channel, csi):
    diffsem.experiments.plots.write_plots, eval_k<k>_<channel>[_<csi>].png."""
    return plots.write_plots(rows, out_dir, prefix="eval", panels=plots.EVAL_PANELS, scatter=False, dpi=110)


def impairment_text(impairment) -> str:
    """plots.impairment_text of (kind, fraction, sir_db) or None."""
    return plots.impairment_text(grid.impairment_fields(*impairment)) if impairment else ""


def write_mosaic(path, schemes, images, channel: str, snrs, csi: str = "perfect", seed: int = 0,
                 tx_snr_known: bool = True, impairment=None) -> Path:
    """Rows: original, then each scheme; columns: SNRs; each cell shows the same few test images.
    impairment (kind, fraction, sir_db) hitting anything: each scheme's row is drawn through it,
    after a reference row of the first scheme unimpaired."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def strip(batch):  # [n,1,28,28] -> one row of images with 2-pixel gaps
        gap = np.ones((28, 2), np.float32)
        return np.concatenate([np.concatenate([np.clip(im[0], 0, 1), gap], axis=1) for im in batch], axis=1)[:, :-2]

    impairment = active_impairment(impairment)
    lines = [(scheme, impairment) for scheme in schemes]
    if impairment and schemes:
        lines.insert(0, (schemes[0], None))
    table = [("original", [strip(images)] * len(snrs))]
    for scheme, imp in lines:
        cells_ = []
        for s in snrs:
            _schemes.at_snr(scheme, s)
            cells_.append(strip(reconstruct(scheme, images, channel, s, csi, seed, 256, tx_snr_known,
                                            impairment=imp)[0]))
        name = plots.label({"scheme": scheme.name, "steps": scheme.steps})
        if impairment:  # which row is the unimpaired reference
            name += "\n" + (impairment_text(imp)[2:] if imp else "0 % (unimpaired)")
        table.append((name, cells_))
    cell_w = len(images) * 0.45
    fig, axes = plt.subplots(len(table), len(snrs), figsize=(cell_w * len(snrs) + 1.5, 0.55 * len(table) + 0.6),
                             squeeze=False)
    for r, (label, cells) in enumerate(table):
        for c, cell in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(cell, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{snrs[c]:g} dB", fontsize=9)
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    k = schemes[0].k if schemes else "?"
    fig.suptitle(f"k = {k}, {channel}" + (f" ({csi} CSI)" if channel != "awgn" else "") + f", seed {seed}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# --- command line ------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--scheme", nargs="+", choices=SCHEMES, default=list(DEFAULT_SCHEMES))
    parser.add_argument("--steps", nargs="+", type=checks.int_range(1, 1000), default=[1, 2, 4],
                        help="student step counts (the teacher uses its own sampler; deepjscc has none)")
    parser.add_argument("--temperature", type=checks.float_range(0.0, 10.0), nargs="+", default=None,
                        help="diffusion sampling temperature(s); several evaluate each teacher/student at "
                             "each (a calibration sweep). Default: the model card's default_temperature, "
                             "else diffsem.runtime.naming.DEFAULT_TEMPERATURE")
    parser.add_argument("--teacher-steps", type=checks.int_range(1, 1000), default=None, help="teacher sampler steps (default: its card's)")
    parser.add_argument("--k", nargs="+", type=checks.positive_int, default=[128, 32], help="complex symbols per image")
    parser.add_argument("--channel", nargs="+", choices=("awgn", "rayleigh", "selective"), default=["awgn"])
    parser.add_argument("--csi", nargs="+", choices=("perfect", "estimated"), default=["perfect"],
                        help="receiver channel knowledge on fading channels")
    parser.add_argument("--snr", nargs="+", type=checks.float_range(-50.0, 100.0), default=[0, 5, 10, 20], help="Es/N0 per symbol, dB")
    grid.add_impairment_arguments(parser)
    parser.add_argument("--n", type=checks.int_range(1, 10000), default=10000, help="first N images of the split (default: all 10k test)")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="test: the 10k Fashion-MNIST test set; val: the fixed 5k validation split "
                             "(diffsem.data.VAL_SIZE, the end of the training file) for tuning/calibration")
    parser.add_argument("--threads", type=checks.positive_int, default=None,
                        help="CPU threads for ONNX Runtime and the torch metrics (default: all cores)")
    parser.add_argument("--seed", type=checks.nonnegative_int, default=0)
    parser.add_argument("--batch", type=checks.positive_int, default=256)
    parser.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    parser.add_argument("--device", default="cpu", help="torch device / 'cpu' or 'cuda' for ONNX Runtime")
    parser.add_argument("--run-dir", default=None,
                        help="torch backend: the training run folder, '{k}' replaced by k (default runs/k{k})")
    parser.add_argument("--csv", type=Path, help="also append the rows to this CSV file")
    parser.add_argument("--resume", action="store_true",
                        help="skip the points whose row is already in --csv (same scheme, steps, temperature, "
                             "k, channel, csi, impairment, fraction, SIR, SNR, n and seed)")
    parser.add_argument("--plots", type=Path, help="write PSNR/accuracy/FID vs SNR figures to this folder")
    parser.add_argument("--mosaic", type=Path, help="write an image mosaic (PNG; one per k: _k<k> added when several)")
    parser.add_argument("--mosaic-snr", nargs="+", type=checks.float_range(-50.0, 100.0), default=[0, 5, 20])
    parser.add_argument("--mosaic-images", type=checks.int_range(1, 64), default=6)
    parser.add_argument("--mosaic-fraction", type=checks.float_range(0.0, 1.0), default=0.0,
                        help="draw the mosaic with this fraction of each frame hit by --impairment (--sir), "
                             "below a reference row of the first scheme unimpaired")
    parser.add_argument("--tx-snr", choices=("known", "fixed"), default="known",
                        help="known: the encoder is given the channel SNR (as in training); fixed: the encoder "
                             "runs at its default SNR, as a transmitter without feedback (row key tx_snr_db)")
    parser.add_argument("--quiet", action="store_true", help="no progress log on stderr")
    parser.add_argument("--label", default=None,
                        help="tag every row with models=LABEL (e.g. which model generation a --models folder holds)")


def _mosaic_path(path: Path, k: int, several: bool) -> Path:
    return path.with_name(f"{path.stem}_k{k}{path.suffix or '.png'}") if several else path


def run(args) -> int:
    from diffsem import data

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    if args.n <= 0:
        raise UsageError("--n must be positive")
    grid.settle_impairment(args, ("fraction", "mosaic_fraction"))
    images, labels = data.load(args.split)
    images, labels = images[:args.n], labels[:args.n]

    metric_device = args.device if str(args.device).startswith("cuda") else "cpu"  # the classifier's
    load_kwargs = {}
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(int(args.threads))
        load_kwargs["threads"] = int(args.threads)
    if getattr(args, "resume", False) and not args.csv:
        raise UsageError("--resume needs --csv (the rows to resume from)")
    done = done_keys(args.csv, RESUME_KEY) if getattr(args, "resume", False) else set()
    writer = CsvWriter(args.csv) if args.csv else None
    all_rows, failures = [], 0

    def emit(row):
        row["split"] = args.split
        if getattr(args, "label", None):
            row["models"] = args.label
        print(json.dumps(row), flush=True)
        if writer:
            writer.write(row)

    @functools.lru_cache(maxsize=None)  # the mosaic draws with the schemes the rows used
    def load(name, k, steps):
        kwargs = dict(load_kwargs)
        if args.backend == "torch" and args.run_dir:
            kwargs["run_dir"] = args.run_dir.replace("{k}", str(k))
        return load_scheme(name, k, steps=steps, backend=args.backend, device=args.device, **kwargs)

    try:
        for k in args.k:  # per k, so that each k's mosaic follows its rows
            points = grid.make_points(args.scheme, args.steps, [k], args.channel, args.snr, len(images), args.seed,
                                      teacher_steps=args.teacher_steps, temperature=args.temperature,
                                      csis=args.csi, impairment=args.impairment, fractions=args.fraction,
                                      sir_db=args.sir)
            if done:
                points = [p for p in points if row_key(p, RESUME_KEY) not in done]
            rows, failed = evaluate_points(points, images, labels, load, args.batch, on_row=emit,
                                           device=metric_device, tx_snr_known=args.tx_snr == "known",
                                           retemper=bool(args.temperature))
            all_rows += rows
            failures += failed
            if args.mosaic and rows:
                schemes = []
                for name in args.scheme:
                    for steps in KINDS[name].step_options(args.steps, args.teacher_steps):
                        try:
                            schemes += at_temperatures(load(name, k, steps), args.temperature)
                        except Exception:  # noqa: BLE001 - already reported by evaluate_points
                            pass
                path = write_mosaic(_mosaic_path(args.mosaic, k, len(args.k) > 1), schemes, images[:args.mosaic_images],
                                    args.channel[0], args.mosaic_snr, args.csi[0], args.seed,
                                    args.tx_snr == "known", (args.impairment, args.mosaic_fraction, args.sir))
                log.info("mosaic: %s", path)
    finally:
        if writer:
            writer.close()
    if args.plots and all_rows:
        for path in write_plots(all_rows, args.plots):
            log.info("plot: %s", path)
    return 1 if failures else 0
