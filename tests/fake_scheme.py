"""A small, exact stand-in for diffsem.experiments.schemes.Scheme used to test the evaluation harness.

Transform coding: the encoder sends the 2k lowest-frequency 2-D DCT coefficients of the image
minus the mean image (scaled to unit average power per complex symbol); the decoder applies a
per-coefficient LMMSE gain that uses the reported per-symbol noise variance and inverts the DCT.
Quality therefore rises with SNR and drops on a fading channel, which the tests check. The
statistics come from test images 5000-5999 (the tests score the first few hundred), so nothing
heavy runs at import: no training set, no SVD.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.fft import dctn, idctn

from diffsem import data


@functools.lru_cache(maxsize=None)
def _stats():
    images = data.load("test")[0][5000:6000, 0].astype(np.float64)
    mean = images.mean(0)
    coef = dctn(images - mean, axes=(1, 2), norm="ortho")
    u, v = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    order = np.lexsort((u.ravel(), (u + v).ravel()))  # zig-zag-like: low frequencies first
    return mean, order, coef.reshape(len(images), -1).var(0)


class DctScheme:
    def __init__(self, k: int = 16, name: str = "deepjscc", steps=None, fail_on=None):
        self.name, self.k, self.steps = name, k, steps
        self.mean, order, var = _stats()
        self.index = order[:2 * k]
        self.scale = np.sqrt(var[self.index].sum() / k)       # unit average power per complex symbol
        self.coef_var = var[self.index] / self.scale ** 2       # per real component, after scaling
        self.fail_on = fail_on
        self.encode_snr_db, self.last_encode_snr = 10.0, None

    def encode(self, images, snr_db=None):
        self.last_encode_snr = snr_db  # an SNR-adaptive encoder would use it; this one records it
        coef = dctn(images[:, 0] - self.mean, axes=(1, 2), norm="ortho").reshape(len(images), -1)
        return (coef[:, self.index] / self.scale).reshape(len(images), self.k, 2).astype(np.float32)

    def decode(self, symbols, snr_db, noise_var, rng):
        assert symbols.shape == (len(symbols), self.k, 2) and snr_db.shape == (len(symbols),)
        assert noise_var.shape == (len(symbols), self.k) and isinstance(rng, np.random.Generator)
        cv = self.coef_var.reshape(self.k, 2)
        gain = cv / (cv + noise_var[..., None] / 2)             # LMMSE per real component
        coef = np.zeros((len(symbols), 28 * 28))
        coef[:, self.index] = (symbols * gain).reshape(len(symbols), -1) * self.scale
        image = self.mean + idctn(coef.reshape(-1, 28, 28), axes=(1, 2), norm="ortho")
        out = np.clip(image, 0, 1)[:, None].astype(np.float32)
        if self.fail_on is not None:
            out[self.fail_on] = np.nan
        return out
