"""The posterior-sampler checks on a linear Gaussian model whose posterior is known exactly."""
import numpy as np

from diffsem.experiments.posterior import normalised_residual, spread_ratio


def gaussian_case(rng, b=4000, k=16, prior=1.0, noise=0.3):
    s = rng.normal(0, np.sqrt(prior / 2), (b, k, 2))
    y = s + rng.normal(0, np.sqrt(noise / 2), (b, k, 2))
    post_mean = prior / (prior + noise) * y
    post_var = prior * noise / (prior + noise)
    return s, y, post_mean, post_var, np.full((b, k), noise)


def test_residual_is_one_for_posterior_samples_and_not_for_the_mean_or_the_prior():
    rng = np.random.default_rng(0)
    s, y, m, v, nv = gaussian_case(rng)
    sample = m + rng.normal(0, np.sqrt(v / 2), m.shape)
    prior_draw = rng.normal(0, np.sqrt(0.5), m.shape)          # ignores what was received
    assert abs(normalised_residual(y, sample, nv).mean() - 1.0) < 0.02
    assert normalised_residual(y, m, nv).mean() < 0.3 / 1.3 + 0.02   # N/(P+N) = 0.23
    assert normalised_residual(y, prior_draw, nv).mean() > 3.0


def test_residual_skips_unusable_symbols():
    y = np.zeros((1, 4, 2))
    s = np.zeros((1, 4, 2))
    s[0, 3] = 100.0                                             # an erased symbol, re-encoded far off
    usable = np.array([[True, True, True, False]])
    assert normalised_residual(y, s, np.ones((1, 4)), usable)[0] == 0.0


def test_spread_ratio_matches_posterior_and_flags_overconfident_samples():
    rng = np.random.default_rng(1)
    s, y, m, v, _ = gaussian_case(rng, b=2000)
    draws = np.stack([m + rng.normal(0, np.sqrt(v / 2), m.shape) for _ in range(8)])
    good = spread_ratio(draws, s)
    assert abs(good["ratio"] - good["posterior_ratio"]) < 0.03      # 0.889
    narrow = spread_ratio(m + 0.2 * (draws - m), s)                  # right centre, a fifth of the spread
    assert narrow["ratio"] < 0.2
