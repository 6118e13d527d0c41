"""SoftCast-style linear analog baseline: PCA, MSE-optimal power allocation, LMMSE decoding.

No training, no codebook: an image x (784 pixels in [0, 1]) is centred on the training mean
and projected on the principal axes of the Fashion-MNIST training split. The 2k strongest real
coefficients c_j (variance lambda_j) are scaled by g_j = a * lambda_j^(-1/4) — SoftCast's
allocation, which minimises the reconstruction MSE of a linear scheme under a power budget —
and paired (c_2i, c_2i+1) into complex channel symbol i. The constant a sets the *average*
power per complex symbol over the image distribution to 1 (SoftCast's constraint; a frame's
own power varies around 1, measured on the test split by `average_power`).

The receiver knows the basis, the mean and the lambdas (the shared .npz) and applies the
per-coefficient LMMSE estimate with the per-symbol noise variance the equaliser reports
(sigma^2/|h|^2 after zero-forcing, split equally over re/im), so a faded subcarrier is
shrunk toward the mean instead of amplifying noise:

    c_hat_j = g_j lambda_j / (g_j^2 lambda_j + noise_var_i / 2) * y_j

The PCA coefficients are uncorrelated, so this diagonal estimator is the exact LMMSE.

The basis is fitted once on the training split and cached in models/linear_pca.npz with how it
was made (`diffsem baseline linear --fit` rebuilds it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from diffsem.pca_basis import (  # noqa: F401 (the basis is part of this baseline's API)
    BASIS_FILE, N_PIXELS, STORED_COMPONENTS, basis_path, fit_and_save, fit_pca, load_basis, softcast_gains,
    uniform_gains,
)

DECODERS = ("lmmse", "zf")


def _to_numpy(x) -> tuple[np.ndarray, bool]:
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy(), True
    except ImportError:  # pragma: no cover - torch is a requirement, but keep the core usable
        pass
    return np.asarray(x), False


def _like(x: np.ndarray, as_torch: bool):
    x = np.ascontiguousarray(x, dtype=np.float32)
    if as_torch:
        import torch
        return torch.from_numpy(x)
    return x


class LinearScheme:
    """Scheme interface: encode(images) -> symbols [B,k,2]; decode(symbols, snr_db, noise_var, rng)."""

    name = "linear"
    steps = None  # no sampler: not a grid coordinate
    link = "ofdm_analog"  # its symbols go on the air as they are

    def __init__(self, k: int, allocation: str = "softcast", decoder: str = "lmmse",
                 basis: Path | None = None):
        b = load_basis(basis)
        if not 1 <= k <= len(b["eigenvalues"]) // 2:
            raise ValueError(f"linear baseline: k={k} outside 1..{len(b['eigenvalues']) // 2} "
                             f"(the basis keeps {len(b['eigenvalues'])} components)")
        if decoder not in DECODERS:
            raise ValueError(f"linear baseline: decoder {decoder!r} not in {DECODERS}")
        if allocation not in ("softcast", "uniform"):
            raise ValueError(f"linear baseline: allocation {allocation!r} not softcast|uniform")
        self.k = k
        self.decoder = decoder
        self.allocation = allocation
        self.mean = b["mean"]
        self.components = b["components"][: 2 * k]      # [2k, 784]
        self.eigenvalues = b["eigenvalues"][: 2 * k]
        gains = softcast_gains if allocation == "softcast" else uniform_gains
        self.gains = gains(self.eigenvalues, k)

    def __repr__(self):
        return f"LinearScheme(k={self.k}, allocation={self.allocation}, decoder={self.decoder})"

    def encode(self, images):
        x, as_torch = _to_numpy(images)
        x = x.reshape(len(x), -1).astype(np.float64)
        if x.shape[1] != N_PIXELS:
            raise ValueError(f"linear baseline: images must be [B,1,28,28], got {tuple(np.shape(images))}")
        coeffs = (x - self.mean) @ self.components.T          # [B, 2k]
        return _like((coeffs * self.gains).reshape(len(x), self.k, 2), as_torch)

    def coefficient_weights(self, noise_var) -> np.ndarray:
        """Per-coefficient multiplier from received value to estimate, [B, 2k]."""
        nv = np.repeat(np.asarray(noise_var, dtype=np.float64), 2, axis=1) / 2.0  # per real dim
        g, lam = self.gains, self.eigenvalues
        if self.decoder == "zf":
            return np.broadcast_to(1.0 / g, nv.shape)
        return g * lam / (g * g * lam + nv)

    def decode(self, symbols, snr_db=None, noise_var=None, rng=None):
        y, as_torch = _to_numpy(symbols)
        y = y.reshape(len(y), -1).astype(np.float64)
        if y.shape[1] != 2 * self.k:
            raise ValueError(f"linear baseline: symbols must be [B,{self.k},2], got {tuple(np.shape(symbols))}")
        if noise_var is None:  # fall back on the average SNR when the receiver gives no per-symbol variance
            if snr_db is None:
                raise ValueError("linear baseline: decode needs noise_var [B,k] or snr_db [B]")
            snr, _ = _to_numpy(snr_db)
            noise_var = np.repeat((10.0 ** (-np.asarray(snr, np.float64).reshape(-1) / 10))[:, None],
                                  self.k, axis=1)
        nv, _ = _to_numpy(noise_var)
        nv = np.broadcast_to(np.asarray(nv, np.float64).reshape(len(y), -1), (len(y), self.k))
        coeffs = y * self.coefficient_weights(nv)
        images = np.clip(coeffs @ self.components + self.mean, 0.0, 1.0)
        return _like(images.reshape(len(y), 1, 28, 28), as_torch)

    def average_power(self, images) -> tuple[float, float]:
        """(mean, std) over images of the per-frame average power per complex symbol."""
        s, _ = _to_numpy(self.encode(images))
        p = (s.astype(np.float64) ** 2).sum(axis=(1, 2)) / self.k
        return float(p.mean()), float(p.std())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsem baseline linear",
                                description="fit the PCA basis, or print PSNR vs SNR on the library "
                                            "channel (JSON lines)")
    p.add_argument("--fit", action="store_true", help="(re)fit models/linear_pca.npz on the training split")
    p.add_argument("--k", type=int, nargs="+", default=[128, 32])
    p.add_argument("--snr", type=float, nargs="+", default=[-5, 0, 5, 10, 15, 20, 25, 30])
    p.add_argument("--channel", default="awgn")
    p.add_argument("--n", type=int, default=1000, help="test images")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.fit:
        path = fit_and_save()
        print(json.dumps({"wrote": str(path), **load_basis(path)["info"]}))
        return 0
    import torch
    from diffsem import data
    from diffsem.channel import transmit
    from diffsem.baselines import classifier_accuracy
    from diffsem.metrics import psnr
    images, labels = data.load("test")
    images, labels = images[: args.n], labels[: args.n]
    for k in args.k:
        for decoder in DECODERS:
            scheme = LinearScheme(k, decoder=decoder)
            power = scheme.average_power(images)
            for snr in args.snr:
                g = torch.Generator().manual_seed(args.seed)
                s_hat, nv = transmit(scheme.encode(torch.from_numpy(images)), snr, args.channel, generator=g)
                rec = scheme.decode(s_hat, torch.full((len(images),), float(snr)), nv).numpy()
                print(json.dumps({"scheme": "linear", "decoder": decoder, "k": k, "channel": args.channel,
                                  "snr_db": snr, "psnr": round(float(psnr(rec, images).mean()), 3),
                                  "accuracy": classifier_accuracy(rec, labels),
                                  "n": len(images), "seed": args.seed,
                                  "power_mean": round(power[0], 4), "power_std": round(power[1], 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
