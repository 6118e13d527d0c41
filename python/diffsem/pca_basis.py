"""The PCA basis of the Fashion-MNIST training split and SoftCast's power allocation: the linear
analog code shared by the linear baseline (diffsem.baselines.linear) and the hybrid codec
(diffsem.nn.models.AnalogBasis), which adds learned parts around it.

The basis is fitted once on the training split and cached in models/linear_pca.npz with how it
was made (`diffsem baseline linear --fit` rebuilds it).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from diffsem import models_dir

N_PIXELS = 784
STORED_COMPONENTS = 512  # k <= 256 complex symbols; the rest carry ~1e-4 of the variance
BASIS_FILE = "linear_pca.npz"


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
