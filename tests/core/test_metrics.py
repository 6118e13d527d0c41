"""Metric sanity on real Fashion-MNIST test images and the shipped classifier."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from diffsem import data, metrics
from diffsem.nn import classifier


@pytest.fixture(scope="module")
def test_images():
    images, labels = data.load("test")
    return images[:500], labels[:500]


def blur(images, sigma=1.0):
    return gaussian_filter(images, sigma=(0, 0, sigma, sigma)).astype(np.float32)


def test_psnr_identical_capped_noise_low(test_images):
    x, _ = test_images
    assert np.all(metrics.psnr(x, x) == metrics.PSNR_CAP_DB)
    noise = np.random.default_rng(0).random(x.shape, dtype=np.float32)
    assert metrics.psnr(noise, x).mean() < 8
    p_blur = metrics.psnr(blur(x), x).mean()
    assert 12 < p_blur < 30
    # Known value: a constant error of 0.1 is 20 dB.
    assert np.allclose(metrics.psnr(np.clip(x + 0.1, 0, 1), x) >= 20 - 1e-9, True)
    half = np.full((1, 1, 28, 28), 0.5, np.float32)
    assert metrics.psnr(half + 0.1, half)[0] == pytest.approx(20.0, abs=1e-4)


def test_ssim(test_images):
    x, _ = test_images
    assert np.allclose(metrics.ssim(x[:50], x[:50]), 1.0)
    assert metrics.ssim(blur(x[:50]), x[:50]).mean() < 0.9
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.ssim(x[:3], x[:4])


def test_hf_ratio(test_images):
    x, _ = test_images
    assert metrics.hf_ratio(x, x) == pytest.approx(1.0)
    r1, r2 = metrics.hf_ratio(blur(x, 0.7), x), metrics.hf_ratio(blur(x, 1.5), x)
    assert r2 < r1 < 0.5
    noisy = np.clip(x + np.random.default_rng(1).normal(0, 0.1, x.shape), 0, 1)
    assert metrics.hf_ratio(noisy, x) > 1.2


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    cov = a @ a.T + np.eye(4)
    assert metrics.frechet_distance(np.zeros(4), cov, np.zeros(4), cov) == pytest.approx(0, abs=1e-8)
    # Diagonal covariances: sum (mu diff)^2 + sum (sqrt(s1) - sqrt(s2))^2.
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu = np.array([1.0, 0.0, 2.0])
    want = (mu ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert metrics.frechet_distance(mu, np.diag(s1), np.zeros(3), np.diag(s2)) == pytest.approx(want)


def test_shipped_classifier_and_fid(test_images):
    x, y = test_images
    net = classifier.load_classifier()
    clean = metrics.accuracy(x, y, net)
    assert clean > 0.88  # card: ~0.91 on the full 10k
    assert 0.88 < classifier.clean_accuracy() < 0.95
    assert metrics.accuracy(blur(x, 1.5), y, net) < clean
    assert metrics.fid_fmnist(x, x, net) == pytest.approx(0.0, abs=1e-6)
    fid_small, fid_big = metrics.fid_fmnist(blur(x, 0.7), x, net), metrics.fid_fmnist(blur(x, 1.5), x, net)
    assert 0 < fid_small < fid_big
    # Same-distribution sets (two halves of the test set) are far closer than a blurred copy.
    other = data.load("test")[0][5000:5500]
    assert metrics.fid_fmnist(other, x, net) < fid_small


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"expected images \[N,1,H,W\]"):
        metrics.psnr(np.zeros((2, 3, 28, 28)), np.zeros((2, 3, 28, 28)))
    with pytest.raises(ValueError, match="at least 2 images"):
        metrics.feature_stats(np.zeros((1, 128)))
