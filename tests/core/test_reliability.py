"""The per-image reliability score (diffsem.runtime.reliability): features the receiver has
(noise variances, the decoded image), the fit, the mapping file."""
import json

import numpy as np
import pytest

from diffsem.phy.ofdm import ERASED_NOISE_VAR
from diffsem.runtime import reliability


def test_features_count_information_and_erasures():
    nv = np.array([[0.1] * 8, [0.1] * 4 + [ERASED_NOISE_VAR] * 4])
    img = np.zeros((2, 28, 28))
    f = reliability.features(nv, img)
    assert f.shape == (2, len(reliability.FEATURES))
    col = reliability.FEATURES.index
    assert f[0, col("bits")] == pytest.approx(np.log2(11.0))
    assert f[1, col("bits")] == pytest.approx(np.log2(11.0) / 2)   # an erased symbol carries nothing
    assert f[1, col("erased")] == 0.5 and f[0, col("erased")] == 0.0


def test_fit_recovers_a_relation_and_maps_reliability_into_unit_interval(tmp_path):
    rng = np.random.default_rng(0)
    n, k = 600, 16
    snr = rng.uniform(-2, 22, n)
    nv = np.repeat(10 ** (-snr / 10)[:, None], k, axis=1)
    nv[rng.random((n, k)) < 0.2] = ERASED_NOISE_VAR
    imgs = rng.random((n, 28, 28)) * rng.random((n, 1, 1))
    bits = reliability.features(nv, imgs)[:, 1]
    true = 12 + 3 * bits - 5 * imgs.mean(axis=(1, 2)) + rng.normal(0, 0.1, n)
    entry = reliability.fit(nv, imgs, true)
    (tmp_path / reliability.FILE_NAME).write_text(json.dumps({"models": {"deepjscc_k16": entry}}))
    model = reliability.load("deepjscc_k16", tmp_path / reliability.FILE_NAME)
    pred, rel = model.predict(nv, imgs)
    assert np.corrcoef(pred, true)[0, 1] > 0.98
    assert rel.min() >= 0 and rel.max() <= 1 and np.corrcoef(rel, true)[0, 1] > 0.9
    assert reliability.load("student_k16_s2", tmp_path / reliability.FILE_NAME) is None
    assert reliability.load("deepjscc_k16", tmp_path / "absent.json") is None
    # a mapping is bound to the model file it was fitted for: another file's card gets none
    entry["model_sha256"] = "a" * 64
    (tmp_path / reliability.FILE_NAME).write_text(json.dumps({"models": {"deepjscc_k16": entry}}))
    assert reliability.load("deepjscc_k16", tmp_path / reliability.FILE_NAME, "a" * 64) is not None
    assert reliability.load("deepjscc_k16", tmp_path / reliability.FILE_NAME, "b" * 64) is None


def test_mapping_made_with_other_features_is_refused():
    with pytest.raises(ValueError):
        reliability.Reliability({"features": ["one", "bits"], "weights": [0, 1], "psnr_range_db": [10, 30]})
