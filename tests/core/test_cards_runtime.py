"""Model cards and the ONNX Runtime wrapper: a model is run only if it is the file its card names."""
from __future__ import annotations

import json
import logging
import shutil
import warnings

import numpy as np
import pytest
import torch

from diffsem.runtime import cards, onnx_model
from diffsem.runtime.cards import ChecksumMismatch, ModelFileMissing, make_card, verify_card, write_card
from diffsem.runtime.onnx_model import InputError, ModelMismatch, OnnxModel, ProviderUnavailable

K = 8


class TinyDecoder(torch.nn.Module):
    """Decoder-contract toy: symbols [B,K,2], snr_db [B], noise_var [B,K] -> image [B,1,28,28]."""

    def __init__(self, k=K):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3 * k + 1, 28 * 28)

    def forward(self, symbols, snr_db, noise_var):
        x = torch.cat([symbols.flatten(1), noise_var, snr_db[:, None] / 10], dim=1)
        return torch.sigmoid(self.fc(x)).view(-1, 1, 28, 28)


def export_tiny(path, k=K, dynamic=True, module=None):
    module = module or TinyDecoder(k)
    args = (torch.zeros(2, k, 2), torch.zeros(2), torch.ones(2, k))
    axes = {n: {0: "batch"} for n in ("symbols", "snr_db", "noise_var", "image")} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, args, str(path), input_names=["symbols", "snr_db", "noise_var"],
                          output_names=["image"], dynamic_axes=axes, dynamo=False, opset_version=17)
    return path


@pytest.fixture
def tiny_card(tmp_path):
    onnx_path = export_tiny(tmp_path / "tiny.onnx")
    card = make_card(onnx_path, name="tiny", role="student", k=K, steps=1,
                     docs={"image": "reconstruction in [0,1]"}, seed=0)
    return write_card(tmp_path / "tiny.json", card)


def inputs(batch=3, k=K):
    rng = np.random.default_rng(0)
    return dict(symbols=rng.standard_normal((batch, k, 2)).astype(np.float32),
                snr_db=np.full(batch, 10, np.float32), noise_var=np.full((batch, k), 0.1, np.float32))


def test_card_roundtrip_and_spec(tiny_card):
    card = cards.load_card(tiny_card)
    assert card["inputs"][0] == {"name": "symbols", "shape": ["batch", K, 2], "dtype": "float32", "doc": ""}
    assert card["outputs"][0]["shape"] == ["batch", 1, 28, 28]
    assert card["outputs"][0]["doc"] == "reconstruction in [0,1]"
    assert card["opset"] == 17 and card["bytes"] == (tiny_card.parent / "tiny.onnx").stat().st_size
    assert verify_card(tiny_card) == tiny_card.parent / "tiny.onnx"
    assert tiny_card.stat().st_mode & 0o044 == (tiny_card.parent / "tiny.onnx").stat().st_mode & 0o044
    assert cards.find_cards(tiny_card.parent, roles=cards.DECODER_ROLES) == [tiny_card]
    assert cards.find_cards(tiny_card.parent, roles=("encoder",)) == []


def test_tampered_model_refused(tiny_card):
    onnx_path = tiny_card.parent / "tiny.onnx"
    data = bytearray(onnx_path.read_bytes())
    data[-10] ^= 0xFF
    onnx_path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match=r"tiny\.onnx: sha256 mismatch \(file [0-9a-f]{12}…, card "
                                               r"[0-9a-f]{12}…\): the file was modified or corrupted"):
        verify_card(tiny_card)
    with pytest.raises(ChecksumMismatch):
        OnnxModel(tiny_card, provider="cpu")


def test_missing_file_and_card(tiny_card):
    (tiny_card.parent / "tiny.onnx").unlink()
    with pytest.raises(ModelFileMissing, match="tiny.onnx: model file named by card .*not found"):
        OnnxModel(tiny_card)
    with pytest.raises(ModelFileMissing, match="model card not found"):
        OnnxModel(tiny_card.parent / "nothing.json")


def test_broken_card_refused(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(cards.CardError, match="not a readable JSON model card"):
        cards.load_card(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"name": "b"}))
    with pytest.raises(cards.CardError, match="lacks required keys"):
        cards.load_card(tmp_path / "b.json")
    with pytest.raises(cards.CardError, match="role"):
        write_card(tmp_path / "c.json", {"name": "c", "role": "oracle", "file": "c", "sha256": "0", "bytes": 0})


def test_wrong_shape_model_refused(tmp_path, tiny_card):
    # A k=16 model dropped in place of the k=8 file its card describes (sha256 updated, spec not).
    card = cards.load_card(tiny_card)
    export_tiny(tmp_path / "tiny.onnx", k=16)
    card.update(sha256=cards.sha256_file(tmp_path / "tiny.onnx"), bytes=(tmp_path / "tiny.onnx").stat().st_size)
    write_card(tiny_card, card)
    with pytest.raises(ModelMismatch, match=r"input 'symbols' has shape \['batch', 16, 2\] in the graph, "
                                            r"\['batch', 8, 2\] in the card"):
        OnnxModel(tiny_card)


def test_wrong_names_refused(tiny_card):
    card = cards.load_card(tiny_card)
    card["inputs"][2]["name"] = "noise_variance"
    write_card(tiny_card, card)
    with pytest.raises(ModelMismatch, match="input names .*noise_var.* in the graph, .*noise_variance.* in card"):
        OnnxModel(tiny_card)


