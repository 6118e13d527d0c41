"""The per-image reliability score (diffsem.runtime.reliability): features the receiver has
(noise variances, the decoded image, the received symbols against the image re-encoded), the
fit, the mapping file."""
import json

import numpy as np
import pytest

from diffsem.phy.ofdm import ERASED_NOISE_VAR
from diffsem.runtime import reliability

K = 16
_A = np.random.default_rng(5).standard_normal((784, 2 * K)) / np.sqrt(784 / 8)  # a toy linear encoder


def encode(images, snr_db):
    return (np.asarray(images, np.float64).reshape(len(images), 784) @ _A).reshape(-1, K, 2).astype(np.float32)


def _received(images, nv, rng):
    """enc(images) + complex noise of variance nv per symbol ([B, k, 2] float)."""
    return encode(images, None) + rng.standard_normal((len(images), K, 2)) * np.sqrt(nv / 2)[..., None]


def test_features_count_information_and_erasures():
    nv = np.array([[0.1] * 8, [0.1] * 4 + [ERASED_NOISE_VAR] * 4])
    img = np.zeros((2, 28, 28))
    sym = np.zeros((2, 8, 2))
    f = reliability.features(nv, img, sym, sym)
    assert f.shape == (2, len(reliability.FEATURES))
    col = reliability.FEATURES.index
    assert f[0, col("bits")] == pytest.approx(np.log2(11.0))
    assert f[1, col("bits")] == pytest.approx(np.log2(11.0) / 2)   # an erased symbol carries nothing
    assert f[1, col("erased")] == 0.5 and f[0, col("erased")] == 0.0


def test_consistency_measures_what_the_decoded_image_left_unexplained():
    rng = np.random.default_rng(1)
    x = rng.random((400, 1, 28, 28)).astype(np.float32)
    nv = np.full((400, K), 0.01)
    nv[:, :4] = ERASED_NOISE_VAR                 # erased symbols carry anything; they are left out
    s = _received(x, nv, rng)
    s[:, :4] = 1e3
    right = reliability.consistency(s, encode(x, None), nv)
    assert abs(np.mean(10 ** right[:, 1]) - 1.0) < 0.05     # the true image: residual = noise
    amount = rng.uniform(0.02, 0.3, (len(x), 1, 1, 1))
    off = np.clip(x + amount * rng.standard_normal(x.shape), 0, 1).astype(np.float32)
    wrong = reliability.consistency(s, encode(off, None), nv)
    truth = np.mean(np.sum((encode(x, None) - encode(off, None))[:, 4:] ** 2, -1), 1)
    assert np.corrcoef(wrong[:, 0], np.log10(truth))[0, 1] > 0.9   # the excess tracks the symbol distortion
    assert np.all(wrong[:, 1] > right[:, 1])


