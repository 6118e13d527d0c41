"""Trivial post-processing controls for a perceptual gain: what plain noise or sharpening of the
DeepJSCC image buys at the same PSNR cost as a diffusion decoder (numpy only).

A generative decoder trades PSNR for sharper images. Its FID / accuracy / hf_ratio gain over
DeepJSCC counts only if it beats what costs nothing and loses the same PSNR:

* noise:   clip(x + sigma z, 0, 1), z one seeded standard-normal field (the same z for every
           sigma, so the PSNR falls continuously with sigma);
* unsharp: clip(x + a (x - blur(x)), 0, 1), blur a Gaussian of standard deviation 1 pixel.

`match_noise` / `match_unsharp` find the parameter whose mean PSNR over the whole set (against
the originals) is `target_psnr`, by bisection to within `tol` dB. A target above the base's own
PSNR (a negative cost) cannot be met by either; sharpening saturates (every pixel clipped to 0 or
1 where x differs from its blur), so a target below that floor is not reached either: the
`Control` says `reached=False` and keeps the closest parameter tried.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffsem.metrics import psnr

BLUR_SIGMA = 1.0        # pixels: the unsharp mask's Gaussian
MAX_SIGMA = 4.0         # noise standard deviation searched up to (images in [0, 1])
MAX_AMOUNT = 256.0      # unsharp amount searched up to: far beyond where clipping saturates
TOL_DB = 0.01


@dataclass
class Control:
    """A control at a PSNR target: images [N,1,H,W], the parameter (sigma or amount), the mean
    PSNR reached and whether it is within tol of the target."""
    images: np.ndarray
    parameter: float
    psnr: float
    reached: bool


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    radius = max(1, int(truncate * sigma + 0.5))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def gaussian_blur(images, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Separable Gaussian blur of [N,1,H,W] (or [N,H,W]) images over the last two axes,
    edges reflected (a constant image stays constant)."""
    x = np.asarray(images, dtype=np.float64)
    w = gaussian_kernel(sigma)
    r = len(w) // 2
    for axis in (-2, -1):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (r, r)
        xp = np.pad(x, pad, mode="symmetric")
        n = x.shape[axis]
        x = sum(wi * np.take(xp, np.arange(i, i + n), axis=axis) for i, wi in enumerate(w))
    return x.astype(np.float32)


def add_noise(images, sigma: float, seed: int = 0) -> np.ndarray:
    """clip(x + sigma z, 0, 1), z ~ N(0, 1) from numpy's generator seeded with `seed`."""
    x = np.asarray(images, dtype=np.float32)
    z = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    return np.clip(x + np.float32(sigma) * z, 0.0, 1.0)


def unsharp(images, amount: float, blur_sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Unsharp masking clip(x + amount (x - blur(x)), 0, 1)."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(x + np.float32(amount) * (x - gaussian_blur(x, blur_sigma)), 0.0, 1.0)


def _mean_psnr(images, originals) -> float:
    return float(np.mean(psnr(images, originals)))


def match_psnr(make, originals, target_psnr: float, start: float, limit: float, tol: float = TOL_DB,
               max_iter: int = 200) -> Control:
    """The parameter p >= 0 of make(p) (make(0) the base) whose mean PSNR is within tol of
    target_psnr: p doubled from `start` (up to `limit`) until the PSNR falls to the target, then
    bisection between the last value above and the first at or below it (the mean PSNR is
    continuous in p, so the bracket holds a crossing even where it is not monotone)."""
    def at(p):
        imgs = make(p)
        return imgs, _mean_psnr(imgs, originals)

    lo = p = 0.0
    imgs, value = at(p)
    if value <= target_psnr + tol:  # already there, or the target lies above the base (negative cost)
        return Control(imgs, p, value, abs(value - target_psnr) <= tol)
    hi = p = float(start)
    imgs, value = at(p)
    while value > target_psnr + tol:
        if hi >= limit:
            return Control(imgs, p, value, False)
        lo, hi = hi, min(2.0 * hi, float(limit))
        p = hi
        imgs, value = at(p)
    for _ in range(max_iter):
        if abs(value - target_psnr) <= tol:
            break
        p = 0.5 * (lo + hi)
        imgs, value = at(p)
        if value > target_psnr:
            lo = p
        else:
            hi = p
    return Control(imgs, p, value, abs(value - target_psnr) <= tol)


def match_noise(base, originals, target_psnr: float, seed: int = 0, tol: float = TOL_DB,
                limit: float = MAX_SIGMA) -> Control:
    """add_noise(base, sigma, seed) at mean PSNR target_psnr; parameter: sigma."""
    return match_psnr(lambda s: add_noise(base, s, seed), originals, target_psnr, start=0.01, limit=limit, tol=tol)


def match_unsharp(base, originals, target_psnr: float, tol: float = TOL_DB, limit: float = MAX_AMOUNT,
                  blur_sigma: float = BLUR_SIGMA) -> Control:
    """unsharp(base, amount) at mean PSNR target_psnr; parameter: the amount."""
    return match_psnr(lambda a: unsharp(base, a, blur_sigma), originals, target_psnr, start=0.25, limit=limit,
                      tol=tol)
