"""Per-image reliability at the receiver, without the original: a predicted PSNR from what the
receiver knows (the received symbols and the per-symbol noise variances it reported, the decoded
image itself, and that image encoded again by the link's encoder).

Features (`features`, FEATURES names them):
  bits     mean over the k symbols of log2(1 + 1/noise_var): the information the channel let
           through per symbol (an erased symbol, noise_var >= ERASED_NOISE_VAR, gives 0); bits^2
  erased   fraction of symbols erased, its square, and times bits (what is lost costs more
           when the rest arrives clean)
  image    the decoded image's mean, std and detail (mean absolute pixel difference), and its
           7 x 7 block means (4 x 4 pixels each): what the image is (busy images, or ones with much
           mid-gray, reconstruct worse at the same channel quality); each also times bits
  consistency  the decoded image re-encoded (the shipped encoder at `reencode_snr_db`,
           inference.DESIGN_SNR_DB: what a transmitter without feedback encodes at) against the received symbols, over the symbols not erased:
           log10 of the mean excess |s - enc(x)|^2 - noise_var (the distortion the codec left, in
           symbol units: the encoder's linear part is an orthonormal image basis, so this tracks
           the image error it can see) and log10 of the mean |s - enc(x)|^2 / noise_var (1 for an
           image that agrees with what was received); each also times bits, and squared
predicted PSNR = w . features, one w per decoder and k, fitted by ridge regression (RIDGE) on the
validation split (diffsem measure reliability) and stored with how it was made in
models/reliability.json. `reliability` = the predicted PSNR mapped linearly from the fit's 5th..95th
percentile of true PSNR to 0..1 (clipped). A channel better than the fit's best SNR is read as
that best (`noise_var_floor`), and each feature is held inside the range the fit saw
(`feature_range`): extrapolated, the linear fit is nonsense (on a 40 dB cable `bits` is three
times the fit's largest, |s - enc(x)|^2 / noise_var a hundred times, and the predicted PSNR of the
shipped k = 128 DeepJSCC fell to 16 dB while the true one stayed at 28).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from diffsem.phy.ofdm import ERASED_NOISE_VAR
from diffsem.runtime.inference import DESIGN_SNR_DB

POOL = 4
RIDGE = 1.0
_IMAGE = ("mean", "std", "detail") + tuple(f"block{i}" for i in range((28 // POOL) ** 2))
_CONSISTENCY = ("consistency", "residual")
FEATURES = (("one", "bits", "bits2", "erased", "erased*bits", "erased2") + _IMAGE + tuple(f"{n}*bits" for n in _IMAGE)
            + _CONSISTENCY + tuple(f"{n}*bits" for n in _CONSISTENCY) + tuple(f"{n}2" for n in _CONSISTENCY))
log = logging.getLogger("diffsem.runtime.reliability")
FILE_NAME = "reliability.json"


def consistency(symbols, reencoded, noise_var) -> np.ndarray:
    """[B, 2]: the `consistency` features (module doc) of received symbols [B, k, 2], the decoded
    images re-encoded [B, k, 2] and the noise variances [B, k]."""
    nv = np.asarray(noise_var, dtype=np.float64)
    d2 = np.sum((np.asarray(symbols, np.float64) - np.asarray(reencoded, np.float64)) ** 2, axis=-1)
    keep = nv < ERASED_NOISE_VAR
    count = np.maximum(keep.sum(axis=1), 1)
    excess = np.where(keep, d2 - nv, 0.0).sum(axis=1) / count
    ratio = np.where(keep, d2 / np.maximum(nv, 1e-6), 0.0).sum(axis=1) / count
    return np.stack([np.log10(np.maximum(excess, 1e-4)), np.log10(np.maximum(ratio, 1e-3))], axis=1)


def features(noise_var, image, symbols, reencoded) -> np.ndarray:
    """[B, len(FEATURES)] from noise_var [B, k], decoded images [B, ..., 28, 28] in [0, 1], the
    received symbols [B, k, 2] and the decoded images re-encoded [B, k, 2]."""
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
    c = consistency(np.reshape(symbols, (b, -1, 2)), np.reshape(reencoded, (b, -1, 2)), nv)
    return np.concatenate([np.stack([np.ones(b), bits, bits ** 2, e, e * bits, e ** 2], axis=1),
                           im, im * bits[:, None], c, c * bits[:, None], c ** 2], axis=1)


def reencode(encode, images, snr_db: float = DESIGN_SNR_DB) -> np.ndarray:
    """encode(images, snr [B]) -> symbols [B, k, 2] of the decoded images (clipped to [0, 1])."""
    x = np.clip(np.asarray(images, np.float32).reshape(-1, 1, 28, 28), 0.0, 1.0)
    return np.asarray(encode(x, np.full(len(x), snr_db, np.float32)), np.float32)


def fit(noise_var, images, symbols, reencoded, true_psnr, noise_var_floor: float = 0.0) -> dict:
    """Ridge weights + the PSNR range that maps to reliability 0..1. noise_var_floor: the noise
    variance of the fit's best SNR; a symbol reported better is read as that (Reliability.predict)."""
    x = features(np.maximum(noise_var, noise_var_floor), images, symbols, reencoded)
    y = np.asarray(true_psnr, dtype=np.float64)
    reg = RIDGE * np.eye(x.shape[1])
    reg[0, 0] = 0.0  # the intercept is not shrunk
    w = np.linalg.solve(x.T @ x + reg, x.T @ y)
    lo, hi = np.percentile(y, [5, 95])
    return {"features": list(FEATURES), "ridge": RIDGE, "weights": [round(float(v), 6) for v in w],
            "psnr_range_db": [round(float(lo), 3), round(float(hi), 3)], "reencode_snr_db": DESIGN_SNR_DB,
            "feature_range": [[float(f"{v:.6g}") for v in x.min(axis=0)], [float(f"{v:.6g}") for v in x.max(axis=0)]],
            "noise_var_floor": float(f"{noise_var_floor:.6g}")}


