"""The ideal separation bound: what an image codec behind a capacity-achieving channel code gives.

For k complex AWGN channel uses at SNR s (Es/N0), Shannon's capacity is C = k * log2(1 + s)
bits per image. The bound is, per image, the best (codec, quality) of ``digital.fit_codec``
whose bytes fit C: codec data plus the 1-byte descriptor (codec, quality) the receiver needs;
the codec headers are shared out of band exactly as in the digital link; no CRC, no length
field, no tail bits (a capacity-achieving code is error-free and knows its block length).
Below the smallest image (about 8 bytes for a 14x14 JPEG) nothing fits and the receiver shows
grey, so even the bound has a cliff — only at a lower SNR than any real code.

With a partial-frame impairment (kind, fraction, sir_db of diffsem.channel.impair) the bound is
taken at the impaired frame's ergodic capacity (`capacity_bits`): a hit cell carries nothing when
it is erased (erasure, burst, truncation) and log2(1 + Es / (N0 + I0)) under a narrowband
interferer, the receiver knowing which cells were hit, the transmitter not; the share of cells
hit is the mean over draws of diffsem.channel.impairment_cells_numpy (the one definition).

Offline: no channel is simulated. ``diffsem baseline separation`` prints one JSON
line per (k, SNR) with mean PSNR over test images and, when the in-project classifier is
shipped (models/classifier.pt), its accuracy on the reconstructions.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from diffsem.baselines import classifier_accuracy
from diffsem.baselines.digital import CODECS, DESCRIPTOR_BYTES, GREY, SIDE, fit_codec
from diffsem.channel import impairment_cells_numpy
from diffsem.metrics import psnr

HIT_SHARE_DRAWS = 4096  # frames drawn (seed 0) for the mean share of cells an impairment hits


def hit_share(kind: str, fraction: float, k: int) -> float:
    """Mean share of a frame's k cells that impairment `kind` hits at `fraction`."""
    return float(impairment_cells_numpy(kind, fraction, HIT_SHARE_DRAWS, k, rng=0).mean())


def capacity_bits(k: int, snr_db: float, impairment=None) -> float:
    """k * log2(1 + SNR): bits per image over k complex AWGN uses at Es/N0 = snr_db; with
    `impairment` (kind, fraction, sir_db) the ergodic capacity of the impaired frame (module doc)."""
    snr = 10.0 ** (snr_db / 10.0)
    clean = math.log2(1.0 + snr)
    if impairment is None or not impairment[1] or impairment[0] == "none":
        return k * clean
    kind, fraction, sir_db = impairment
    hit = 0.0 if kind != "narrowband" else math.log2(1.0 + 1.0 / (1.0 / snr + 10.0 ** (-sir_db / 10.0)))
    share = hit_share(kind, fraction, k)
    return k * ((1.0 - share) * clean + share * hit)


def codec_budget_bytes(k: int, snr_db: float, impairment=None) -> int:
    """Whole bytes of codec data that fit the capacity after the descriptor byte (may be < 0)."""
    return int(capacity_bits(k, snr_db, impairment) // 8) - DESCRIPTOR_BYTES


def threshold_snr_db(k: int, n_bytes: int) -> float:
    """SNR at which k channel uses carry n_bytes codec bytes (+ descriptor) at capacity."""
    return 10 * math.log10(2.0 ** (8 * (n_bytes + DESCRIPTOR_BYTES) / k) - 1.0)


def reconstruct(images, k: int, snr_db: float, codecs=CODECS, impairment=None) -> tuple[np.ndarray, list]:
    """Per-image reconstructions [B,1,28,28] under the bound, and the fits (codec, quality, bytes)."""
    x = np.asarray(images, np.float32).reshape(-1, SIDE, SIDE)
    budget = codec_budget_bytes(k, snr_db, impairment)
    fits = [fit_codec(img, budget, codecs) if budget > 0 else None for img in x]
    rec = np.stack([f.image if f is not None else np.full((SIDE, SIDE), GREY, np.float32) for f in fits])
    return rec[:, None], fits


class SeparationScheme:
    """The bound as a Scheme: offline (no channel is simulated; the runner calls reconstruct),
    AWGN only; row_fields gives the fraction of images some codec setting fitted (delivered)."""

    name = "separation"
    steps = None
    offline = True
    link = None  # no radio path: a bound, not a link

    def __init__(self, k: int, codecs=CODECS):
        self.k, self.codecs = int(k), tuple(codecs)
        self.last_fits: list = []

    def __repr__(self):
        return f"SeparationScheme(k={self.k})"

    def reconstruct(self, images, snr_db: float, impairment=None) -> np.ndarray:
        """impairment: (kind, fraction, sir_db) or None, see `capacity_bits`."""
        rec, self.last_fits = reconstruct(images, self.k, float(snr_db), self.codecs, impairment)
        return rec

    def row_fields(self) -> dict:
        fits = self.last_fits
        if not fits:
            return {}
        return {"delivered": round(sum(1 for f in fits if f is not None and f.codec) / len(fits), 4)}


def bound_curve(k: int, snrs, n: int = 500, codecs=CODECS, with_accuracy: bool = True):
    """One dict per SNR: mean PSNR (per image, on [0,1]), accuracy (or None), fit statistics."""
    from diffsem import data
    images, labels = data.load("test")
    images, labels = images[:n], labels[:n]
    for snr in snrs:
        t0 = time.time()
        rec, fits = reconstruct(images, k, float(snr), codecs)
        p = psnr(rec, images)
        acc = classifier_accuracy(rec, labels) if with_accuracy else None
        used = [f for f in fits if f is not None and f.codec]
        yield {"scheme": "separation_bound", "k": k, "snr_db": float(snr),
               "capacity_bits": round(capacity_bits(k, float(snr)), 1),
               "codec_bytes": max(codec_budget_bytes(k, float(snr)), 0),
               "psnr": round(float(np.mean(p)), 3), "accuracy": acc,
               "fit_rate": round(len(used) / len(fits), 4),
               "codecs": {c: sum(f.codec == c for f in used) for c in codecs if any(f.codec == c for f in used)},
               "n": len(images), "seconds": round(time.time() - t0, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsem baseline separation",
                                description="ideal separation bound (codec at capacity), JSON lines")
    p.add_argument("--k", type=int, nargs="+", default=[128, 32])
    p.add_argument("--snr", type=float, nargs="+", default=[-5, 0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30])
    p.add_argument("--n", type=int, default=500, help="test images per point")
    p.add_argument("--no-accuracy", action="store_true")
    args = p.parse_args(argv)
    for k in args.k:
        for row in bound_curve(k, args.snr, args.n, with_accuracy=not args.no_accuracy):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
