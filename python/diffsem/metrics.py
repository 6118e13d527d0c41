"""Image metrics for reconstructions of Fashion-MNIST (all offline: nothing is downloaded).

* `psnr`: per image on [0, 1] (both arrays clipped to [0, 1] first), 10 log10(1 / MSE). An exact
  reconstruction has MSE 0 and infinite PSNR; it is reported as PSNR_CAP_DB = 100 dB so means
  stay finite. Averages are over images (mean of per-image dB), not PSNR of the mean MSE.
* `ssim`: per image, scikit-image's structural_similarity (7x7 uniform window, data_range 1).
* `accuracy`: the in-project classifier (diffsem.nn.classifier, card models/classifier.json, its
  clean test accuracy in the card) applied to the reconstructions, scored against true labels.
* `fid_fmnist`: Fréchet distance between Gaussians fitted to the classifier's 128-d penultimate
  features of the reconstructions and of the reference (original) images. It is *not*
  Inception-FID and its values are not comparable to published FIDs; it is biased upward for
  small n (report n beside it).
* `hf_ratio`: high-frequency spectral energy (radial frequency above half Nyquist, i.e. above
  0.25 cycles/pixel) of the reconstructions over that of the originals, summed over the set.
  1.0 = as sharp as the originals, < 1 = blurred, > 1 = noisier/sharper than the data. It
  catches the blur that a 128-d classifier feature space can miss.
"""
from __future__ import annotations

import hashlib

import numpy as np

PSNR_CAP_DB = 100.0
HF_CUTOFF = 0.25  # cycles/pixel: half the Nyquist frequency (0.5)


def _as_images(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name}: expected images [N,1,H,W] (or [N,H,W]), got shape {list(x.shape)}")
    return x.astype(np.float32, copy=False)


def _pair(recons, images):
    recons, images = _as_images(recons, "recons"), _as_images(images, "images")
    if recons.shape != images.shape:
        raise ValueError(f"recons {list(recons.shape)} and images {list(images.shape)} differ in shape")
    return recons, images


def psnr(recons, images) -> np.ndarray:
    """Per-image PSNR in dB on [0, 1]; identical images give PSNR_CAP_DB."""
    recons, images = _pair(recons, images)
    err = np.clip(recons, 0, 1).astype(np.float64) - np.clip(images, 0, 1)
    mse = np.mean(err ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        value = -10.0 * np.log10(mse)
    return np.minimum(value, PSNR_CAP_DB)


def ssim(recons, images) -> np.ndarray:
    """Per-image SSIM (scikit-image, data_range 1, 7x7 window)."""
    from skimage.metrics import structural_similarity

    recons, images = _pair(recons, images)
    r, x = np.clip(recons[:, 0], 0, 1), np.clip(images[:, 0], 0, 1)
    return np.array([structural_similarity(x[i], r[i], data_range=1.0) for i in range(len(x))])


def hf_energy(images, cutoff: float = HF_CUTOFF) -> np.ndarray:
    """Per-image spectral energy at radial frequencies above `cutoff` cycles/pixel."""
    images = _as_images(images, "images")[:, 0].astype(np.float64)
    h, w = images.shape[-2:]
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    mask = np.sqrt(fx ** 2 + fy ** 2) > cutoff
    power = np.abs(np.fft.fft2(images)) ** 2
    return power[:, mask].sum(axis=1)


def hf_ratio(recons, images, cutoff: float = HF_CUTOFF) -> float:
    """High-frequency energy of the reconstructions / of the originals (1.0 = as sharp)."""
    recons, images = _pair(recons, images)
    ref = hf_energy(images, cutoff).sum()
    if ref <= 0:
        return float("nan")
    return float(hf_energy(recons, cutoff).sum() / ref)


# --- classifier-based metrics --------------------------------------------------------------

def classifier_outputs(images, net=None, batch: int = 1000, device: str = "cpu"):
    """(logits [N,10], features [N,128]) of the shipped classifier (or `net`) as float64 arrays."""
    import torch

    from diffsem.nn.classifier import load_classifier

    net = net if net is not None else load_classifier(device=device)
    images = _as_images(images, "images")
    logits, feats = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.clip(images[i:i + batch], 0, 1)).to(device)
            lg, ft = net.logits_and_features(x)
            logits.append(lg.cpu().numpy())
            feats.append(ft.cpu().numpy())
    if not logits:
        return np.zeros((0, 10)), np.zeros((0, 0))
    return np.concatenate(logits).astype(np.float64), np.concatenate(feats).astype(np.float64)


def accuracy_from_logits(logits, labels) -> float:
    labels = np.asarray(labels)
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else float("nan")


def accuracy(recons, labels, net=None, device: str = "cpu") -> float:
    """Classifier accuracy on `recons` against the true labels."""
    return accuracy_from_logits(classifier_outputs(recons, net, device=device)[0], labels)


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 2:
        raise ValueError(f"FID needs at least 2 images, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^1/2), with tr (C1 C2)^1/2 computed as the trace of
    the square root of the symmetric PSD matrix C1^1/2 C2 C1^1/2 (stable, no complex sqrtm)."""
    w, v = np.linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root1 @ cov2 @ root1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt, 0.0))


_reference_cache: dict = {}


def reference_stats(images, net=None, device: str = "cpu"):
    """Feature mean/covariance of reference images, cached by content (the 10k test set is
    scored against many reconstructions in one eval run)."""
    images = np.ascontiguousarray(_as_images(images, "images"))
    key = (images.shape, hashlib.blake2b(images.tobytes(), digest_size=16).hexdigest(), id(net), device)
    if key not in _reference_cache:
        if len(_reference_cache) > 8:
            _reference_cache.clear()
        _reference_cache[key] = feature_stats(classifier_outputs(images, net, device=device)[1])
    return _reference_cache[key]


def fid_fmnist(recons, images, net=None, device: str = "cpu") -> float:
    """FID-FMNIST: Fréchet distance of classifier penultimate features, recons vs originals."""
    mu_r, cov_r = feature_stats(classifier_outputs(recons, net, device=device)[1])
    mu_x, cov_x = reference_stats(images, net, device)
    return frechet_distance(mu_r, cov_r, mu_x, cov_x)