def _same_features(entry: dict) -> bool:
    """The entry was fitted on the features this code computes."""
    return list(entry.get("features", [])) == list(FEATURES)


class Reliability:
    """predict(noise_var, images, symbols) -> (predicted PSNR dB [B], reliability in [0, 1] [B]).

    encode(images [B,1,28,28], snr_db [B]) -> [B, k, 2]: the link's encoder, which re-encodes
    the decoded images for the consistency features."""

    def __init__(self, entry: dict, encode):
        if not _same_features(entry):
            raise ValueError(f"reliability entry has features {entry['features']}, this code computes {FEATURES} "
                             "(re-fit: diffsem measure reliability)")
        self.w = np.asarray(entry["weights"], dtype=np.float64)
        self.lo, self.hi = (float(v) for v in entry["psnr_range_db"])
        self.reencode_snr_db = float(entry.get("reencode_snr_db", DESIGN_SNR_DB))
        self.noise_var_floor = float(entry.get("noise_var_floor", 0.0))
        self.feature_range = np.asarray(entry["feature_range"], np.float64) if "feature_range" in entry else None
        if self.feature_range is not None and self.feature_range.shape != (2, len(FEATURES)):
            raise ValueError(f"reliability entry's feature_range has shape {self.feature_range.shape}, "
                             f"expected (2, {len(FEATURES)}) (re-fit: diffsem measure reliability)")
        self.encode = encode

    def predict(self, noise_var, images, symbols):
        """A frame of which nothing arrived (every symbol erased: the decoder's fill of a lost frame)
        gets no predicted PSNR (NaN: the fit saw at most half a frame erased, and its consistency
        features are empty) and reliability 0: the whole image is invented."""
        again = reencode(self.encode, images, self.reencode_snr_db)
        # a channel better than the fit's best is read as that best: the codec's own distortion,
        # not the noise, bounds the image there, and |s - enc(x)|^2 / noise_var would blow up
        x = features(np.maximum(noise_var, self.noise_var_floor), images, symbols, again)
        if self.feature_range is not None:  # a mapping fitted without it extrapolates
            x = np.clip(x, self.feature_range[0], self.feature_range[1])
        pred = x @ self.w
        rel = np.clip((pred - self.lo) / max(self.hi - self.lo, 1e-9), 0.0, 1.0)
        nothing = np.all(np.asarray(noise_var).reshape(len(pred), -1) >= ERASED_NOISE_VAR, axis=1)
        return np.where(nothing, np.nan, pred), np.where(nothing, 0.0, rel)


def load(model_name: str, make_encode, path=None, model_sha256: str | None = None) -> Reliability | None:
    """The fitted mapping of a decoder, by its model file stem (naming.artifact_name:
    "deepjscc_k128", "student_k32_s2", ...), or None when the file or the entry is missing, or
    when `model_sha256` (the card's) is given and the entry was fitted for another model file (a
    mapping fitted for other weights would predict nonsense), or made with other features (an
    older version's file), or when the file cannot be read or the entry or the encoder cannot be
    used: each warned, naming the file, never an error, so the decoder still runs without a score.
    make_encode() returns the encoder callable of Reliability; it is called only when there is an
    entry to use."""
    from diffsem import models_dir
    path = Path(path) if path else Path(models_dir()) / FILE_NAME
    if not path.is_file():
        return None
    try:  # the score is optional: a broken file costs it, never the decoder
        doc = json.loads(path.read_text())
        models = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(models, dict):
            raise ValueError('no "models" object')
        entry = models.get(model_name)
        if entry is not None and not isinstance(entry, dict):
            raise ValueError(f"the entry of {model_name} is not an object")
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); no reliability score (re-fit: diffsem measure reliability)", path, exc)
        return None
    if entry and model_sha256 is not None and entry.get("model_sha256") != model_sha256:
        log.warning("%s: %s was fitted for another %s file; no reliability score (re-fit: diffsem measure "
                    "reliability)", path, model_name, model_name)
        return None
    if not entry:
        return None
    if not _same_features(entry):  # made by an older version: the decoder runs, unscored
        log.warning("%s: %s was fitted with other features than this code computes; no reliability score "
                    "(re-fit: diffsem measure reliability)", path, model_name)
        return None
    if "feature_range" not in entry or "noise_var_floor" not in entry:
        log.warning("%s: %s was fitted without its feature range or noise floor; its score is wrong above the "
                    "fit's SNRs (re-fit: diffsem measure reliability)", path, model_name)
    try:
        return Reliability(entry, make_encode())
    except Exception as exc:  # noqa: BLE001 - a bad entry, or the link's encoder missing or tampered
        log.warning("%s: no reliability score for %s: %s", path, model_name, exc)
        return None
