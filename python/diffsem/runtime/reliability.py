"""Per-image reliability at the receiver, without the original: a predicted PSNR from what the
receiver knows (the per-symbol noise variances it reported, and the decoded image itself).

Features (`features`, FEATURES names them):
  bits     mean over the k symbols of log2(1 + 1/noise_var): the information the channel let
           through per symbol (an erased symbol, noise_var >= ERASED_NOISE_VAR, gives 0); bits^2
  erased   fraction of symbols erased, its square, and times bits (what is lost costs more
           when the rest arrives clean)
  image    the decoded image's mean, std and detail (mean absolute pixel difference), and its
           7 x 7 block means (4 x 4 pixels each): what the image is (busy images, or ones with much
           mid-gray, reconstruct worse at the same channel quality); each also times bits
predicted PSNR = w . features, one w per decoder and k, fitted by ridge regression (RIDGE) on the
validation split (diffsem measure reliability) and stored with how it was made in
models/reliability.json. `reliability` = the predicted PSNR mapped linearly from the fit's 5th..95th
percentile of true PSNR to 0..1 (clipped).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from diffsem.phy.ofdm import ERASED_NOISE_VAR

POOL = 4
RIDGE = 1.0
_IMAGE = ("mean", "std", "detail") + tuple(f"block{i}" for i in range((28 // POOL) ** 2))
FEATURES = ("one", "bits", "bits2", "erased", "erased*bits", "erased2") + _IMAGE + tuple(f"{n}*bits" for n in _IMAGE)
log = logging.getLogger("diffsem.runtime.reliability")
FILE_NAME = "reliability.json"


def features(noise_var, image) -> np.ndarray:
    """[B, len(FEATURES)] from noise_var [B, k] and decoded images [B, ..., 28, 28] in [0, 1]."""
    nv = np.asarray(noise_var, dtype=np.float64)
    nv = nv.reshape(1, -1) if nv.ndim == 1 else nv
    b = len(nv)
    erased = nv >= ERASED_NOISE_VAR
    bits = np.where(erased, 0.0, np.log2(1.0 + 1.0 / np.maximum(nv, 1e-6))).mean(axis=1)
    img = np.asarray(image, dtype=np.float64).reshape(b, 28, 28)
    detail = (np.abs(np.diff(img, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(img, axis=2)).mean(axis=(1, 2)))
    n = 28 // POOL
    blocks = img.reshape(b, n, POOL, n, POOL).mean(axis=(2, 4)).reshape(b, -1)
    im = np.concatenate([np.stack([img.mean(axis=(1, 2)), img.std(axis=(1, 2)), detail], axis=1), blocks], axis=1)
    e = erased.mean(axis=1)
    return np.concatenate([np.stack([np.ones(b), bits, bits ** 2, e, e * bits, e ** 2], axis=1),
                           im, im * bits[:, None]], axis=1)


def fit(noise_var, images, true_psnr) -> dict:
    """Ridge weights + the PSNR range that maps to reliability 0..1."""
    x = features(noise_var, images)
    y = np.asarray(true_psnr, dtype=np.float64)
    reg = RIDGE * np.eye(x.shape[1])
    reg[0, 0] = 0.0  # the intercept is not shrunk
    w = np.linalg.solve(x.T @ x + reg, x.T @ y)
    lo, hi = np.percentile(y, [5, 95])
    return {"features": list(FEATURES), "ridge": RIDGE, "weights": [round(float(v), 6) for v in w],
            "psnr_range_db": [round(float(lo), 3), round(float(hi), 3)]}


class Reliability:
    """predict(noise_var, images) -> (predicted PSNR dB [B], reliability in [0, 1] [B])."""

    def __init__(self, entry: dict):
        if list(entry["features"]) != list(FEATURES):
            raise ValueError(f"reliability entry has features {entry['features']}, this code computes {FEATURES}")
        self.w = np.asarray(entry["weights"], dtype=np.float64)
        self.lo, self.hi = (float(v) for v in entry["psnr_range_db"])

    def predict(self, noise_var, images):
        pred = features(noise_var, images) @ self.w
        return pred, np.clip((pred - self.lo) / max(self.hi - self.lo, 1e-9), 0.0, 1.0)


def load(model_name: str, path=None, model_sha256: str | None = None) -> Reliability | None:
    """The fitted mapping of a decoder, by its model file stem (naming.artifact_name:
    "deepjscc_k128", "student_k32_s2", ...), or None when the file or the entry is missing, or
    when `model_sha256` (the card's) is given and the entry was fitted for another model file (a
    mapping fitted for other weights would predict nonsense)."""
    from diffsem import models_dir
    path = Path(path) if path else Path(models_dir()) / FILE_NAME
    if not path.is_file():
        return None
    entry = json.loads(path.read_text()).get("models", {}).get(model_name)
    if entry and model_sha256 is not None and entry.get("model_sha256") != model_sha256:
        log.warning("%s: %s was fitted for another %s file; no reliability score (re-fit: diffsem measure "
                    "reliability)", path, model_name, model_name)
        return None
    return Reliability(entry) if entry else None
