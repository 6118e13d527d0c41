"""Is a generative decoder a posterior sampler? Two checks that need no original image for the
first and only the test set's originals for the second.

* Consistency with what was received: re-encode a sample x' and compare with the received,
  equalised symbols. For y = s + n, n ~ CN(0, nv), a draw from the posterior p(s | y) gives
  E|y - s'|^2 = nv (scalar Gaussian case: E(y - s')^2 = N^2/(P+N) + PN/(P+N) = N), so the
  normalised residual |y - enc(x')|^2 / nv averages 1 per symbol; the posterior *mean* gives
  less (N/(P+N)), a sample that ignores y gives more.
* Calibrated spread: for posterior samples E||x_a - x_b||^2 = 2 tr Cov and the mean of S samples
  has E||mean_S - x||^2 = (1 + 1/S) tr Cov, so the ratio
  E||x_a - x_b||^2 / (2 E||mean_S - x||^2) is 1 / (1 + 1/S) (0.89 for S = 8). Much lower means
  over-confident samples (too little spread for the error they make), higher means noise that
  does not reflect uncertainty.
"""
from __future__ import annotations

import numpy as np


def normalised_residual(received, reencoded, noise_var, usable=None) -> np.ndarray:
    """Per image: mean over (usable) symbols of |received - reencoded|^2 / noise_var.
    received, reencoded [B, k, 2]; noise_var [B, k]; usable [B, k] bool (e.g. not erased)."""
    y = np.asarray(received, dtype=np.float64)
    s = np.asarray(reencoded, dtype=np.float64)
    nv = np.asarray(noise_var, dtype=np.float64)
    if y.shape != s.shape or y.shape[:2] != nv.shape:
        raise ValueError(f"shapes differ: received {y.shape}, reencoded {s.shape}, noise_var {nv.shape}")
    r = ((y - s) ** 2).sum(-1) / np.maximum(nv, 1e-12)
    w = np.ones_like(r) if usable is None else np.asarray(usable, dtype=np.float64)
    return (r * w).sum(1) / np.maximum(w.sum(1), 1)


def spread_ratio(samples, originals) -> dict:
    """samples [S, B, ...] (S >= 2 draws per image), originals [B, ...] -> the spread check:
    pair_msd = mean ||x_a - x_b||^2 / n_pixels over the S(S-1)/2 pairs, mean_mse = mean
    ||mean_S - x||^2 / n_pixels, ratio = pair_msd / (2 mean_mse) and its posterior value
    1 / (1 + 1/S)."""
    x = np.asarray(samples, dtype=np.float64)
    ref = np.asarray(originals, dtype=np.float64)
    s = x.shape[0]
    if s < 2 or x.shape[1:] != ref.shape:
        raise ValueError(f"need samples [S>=2, B, ...] matching originals {ref.shape}, got {x.shape}")
    flat = x.reshape(s, x.shape[1], -1)
    n_pix = flat.shape[-1]
    # sum over pairs of ||x_a - x_b||^2 = S * sum_a ||x_a - mean||^2 (pairs counted once)
    mean = flat.mean(0)
    pair_msd = float((s * ((flat - mean) ** 2).sum((0, 2)) / (s * (s - 1) / 2)).mean() / n_pix)
    mean_mse = float(((mean - ref.reshape(ref.shape[0], -1)) ** 2).mean())
    return {"samples": s, "pair_msd": pair_msd, "mean_mse": mean_mse,
            "ratio": pair_msd / (2 * mean_mse) if mean_mse > 0 else float("inf"),
            "posterior_ratio": 1.0 / (1.0 + 1.0 / s)}
