"""The post-processing controls: each meets its PSNR target on the whole set, says when it cannot."""
import numpy as np

from diffsem.experiments.controls import (add_noise, gaussian_blur, match_noise, match_psnr, match_unsharp,
                                          unsharp)
from diffsem.metrics import psnr


def toy_set(n=64, seed=0):
    """Smooth images in [0, 1] and a blurred copy (a blurry decoder's output)."""
    rng = np.random.default_rng(seed)
    originals = np.clip(gaussian_blur(rng.random((n, 1, 28, 28)), 0.7) * 1.6 - 0.3, 0, 1).astype(np.float32)
    return originals, gaussian_blur(originals, 1.2)


def mean_psnr(x, ref):
    return float(np.mean(psnr(x, ref)))


def test_blur_keeps_a_constant_image_and_the_kernel_is_normalised():
    x = np.full((2, 1, 28, 28), 0.3, np.float32)
    assert np.allclose(gaussian_blur(x), 0.3, atol=1e-6)
    assert np.allclose(unsharp(x, 5.0), 0.3, atol=1e-6)          # nothing to sharpen


def test_controls_meet_the_psnr_cost_on_the_whole_set():
    originals, base = toy_set()
    for cost in (0.5, 2.0):
        target = mean_psnr(base, originals) - cost
        noisy = match_noise(base, originals, target, seed=3)
        assert noisy.reached and abs(mean_psnr(noisy.images, originals) - target) <= 0.01
        assert np.array_equal(noisy.images, add_noise(base, noisy.parameter, seed=3))   # seeded, reproducible
        sharp = match_unsharp(base, originals, target)
        assert sharp.reached and abs(mean_psnr(sharp.images, originals) - target) <= 0.01
        assert np.array_equal(sharp.images, unsharp(base, sharp.parameter))
        assert sharp.parameter > 0 and noisy.parameter > 0


def test_a_cost_beyond_what_sharpening_can_lose_or_a_negative_cost_is_not_reached():
    originals, base = toy_set()
    floor = mean_psnr(unsharp(base, 1e4), originals)                 # saturated: every pixel clipped
    assert not match_unsharp(base, originals, floor - 3.0).reached
    above = match_noise(base, originals, mean_psnr(base, originals) + 1.0)
    assert not above.reached and above.parameter == 0.0


def test_bisection_finds_a_crossing_of_a_non_monotone_curve():
    originals = np.full((1, 1, 28, 28), 0.5, np.float32)
    # PSNR rises, then falls with p (what a mild sharpening of a blurry image can do)
    make = lambda p: np.full_like(originals, 0.5 + 0.1 * abs(p - 1.0))  # noqa: E731
    target = mean_psnr(make(0), originals) - 3.0
    c = match_psnr(make, originals, target, start=0.25, limit=64)
    assert c.reached and abs(c.psnr - target) <= 0.01 and c.parameter > 1.0
