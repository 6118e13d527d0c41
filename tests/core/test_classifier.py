"""Classifier training on a tiny config: writes artifacts + cards, resumes, exports a matching ONNX."""
from __future__ import annotations

import numpy as np

from diffsem import data
from diffsem.nn import classifier
from diffsem.runtime import cards
from diffsem.runtime import OnnxModel

TINY = {"kind": "classifier", "name": "classifier", "epochs": 2, "batch": 64, "lr": 0.01, "widths": [4, 8],
        "features": 16, "train_subset": 1024, "threads": 1, "recipe_path": "tiny"}


def test_tiny_training_writes_verified_artifacts_and_resumes(tmp_path):
    cfg = {**TINY, "checkpoint_dir": str(tmp_path / "ckpt")}
    card = classifier.train_classifier(cfg, tmp_path, "cpu")
    assert card["role"] == "classifier" and card["recipe"] == "tiny"
    assert len(card["training"]["history"]) == 2
    acc = card["metrics"][0]
    assert acc["n"] == 10000 and 0.3 < acc["accuracy"] < 1.0  # 1024 images, 2 epochs: far above chance
    assert cards.verify_card(tmp_path / "classifier.json") == tmp_path / "classifier.pt"
    assert classifier.clean_accuracy(tmp_path) == acc["accuracy"]

    net = classifier.load_classifier(tmp_path)
    x, y = data.load("test")
    assert classifier.accuracy(net, x[:1000], y[:1000]) > 0.3
    onnx_card = cards.load_card(tmp_path / "classifier_onnx.json")
    assert onnx_card["parity"]["max_abs_err"] < 1e-4
    assert [o["shape"] for o in onnx_card["outputs"]] == [["batch", 10], ["batch", 16]]
    out = OnnxModel(tmp_path / "classifier_onnx.json")(image=x[:5])
    assert np.array_equal(out["logits"].argmax(1), net(__import__("torch").from_numpy(x[:5])).argmax(1).numpy())

    # Same recipe again: the checkpoint says training is done, so nothing is re-trained.
    again = classifier.train_classifier(cfg, tmp_path, "cpu")
    assert again["training"]["time_s"] == card["training"]["time_s"]
    assert again["metrics"] == card["metrics"]


def test_unknown_recipe_key_refused():
    import pytest
    with pytest.raises(ValueError, match="unknown keys"):
        classifier.train_classifier({"epochs": 1, "lerning_rate": 1}, "/nonexistent", "cpu")


def test_augmentation_blurs_and_noises_as_configured():
    import torch
    from diffsem.experiments.controls import gaussian_blur

    x = torch.from_numpy(data.load("test")[0][:16])
    off = {**classifier.DEFAULTS}
    assert torch.equal(classifier.augment(x, off), x)                        # the plain recipe: untouched
    # blur at sigma 1 px equals the controls' blur away from the edges (edge handling differs)
    ours = classifier._blur_batch(x, torch.ones(16)).numpy()
    assert np.abs(ours - gaussian_blur(x.numpy(), 1.0))[..., 5:-5, 5:-5].max() < 1e-5
    assert torch.equal(classifier._blur_batch(x, torch.zeros(16)), x)        # sigma 0: unchanged
    # always-on noise of std up to 0.2: residual std near 0.1 before clipping shrinks it
    noisy = classifier.augment(x, {**off, "augment_p": 1.0, "noise_std_max": 0.2}, torch.Generator().manual_seed(0))
    d = (noisy - x)[(x > 0.3) & (x < 0.7)]                                   # mid-grey: clipping rarely bites
    assert 0.07 < float(d.std()) < 0.14 and abs(float(d.mean())) < 0.01
    # p = 0.5: about half the images are left alone
    half = classifier.augment(x.repeat(8, 1, 1, 1), {**off, "augment_p": 0.5, "blur_sigma_max": 1.5},
                              torch.Generator().manual_seed(1))
    same = (half == x.repeat(8, 1, 1, 1)).flatten(1).all(1).float().mean()
    assert 0.35 < float(same) < 0.65


def test_robust_classifier_is_shipped_and_resists_noise():
    """The shipped noise/blur-trained classifier: verified against its card, near the plain one
    on clean images, and far less moved than the plain one by the controls' noise."""
    from diffsem.experiments.controls import add_noise

    x, y = data.load("test")
    x, y = x[:1000], y[:1000]
    robust = classifier.load_classifier(name=classifier.ROBUST)
    plain = classifier.load_classifier()
    assert classifier.accuracy(robust, x, y) > classifier.accuracy(plain, x, y) - 0.03
    noisy = add_noise(x, 0.15, seed=0)
    drop_robust = classifier.accuracy(robust, x, y) - classifier.accuracy(robust, noisy, y)
    drop_plain = classifier.accuracy(plain, x, y) - classifier.accuracy(plain, noisy, y)
    assert drop_robust < 0.5 * drop_plain, (drop_robust, drop_plain)