def test_static_batch_model_vs_dynamic_card(tmp_path):
    path = export_tiny(tmp_path / "static.onnx", dynamic=False)
    card = make_card(path, name="static", role="student", k=K)
    assert card["inputs"][0]["shape"] == [2, K, 2]  # fixed batch is written as an int
    card["inputs"][0]["shape"] = ["batch", K, 2]
    write_card(tmp_path / "static.json", card)
    with pytest.raises(ModelMismatch, match=r"shape \[2, 8, 2\] in the graph"):
        OnnxModel(tmp_path / "static.json")


def test_unavailable_forced_provider(tiny_card, monkeypatch):
    monkeypatch.setattr(onnx_model, "available_providers", lambda: ["CPUExecutionProvider"])
    for forced in ("tensorrt", "cuda"):
        with pytest.raises(ProviderUnavailable, match=f"'{forced}' .* not available .*available: CPUExecutionProvider"):
            OnnxModel(tiny_card, provider=forced)
    with pytest.raises(ValueError, match="unknown provider"):
        OnnxModel(tiny_card, provider="gpu")


def test_provider_lists_for_gpu_builds(tmp_path):
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chain = onnx_model.resolve_providers("auto", gpu, cache_dir=tmp_path,
                                      profile={"min": "x:1x8", "opt": "x:64x8", "max": "x:64x8"})
    assert [p[0] if isinstance(p, tuple) else p for p in chain] == gpu
    trt = chain[0][1]
    assert trt["trt_engine_cache_enable"] and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_profile_max_shapes"] == "x:64x8" and trt["trt_fp16_enable"] is False
    assert [p if isinstance(p, str) else p[0] for p in onnx_model.resolve_providers("cuda", gpu)] == gpu[1:]
    assert onnx_model.resolve_providers("cpu", gpu) == ["CPUExecutionProvider"]
    assert onnx_model.resolve_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0][0] == gpu[1]
    assert onnx_model.default_cache_dir().parts[-2:] == ("gr-diffsem", "trt")


def test_run_and_input_validation(tiny_card, caplog):
    with caplog.at_level(logging.INFO, logger="diffsem.runtime"):
        model = OnnxModel(tiny_card, provider="auto", threads=1)
        OnnxModel(tiny_card, provider="cpu")
    assert model.provider == "CPUExecutionProvider"
    assert model.input_names == ["symbols", "snr_db", "noise_var"] and model.output_names == ["image"]
    assert sum("on cpu" in r.getMessage() for r in caplog.records) == 1  # logged once per file
    feeds = inputs()
    out = model(**feeds)["image"]
    with torch.no_grad():
        ref = TinyDecoder()(*(torch.from_numpy(feeds[n]) for n in ("symbols", "snr_db", "noise_var"))).numpy()
    assert out.shape == (3, 1, 28, 28) and np.abs(out - ref).max() < 1e-5

    with pytest.raises(InputError, match=r"missing \['noise_var'\]"):
        model(symbols=feeds["symbols"], snr_db=feeds["snr_db"])
    with pytest.raises(InputError, match=r"unexpected \['seed'\]"):
        model(**feeds, seed=np.zeros(3, np.int64))
    with pytest.raises(InputError, match="is float64, the model takes float32"):
        model(**{**feeds, "snr_db": feeds["snr_db"].astype(np.float64)})
    with pytest.raises(InputError, match=r"shape \[3, 9, 2\], the model takes \['batch', 8, 2\]"):
        model(**{**feeds, "symbols": np.zeros((3, 9, 2), np.float32)})
    with pytest.raises(InputError, match="disagree on the batch size"):
        model(**{**feeds, "snr_db": np.zeros(2, np.float32)})
    bad = feeds["noise_var"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="1 non-finite"):
        model(**{**feeds, "noise_var": bad})


def test_card_in_other_folder_resolves_relative(tmp_path, tiny_card):
    dest = tmp_path / "moved"
    dest.mkdir()
    shutil.copy(tiny_card, dest / "tiny.json")
    shutil.copy(tiny_card.parent / "tiny.onnx", dest / "tiny.onnx")
    assert OnnxModel(dest / "tiny.json").path == dest / "tiny.onnx"


def test_output_shape_checked_at_load_and_on_every_run(tiny_card):
    card = cards.load_card(tiny_card)
    card["outputs"][0]["shape"] = ["batch", 1, 14, 56]
    write_card(tiny_card, card)
    with pytest.raises(ModelMismatch, match=r"output 'image' has shape \['batch', 1, 28, 28\] in the graph, "
                                            r"\['batch', 1, 14, 56\] in the card"):
        OnnxModel(tiny_card)
    # Graphs whose output axes stay symbolic get past the load check; the per-run check catches them.
    card["outputs"][0]["shape"] = ["batch", 1, 28, 28]
    write_card(tiny_card, card)
    model = OnnxModel(tiny_card)
    model.outputs["image"] = {**model.outputs["image"], "shape": ["batch", 1, 14, 56]}
    with pytest.raises(ModelMismatch, match=r"output 'image' came out \[3, 1, 28, 28\], the card promises"):
        model(**inputs())


def test_warm_up_runs_every_batch_size(tiny_card, monkeypatch):
    from diffsem.runtime import OnnxModel
    model = OnnxModel(tiny_card, provider="cpu")
    seen = []
    real = model._run
    monkeypatch.setattr(model, "_run", lambda feeds: seen.append(next(iter(feeds.values())).shape[0]) or real(feeds))
    model.warm_up(5)
    assert seen == [1, 2, 3, 4, 5]
