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
