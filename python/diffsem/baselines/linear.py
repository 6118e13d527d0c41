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
import time
from pathlib import Path

import numpy as np

from diffsem import models_dir

N_PIXELS = 784
STORED_COMPONENTS = 512  # k <= 256 complex symbols; the rest carry ~1e-4 of the variance
BASIS_FILE = "linear_pca.npz"
DECODERS = ("lmmse", "zf")


def basis_path() -> Path:
    return models_dir() / BASIS_FILE


def fit_pca(images: np.ndarray, n_components: int = STORED_COMPONENTS) -> dict:
    """Principal axes of images [N, 1, 28, 28] (or [N, 784]), strongest first."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / (len(x) - 1)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1][:n_components]
    # Fix each axis' sign (largest-magnitude entry positive) so refits give identical files.
    vecs = eigvec[:, order]
    signs = np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(vecs.shape[1])])
    return {"mean": mean.astype(np.float32),
            "components": (vecs * signs).T.astype(np.float32),      # [n_components, 784]
            "eigenvalues": np.clip(eigval[order], 1e-12, None).astype(np.float64)}


def _fit_training_split() -> tuple[dict, dict]:
    from diffsem import data
    images, _ = data.load("train")
    t0 = time.time()
    pca = fit_pca(images)
    info = {"what": "PCA basis of the SoftCast-style linear baseline (diffsem.baselines.linear)",
            "data": "Fashion-MNIST train split (diffsem.data.load('train'))",
            "n_images": int(len(images)), "pixels": "float32 in [0,1], row-major 28x28",
            "n_components": int(len(pca["eigenvalues"])),
            "explained_variance_fraction": float(pca["eigenvalues"].sum() / np.var(
                images.reshape(len(images), -1), axis=0, ddof=1).sum()),
            "made_by": "diffsem baseline linear --fit", "numpy": np.__version__,
            "fit_seconds": round(time.time() - t0, 2)}
    return pca, info


def fit_and_save(path: Path | None = None) -> Path:
    path = Path(path or basis_path())
    pca, info = _fit_training_split()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, info=json.dumps(info), **pca)
    return path


_basis_cache: dict[str, dict] = {}


def load_basis(path: Path | None = None) -> dict:
    """The cached basis. If the file is missing it is fitted (3 s) and written there when the
    folder is writable; an installed, read-only models folder keeps the fit in memory."""
    path = Path(path or basis_path())
    key = str(path)
    if key not in _basis_cache:
        if path.exists():
            with np.load(path, allow_pickle=False) as f:
                pca = {name: f[name] for name in ("mean", "components", "eigenvalues")}
                info = json.loads(str(f["info"]))
        else:
            print(f"diffsem.baselines.linear: {path} missing, fitting PCA on the training split",
                  file=sys.stderr)
            pca, info = _fit_training_split()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(path, info=json.dumps(info), **pca)
            except OSError as exc:
                print(f"diffsem.baselines.linear: cannot cache the basis in {path} ({exc}); "
                      f"using it from memory", file=sys.stderr)
        _basis_cache[key] = {name: np.asarray(pca[name], np.float64) for name in ("mean", "components", "eigenvalues")}
        _basis_cache[key]["info"] = info
    return _basis_cache[key]


def softcast_gains(eigenvalues: np.ndarray, k: int) -> np.ndarray:
    """g_j = a lambda_j^(-1/4) with sum_j g_j^2 lambda_j = k (unit average power per complex symbol)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    a2 = k / np.sqrt(lam).sum()
    return np.sqrt(a2) * lam ** -0.25


def uniform_gains(eigenvalues: np.ndarray, k: int) -> np.ndarray:
    """Same gain for every coefficient (plain scaled PCA), for comparison with SoftCast's allocation."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    return np.full_like(lam, np.sqrt(k / lam.sum()))


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
    steps = 0  # no network evaluations

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
