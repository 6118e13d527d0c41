"""`diffsem eval` end to end with a fake scheme (DCT + LMMSE), and the score/evaluate_point API."""
from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from support import DctScheme

from diffsem import data
from diffsem.experiments import evaluate

K = 16


@pytest.fixture(scope="module")
def fake():
    return DctScheme(K)


@pytest.fixture(scope="module")
def test_set():
    images, labels = data.load("test")
    return images[:200], labels[:200]


def test_score_of_originals(test_set):
    x, y = test_set
    s = evaluate.score(x, x, y)
    assert s["psnr"] == 100.0 and s["ssim"] == pytest.approx(1.0) and s["hf_ratio"] == pytest.approx(1.0)
    assert s["fid"] == pytest.approx(0.0, abs=1e-3) and s["accuracy"] > 0.85 and s["n"] == 200


def test_point_rises_with_snr_and_is_reproducible(fake, test_set):
    x, y = test_set
    low = evaluate.evaluate_point(fake, x, y, "awgn", 0.0, seed=3, batch=64)
    high = evaluate.evaluate_point(fake, x, y, "awgn", 20.0, seed=3, batch=64)
    assert list(low) == ["scheme", "steps", "k", "channel", "snr_db", "psnr", "ssim", "accuracy", "fid",
                         "hf_ratio", "n", "seed"]
    assert high["psnr"] > low["psnr"] + 2 and high["accuracy"] > low["accuracy"] and high["fid"] < low["fid"]
    assert high["ssim"] > low["ssim"] and 0 < low["hf_ratio"] < high["hf_ratio"] < 1.5
    assert evaluate.evaluate_point(fake, x, y, "awgn", 0.0, seed=3, batch=64) == low
    assert evaluate.evaluate_point(fake, x, y, "awgn", 0.0, seed=4, batch=64)["psnr"] != low["psnr"]
    # The batch size does not change the channel draws' statistics, only their order.
    assert abs(evaluate.evaluate_point(fake, x, y, "awgn", 0.0, seed=3, batch=200)["psnr"] - low["psnr"]) < 0.5


def test_fading_costs_and_csi_key(fake, test_set):
    x, y = test_set
    awgn = evaluate.evaluate_point(fake, x, y, "awgn", 5.0)
    sel = evaluate.evaluate_point(fake, x, y, "selective", 5.0, csi="estimated")
    assert sel["csi"] == "estimated" and "csi" not in awgn
    assert sel["psnr"] < awgn["psnr"]


def test_nonfinite_output_counted_not_fatal(test_set, caplog):
    x, y = test_set
    broken = DctScheme(K, fail_on=0)
    with caplog.at_level(logging.ERROR, logger="diffsem.experiments.evaluate"):
        row = evaluate.evaluate_point(broken, x[:40], y[:40], "awgn", 10.0, batch=20)
    assert row["nonfinite"] == 2 * 28 * 28 and np.isfinite(row["psnr"])
    assert "non-finite output pixels" in caplog.text


def test_cli_end_to_end(tmp_path, monkeypatch, capsys, run_command):
    loaded = []

    def fake_load(name, k, steps=None, backend="onnx", device="cpu"):
        loaded.append((name, k, steps, backend))
        if name == "teacher":
            raise FileNotFoundError("models/teacher_k8.json: model card not found")
        return DctScheme(k, name=name, steps=steps)

    monkeypatch.setattr(evaluate, "load_scheme", fake_load)
    out_csv, plots, mosaic = tmp_path / "eval.csv", tmp_path / "plots", tmp_path / "mosaic.png"
    rc = run_command("diffsem.experiments.evaluate",
                     ["--scheme", "deepjscc", "teacher", "student", "--steps", "1", "2", "--k", "8",
                      "--channel", "awgn", "selective", "--csi", "perfect", "estimated", "--snr", "0", "10",
                      "--n", "64", "--batch", "32", "--csv", str(out_csv), "--plots", str(plots),
                      "--mosaic", str(mosaic), "--mosaic-images", "3", "--quiet"])
    assert rc == 1  # the teacher failed to load: reported, the others still ran
    assert ("teacher", 8, None, "onnx") in loaded and ("student", 8, 2, "onnx") in loaded
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # 3 schemes (deepjscc, student x2) x (awgn + selective x 2 CSI) x 2 SNR
    assert len(rows) == 3 * 3 * 2
    assert {(r["scheme"], r["steps"]) for r in rows} == {("deepjscc", None), ("student", 1), ("student", 2)}
    assert {r.get("csi") for r in rows if r["channel"] == "selective"} == {"perfect", "estimated"}
    for r in rows:
        assert r["n"] == 64 and r["k"] == 8 and 0 <= r["accuracy"] <= 1
    with open(out_csv) as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and float(table[0]["psnr"]) == rows[0]["psnr"]
    assert table[0]["csi"] == "" and table[0]["steps"] == ""
    assert sorted(p.name for p in plots.iterdir()) == ["eval_k8_awgn.png", "eval_k8_selective_estimated.png",
                                                      "eval_k8_selective_perfect.png"]
    assert mosaic.stat().st_size > 1000
    for path in list(plots.iterdir()) + [mosaic]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scheme_shape_errors(test_set):
    x, y = test_set

    class Wrong(DctScheme):
        def encode(self, images):
            return super().encode(images)[:, :-1]

    with pytest.raises(ValueError, match=r"encode gave \[8, 15, 2\], expected \[8, 16, 2\]"):
        evaluate.evaluate_point(Wrong(K), x[:8], y[:8], "awgn", 10.0)


def test_encoder_gets_the_channel_snr_unless_fixed(test_set):
    x, y = test_set
    scheme = DctScheme(K)
    row = evaluate.evaluate_point(scheme, x[:8], y[:8], "awgn", 7.0)
    assert scheme.last_encode_snr == 7.0 and "tx_snr_db" not in row
    row = evaluate.evaluate_point(scheme, x[:8], y[:8], "awgn", 7.0, tx_snr_known=False)
    assert scheme.last_encode_snr is None and row["tx_snr_db"] == 10.0