def test_fit_recovers_a_relation_and_maps_reliability_into_unit_interval(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    snr = rng.uniform(15, 30, n)   # the symbols clearly above the noise: the test is of the fit, not of noise
    nv = np.repeat(10 ** (-snr / 10)[:, None], K, axis=1)
    nv[rng.random((n, K)) < 0.2] = ERASED_NOISE_VAR
    truth = rng.random((n, 1, 28, 28)) * rng.random((n, 1, 1, 1))
    # decoded = the truth partly replaced by another image: its own statistics do not show how much
    mix = rng.uniform(0.2, 1.0, (n, 1, 1, 1))
    imgs = (1 - mix) * truth + mix * np.roll(truth, 1, axis=0)
    sym = _received(truth, np.where(nv >= ERASED_NOISE_VAR, 0.0, nv), rng)
    err = 10 * np.log10(np.mean((imgs - truth) ** 2, axis=(1, 2, 3)))
    bits = reliability.features(nv, imgs, sym, encode(imgs, None))[:, 1]
    true = 12 + 0.2 * bits - 0.8 * err + rng.normal(0, 0.1, n)   # what the image's own error says
    entry = reliability.fit(nv, imgs, sym, reliability.reencode(encode, imgs), true)
    assert entry["reencode_snr_db"] == reliability.DESIGN_SNR_DB
    (tmp_path / reliability.FILE_NAME).write_text(json.dumps({"models": {"deepjscc_k16": entry}}))
    model = reliability.load("deepjscc_k16", lambda: encode, tmp_path / reliability.FILE_NAME)
    pred, rel = model.predict(nv, imgs, sym)
    assert np.corrcoef(pred, true)[0, 1] > 0.95
    assert rel.min() >= 0 and rel.max() <= 1 and np.corrcoef(rel, true)[0, 1] > 0.9
    # without the consistency features the image error is invisible: the fit is far worse
    f = reliability.features(nv, imgs, sym, reliability.reencode(encode, imgs))
    blind = f[:, :reliability.FEATURES.index("consistency")]
    w = np.linalg.lstsq(blind, true, rcond=None)[0]
    assert np.corrcoef(blind @ w, true)[0, 1] < np.corrcoef(pred, true)[0, 1] - 0.1
    assert reliability.load("student_k16_s2", lambda: encode, tmp_path / reliability.FILE_NAME) is None
    assert reliability.load("deepjscc_k16", lambda: encode, tmp_path / "absent.json") is None
    # a mapping is bound to the model file it was fitted for: another file's card gets none
    entry["model_sha256"] = "a" * 64
    (tmp_path / reliability.FILE_NAME).write_text(json.dumps({"models": {"deepjscc_k16": entry}}))
    assert reliability.load("deepjscc_k16", lambda: encode, tmp_path / reliability.FILE_NAME, "a" * 64) is not None
    assert reliability.load("deepjscc_k16", lambda: encode, tmp_path / reliability.FILE_NAME, "b" * 64) is None


def test_mapping_made_with_other_features_is_refused(tmp_path, caplog):
    old = {"features": ["one", "bits"], "weights": [0, 1], "psnr_range_db": [10, 30]}
    with pytest.raises(ValueError, match="re-fit"):
        reliability.Reliability(old, encode)
    # an older version's file beside the models: the decoder gets no score and a warning, no error
    (tmp_path / reliability.FILE_NAME).write_text(json.dumps({"models": {"deepjscc_k16": old}}))
    assert reliability.load("deepjscc_k16", lambda: encode, tmp_path / reliability.FILE_NAME) is None
    assert "re-fit" in caplog.text


@pytest.mark.parametrize("content", ["{\n  ", "[1, 2]", '{"models": [1]}', '{"models": {"deepjscc_k16": 3}}',
                                     '{"models": {"deepjscc_k16": {"features": []}}}'])
def test_a_broken_mapping_file_costs_the_score_not_the_decoder(tmp_path, caplog, content):
    (tmp_path / reliability.FILE_NAME).write_text(content)
    assert reliability.load("deepjscc_k16", lambda: encode, tmp_path / reliability.FILE_NAME) is None
    assert reliability.FILE_NAME in caplog.text or "re-fit" in caplog.text


def test_an_encoder_that_cannot_load_costs_the_score_not_the_decoder(tmp_path, caplog):
    entry = {"features": list(reliability.FEATURES), "weights": [0.0] * len(reliability.FEATURES),
             "psnr_range_db": [10, 30], "feature_range": [[0] * len(reliability.FEATURES)] * 2, "noise_var_floor": 0}
    (tmp_path / reliability.FILE_NAME).write_text(json.dumps({"models": {"deepjscc_k16": entry}}))

    def broken():
        raise FileNotFoundError("encoder_k16.onnx is missing")
    assert reliability.load("deepjscc_k16", broken, tmp_path / reliability.FILE_NAME) is None
    assert "encoder_k16.onnx is missing" in caplog.text


def test_prediction_stays_in_the_fitted_range_far_above_the_fit_snrs():
    """A cable at 60 dB: the linear fit must not extrapolate its features (bits would be three
    times the fit's largest); the truth saturates there, and so must the prediction."""
    rng = np.random.default_rng(3)
    n = 600
    truth = rng.random((n, 1, 28, 28)) * rng.random((n, 1, 1, 1))
    mix = rng.uniform(0.05, 0.5, (n, 1, 1, 1))
    imgs = (1 - mix) * truth + mix * np.roll(truth, 1, axis=0)

    def channel(snr_db):
        nv = np.repeat(10 ** (-np.asarray(snr_db) / 10)[:, None], K, axis=1)
        return nv, _received(truth, nv, rng)
    nv, sym = channel(rng.uniform(0, 20, n))
    err = 10 * np.log10(np.mean((imgs - truth) ** 2, axis=(1, 2, 3)))
    bits = reliability.features(nv, imgs, sym, encode(imgs, None))[:, 1]
    true = 10 + 0.5 * bits - 0.5 * err          # rises with the channel within the fit's range
    entry = reliability.fit(nv, imgs, sym, reliability.reencode(encode, imgs), true, noise_var_floor=0.01)
    assert entry["noise_var_floor"] == 0.01
    model = reliability.Reliability(entry, encode)
    top, _ = model.predict(channel(np.full(n, 20.0))[0], imgs, channel(np.full(n, 20.0))[1])
    nv60, sym60 = channel(np.full(n, 60.0))
    far, _ = model.predict(nv60, imgs, sym60)
    assert abs(far.mean() - top.mean()) < 1.5
    assert true.min() < far.min() and far.max() < true.max()
    # a fit without floor or range (an older file) extrapolates: what they prevent
    old = reliability.fit(nv, imgs, sym, reliability.reencode(encode, imgs), true)
    del old["feature_range"], old["noise_var_floor"]
    wild, _ = reliability.Reliability(old, encode).predict(nv60, imgs, sym60)
    assert abs(wild.mean() - top.mean()) > 10
