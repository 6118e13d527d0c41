"""A recipe is checked before anything trains or is written (diffsem.nn.recipe_check): an unknown
key (a typo an optional key's default would hide), a wrong type, a missing section or key, an
empty file."""
import re

import pytest

from diffsem.nn.recipe_check import RecipeError
from diffsem.nn.train import load_recipe

TINY = """name: tiny
k: 16
seed: 0
channel: {snr_min: -5, snr_max: 25, kinds: [awgn], impairments: {probability: 0.25, max_fraction: 0.5}}
jscc: {epochs: 1, batch: 64, lr: 0.002, width: 16}
teacher: {epochs: 1, batch: 64, lr: 0.001, width: 8, source_sigma: 0.5, steps: 4}
distill: {rounds: [2, 1], epochs: 1, batch: 64, lr: 0.0005}
"""


def _load(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return load_recipe(path)


def test_the_shipped_recipes_and_a_minimal_one_pass(tmp_path):
    from pathlib import Path
    for path in sorted((Path(__file__).resolve().parents[2] / "models/recipes").glob("*.yaml")):
        load_recipe(path)
    assert _load(tmp_path, TINY)["k"] == 16


@pytest.mark.parametrize("change,message", [
    (("jscc: {epochs: 1, batch: 64, lr: 0.002, width: 16}", "jscc: {epochs: 1, batch: 64, lr: 0.002, widht: 16}"),
     "jscc.widht is not a known key (did you mean jscc.width?)"),
    (("snr_max: 25,", "snr_mxa: 25,"), "channel.snr_mxa is not a known key (did you mean channel.snr_max?)"),
    (("probability: 0.25", "probablity: 0.25"), "channel.impairments.probablity is not a known key"),
    (("distill: {rounds: [2, 1], epochs: 1, batch: 64, lr: 0.0005}", "distill: {rounds: [2, 1], epochs: 1, batch: 64, lrr: 0.0005}"),
     "distill.lrr is not a known key"),
    (("lr: 0.001", "lr: fast"), "teacher.lr must be an integer or a number, got 'fast'"),
    (("k: 16", "k: sixteen"), "k must be an integer"),
    (("k: 16", "k: true"), "k must be an integer"),
    (("steps: 4", "steps: 4.5"), "teacher.steps must be an integer"),
    (("seed: 0\n", ""), "seed is missing"),
    (("source_sigma: 0.5, ", ""), "teacher.source_sigma is missing"),
])
def test_a_wrong_key_or_type_is_named_before_anything_runs(tmp_path, change, message):
    old, new = change
    assert old in TINY
    with pytest.raises(RecipeError, match=re.escape(message)):
        _load(tmp_path, TINY.replace(old, new))


@pytest.mark.parametrize("text", ["", "[1, 2]", "k: [", "kind: classifier\nepocs: 3\n"])
def test_an_empty_list_broken_or_misspelt_classifier_recipe_is_refused(tmp_path, text):
    with pytest.raises(ValueError, match="recipe"):
        _load(tmp_path, text)
