"""Sampling temperature: per-card defaults (naming.card_temperature / load_scheme) and the
`diffsem eval --temperature T1 T2 ... --split val` calibration sweep."""
from __future__ import annotations

import json

import numpy as np
import pytest
from support import DctScheme

from diffsem import data, models_dir
from diffsem.experiments import evaluate, schemes
from diffsem.runtime import naming
from diffsem.runtime.cards import load_card, write_card

MODELS = models_dir()


class NoisyStudent(DctScheme):
    """A fake diffusion decoder: the DCT decoder plus temperature-scaled source noise."""

    def __init__(self, k, steps=1):
        super().__init__(k, name="student", steps=steps)
        self.temperature = naming.DEFAULT_TEMPERATURE

    def decode(self, symbols, snr_db, noise_var, rng):
        out = super().decode(symbols, snr_db, noise_var, rng)
        noise = 0.05 * self.temperature * rng.standard_normal(out.shape)
        return np.clip(out + noise, 0, 1).astype(np.float32)


def _card(folder, name, **extra):
    (folder / f"{name}.onnx").write_bytes(b"x")
    write_card(folder / f"{name}.json", {"name": name, "role": extra.pop("role", "student"),
                                         "file": f"{name}.onnx", "sha256": "0" * 64, "bytes": 1, **extra})


def test_card_temperature_reads_the_card_default(tmp_path):
    _card(tmp_path, "student_k8_s1", default_temperature=0.97)
    _card(tmp_path, "student_k8_s2")                                   # no key: the global default
    _card(tmp_path, "student_k8_s4", default_temperature=None)         # null: the global default
    _card(tmp_path, "teacher_k8", role="teacher", default_temperature=0.9)
    assert naming.card_temperature("student", 8, 1, folder=tmp_path) == 0.97
    assert naming.card_temperature("student", 8, 2, folder=tmp_path) == naming.DEFAULT_TEMPERATURE
    assert naming.card_temperature("student", 8, 4, folder=tmp_path) == naming.DEFAULT_TEMPERATURE
    assert naming.card_temperature("teacher", 8, folder=tmp_path) == 0.9
    assert naming.card_temperature("student", 99, 1, folder=tmp_path) == naming.DEFAULT_TEMPERATURE


@pytest.mark.skipif(not (MODELS / "student_k128_s1.json").exists(), reason="shipped models not present")
@pytest.mark.parametrize("name,k,steps", [("student", 128, 1), ("student", 32, 2), ("teacher", 128, None)])
def test_load_scheme_takes_the_shipped_card_default(name, k, steps):
    card = load_card(MODELS / f"{naming.artifact_name(name, k, steps or naming.TEACHER_STEPS)}.json")
    want = card.get("default_temperature")
    want = naming.DEFAULT_TEMPERATURE if want is None else want
    assert schemes.load_scheme(name, k, steps, threads=1).temperature == pytest.approx(want)
    assert schemes.load_scheme(name, k, steps, temperature=0.5, threads=1).temperature == 0.5


@pytest.mark.skipif(not (MODELS / "student_k128_s1.json").exists(), reason="shipped models not present")
def test_shipped_student_defaults_are_in_range_and_the_deepjscc_keeps_the_global_one():
    for path in sorted(MODELS.glob("student_k*_s*.json")):
        t = load_card(path).get("default_temperature")
        assert t is None or 0.0 <= t <= 1.0, path.name   # the knob was trained over [0, 1]
    assert schemes.load_scheme("deepjscc", 32, threads=1).temperature == naming.DEFAULT_TEMPERATURE


def test_at_temperatures_copies_diffusion_schemes_only():
    student, plain = NoisyStudent(8), DctScheme(8)
    copies = evaluate.at_temperatures(student, [0.8, 1.0])
    assert [c.temperature for c in copies] == [0.8, 1.0] and student.temperature == naming.DEFAULT_TEMPERATURE
    assert evaluate.at_temperatures(student, None) == [student]
    assert evaluate.at_temperatures(plain, [0.8, 1.0]) == [plain]
    with pytest.raises(ValueError, match="out of range"):
        evaluate.at_temperatures(student, [2.5])


def test_cli_temperature_sweep_on_the_validation_split(monkeypatch, capsys, run_command):
    splits = []
    real_load = data.load

    def load(split):
        splits.append(split)
        return real_load(split)

    def fake_load(name, k, steps=None, backend="onnx", device="cpu", **kwargs):
        assert kwargs == {"threads": 1}
        return NoisyStudent(k, steps) if name == "student" else DctScheme(k, name=name)

    monkeypatch.setattr(data, "load", load)
    monkeypatch.setattr(evaluate, "load_scheme", fake_load)
    rc = run_command("diffsem.experiments.evaluate",
                     ["--split", "val", "--scheme", "deepjscc", "student", "--steps", "1", "--k", "8",
                      "--temperature", "0.5", "1.5", "--snr", "5", "--n", "64", "--threads", "1", "--quiet"])
    assert rc == 0 and splits == ["val"]
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["scheme"], r.get("temperature")) for r in rows] == [("deepjscc", None), ("student", 0.5),
                                                                   ("student", 1.5)]
    cold, hot = rows[1], rows[2]
    assert cold["psnr"] > hot["psnr"] and cold["n"] == hot["n"] == 64
    # The validation images are not the test images.
    val, test = real_load("val")[0][:64], real_load("test")[0][:64]
    assert not np.array_equal(val, test) and len(real_load("val")[0]) == data.VAL_SIZE


def test_frame_decoder_takes_the_cards_calibrated_temperature():
    """The radio path (diffusion_decoder -> FrameDecoder) samples at the card's calibrated
    temperature unless told otherwise, as `diffsem eval` does, so flowgraph and offline agree."""
    import types

    import numpy as np

    from diffsem.runtime.inference import FrameDecoder
    from diffsem.runtime.naming import DEFAULT_TEMPERATURE

    card = {"inputs": [{"name": n} for n in ("symbols", "snr_db", "noise_var", "noise")],
            "default_temperature": 0.95}
    model = types.SimpleNamespace(card=card)
    assert FrameDecoder(model, 8).temperature == 0.95
    assert FrameDecoder(model, 8, temperature=0.5).temperature == 0.5
    plain = types.SimpleNamespace(card={"inputs": card["inputs"]})
    assert FrameDecoder(plain, 8).temperature == DEFAULT_TEMPERATURE
    noise = FrameDecoder(model, 8, seed=3).source_noise(7)
    ref = np.random.default_rng([3, 7]).standard_normal((1, 28, 28), dtype=np.float32)
    assert np.allclose(noise, 0.95 * ref)
