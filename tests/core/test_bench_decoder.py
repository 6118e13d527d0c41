"""`diffsem bench decoder` on tiny exported decoders: FLOP count by hand, one JSON line out."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from diffsem.experiments import bench_decoder
from diffsem.runtime import flops as flop_count
from diffsem.runtime.cards import make_card, write_card

K = 8


class ConvDecoder(torch.nn.Module):
    """symbols -> MatMul (mix re/im) -> Gemm -> ConvTranspose x4 -> Conv -> image; steps repeats the body."""

    def __init__(self, k=K, steps=1):
        super().__init__()
        torch.manual_seed(0)
        self.steps = steps
        self.mix = torch.nn.Parameter(torch.randn(2, 2))
        self.fc = torch.nn.Linear(2 * k, 4 * 7 * 7)
        self.up = torch.nn.ConvTranspose2d(4, 2, 4, stride=4)
        self.out = torch.nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, symbols, snr_db, noise_var):
        x = torch.zeros(symbols.shape[0], 1, 28, 28)
        for _ in range(self.steps):  # an unrolled "sampler": the same network `steps` times
            # depends on x, so the exporter cannot merge the repeated bodies into one
            h = torch.matmul(symbols / (1 + noise_var[..., None]) + x[:, :, :1, :1].flatten(1)[:, :, None],
                             self.mix).flatten(1)
            h = self.up(self.fc(h).view(-1, 4, 7, 7))
            x = torch.sigmoid(self.out(h) + x + snr_db[:, None, None, None] * 0)
        return x


def flops_by_hand(k=K, steps=1):
    matmul = 2 * k * 2 * 2            # [k,2] @ [2,2]
    gemm = 2 * (2 * k) * 196          # Linear 2k -> 196
    deconv = 2 * (4 * 7 * 7) * 2 * 16  # each of 4x7x7 inputs scatters a 2x4x4 kernel
    conv = 2 * 784 * 2 * 9            # 1x28x28 outputs, 2x3x3 taps each
    return steps * (matmul + gemm + deconv + conv)


def export(folder, name, role, steps):
    path = folder / f"{name}.onnx"
    args = (torch.zeros(2, K, 2), torch.zeros(2), torch.ones(2, K))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ConvDecoder(K, steps), args, str(path), input_names=["symbols", "snr_db", "noise_var"],
                          output_names=["image"], dynamo=False, opset_version=17,
                          dynamic_axes={n: {0: "batch"} for n in ("symbols", "snr_db", "noise_var", "image")})
    write_card(folder / f"{name}.json", make_card(path, name=name, role=role, k=K, steps=steps))
    return path


def test_flop_count_matches_hand_count(tmp_path):
    for steps in (1, 3):
        flops, skipped = flop_count.count_flops(export(tmp_path, f"s{steps}", "student", steps))
        assert skipped == []
        assert flops == flops_by_hand(steps=steps)


def test_bench_prints_one_json_line(tmp_path, capsys, run_command):
    export(tmp_path, "teacher_k8", "teacher", 8)
    export(tmp_path, "student_k8_s1", "student", 1)
    (tmp_path / "notes.json").write_text("[1, 2]")  # not a card: ignored
    rc = run_command("diffsem.experiments.bench_decoder",
                     ["--models", str(tmp_path), "--batch", "1", "4", "--min-time", "0.05",
                      "--peak-size", "256", "--threads", "1"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["peak"]["ort_gflops"] > 0 and report["peak"]["numpy_gflops"] > 0
    by_name = {d["name"]: d for d in report["decoders"]}
    assert set(by_name) == {"teacher_k8", "student_k8_s1"}
    s, t = by_name["student_k8_s1"], by_name["teacher_k8"]
    assert s["flops_per_image"] == flops_by_hand() and t["flops_per_image"] == flops_by_hand(steps=8)
    assert s["mflops_per_image"] == pytest.approx(flops_by_hand() / 1e6, abs=1e-4)
    for d in (s, t):
        assert d["provider"] == "CPUExecutionProvider"
        assert d["images_per_s"]["4"] > 0 and d["latency_ms"]["1"] > 0
        assert 0 < d["peak_fraction"]["4"] < 2
    assert report["student_vs_teacher_b64"] if "64" in s["images_per_s"] else "student_vs_teacher_b64" not in report


def test_bench_without_decoders_says_so(tmp_path, capsys, run_command):
    assert run_command("diffsem.experiments.bench_decoder", ["--models", str(tmp_path)]) == 1
    assert "no decoder cards" in capsys.readouterr().err


class FilmNet(torch.nn.Module):
    """Conv -> GroupNorm -> FiLM (chunk) -> Conv. The exported chunk (Shape/Slice arithmetic) loses
    the batch axis in ONNX shape inference, so the last Conv's shapes come only from the probe run."""

    def __init__(self):
        super().__init__()
        self.a, self.norm = torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.GroupNorm(2, 4)
        self.film, self.b = torch.nn.Linear(1, 8), torch.nn.Conv2d(4, 1, 3)

    def forward(self, image):
        scale, shift = self.film(image.mean((2, 3))).chunk(2, dim=1)
        h = self.norm(self.a(image)) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return self.b(h)


def test_flops_counted_where_shape_inference_gives_up(tmp_path, monkeypatch):
    path = tmp_path / "film.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(FilmNet(), (torch.zeros(2, 1, 28, 28),), str(path), input_names=["image"],
                          output_names=["out"], dynamo=False, opset_version=17, dynamic_axes={"image": {0: "batch"}})
    flops, skipped = flop_count.count_flops(path)
    assert skipped == []
    assert flops == 2 * (4 * 28 * 28) * 1 * 9 + 2 * 1 * 1 * 8 + 2 * (1 * 26 * 26) * 4 * 9
    monkeypatch.setattr(flop_count, "_measured_shapes", lambda model: {})
    assert flop_count.count_flops(path)[1] == ["Conv /b/Conv (shape unknown)"]  # what the probe run fixes


def test_shipped_cards_carry_the_flops_of_their_graphs():
    from diffsem import models_dir
    from diffsem.runtime.cards import find_cards, load_card
    checked = 0
    for path in find_cards(models_dir()):
        card = load_card(path)
        if card.get("role") in ("deepjscc_decoder", "student"):
            assert card["flops_per_image"] == flop_count.count_flops(models_dir() / card["file"])[0], card["name"]
            checked += 1
    assert checked >= 4
