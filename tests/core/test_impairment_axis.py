"""The impairment axis of `diffsem eval` and `diffsem sweep` (--impairment, --fraction, --sir):
fraction 0 is the unimpaired point draw for draw, the rows and resume keys carry it, every
scheme takes it through its own decode, and what it costs grows with the fraction."""
from __future__ import annotations

import json

import numpy as np
import pytest
from support import DctScheme

from diffsem import data
from diffsem.baselines import separation
from diffsem.experiments import evaluate, grid, rows, schemes, sweep

METRICS = ("psnr", "ssim", "accuracy", "fid", "hf_ratio")


@pytest.fixture(scope="module")
def test_set():
    images, labels = data.load("test")
    return images[:50], labels[:50]


def _metrics(row):
    return {k: row[k] for k in METRICS}


def test_fraction_zero_is_the_unimpaired_point_draw_for_draw(test_set):
    x, y = test_set
    fake = DctScheme(16)
    plain = evaluate.evaluate_point(fake, x, y, "selective", 5.0, csi="estimated", seed=3, batch=16)
    for kind in grid.IMPAIRMENT_KINDS:  # several batches: the channel's draws do not move
        zero = evaluate.evaluate_point(fake, x, y, "selective", 5.0, csi="estimated", seed=3, batch=16,
                                       impairment=(kind, 0.0, 0.0))
        assert _metrics(zero) == _metrics(plain)
        assert zero["impairment"] == "none" and zero["fraction"] == 0.0 and "sir_db" not in zero
    hit = evaluate.evaluate_point(fake, x, y, "awgn", 5.0, seed=3, batch=16, impairment=("narrowband", 0.25, 3.0))
    assert (hit["impairment"], hit["fraction"], hit["sir_db"]) == ("narrowband", 0.25, 3.0)
    assert list(hit)[:7] == ["scheme", "steps", "k", "channel", "impairment", "fraction", "sir_db"]


def test_cli_rows_at_fraction_zero_equal_the_rows_without_the_option(tmp_path, capsys, run_command):
    out_csv = tmp_path / "eval.csv"
    base = ["--scheme", "linear", "digital", "separation", "--k", "32", "--snr", "20", "--n", "12",
            "--batch", "5", "--quiet"]
    assert run_command("diffsem.experiments.evaluate", base + ["--csv", out_csv]) == 0
    plain = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # resumed with the axis: only the new fraction runs, the rows without it are its fraction 0
    assert run_command("diffsem.experiments.evaluate",
                       base + ["--csv", out_csv, "--resume", "--fraction", "0", "0.5"]) == 0
    resumed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(resumed) == len(plain) and {r["fraction"] for r in resumed} == {0.5}
    assert {r["impairment"] for r in resumed} == {"erasure"}
    assert run_command("diffsem.experiments.evaluate", base + ["--fraction", "0", "0.5"]) == 0
    both = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    zero = [r for r in both if r["fraction"] == 0.0]
    assert [_metrics(r) for r in zero] == [_metrics(r) for r in plain]
    assert [(_metrics(r), r.get("delivered")) for r in both if r["fraction"] == 0.5] == \
        [(_metrics(r), r.get("delivered")) for r in resumed]
    back = rows.read_rows(out_csv)
    assert {(r["impairment"], r["fraction"]) for r in back} == {("none", "0.0"), ("erasure", "0.5")}
    assert rows.done_keys(out_csv, evaluate.RESUME_KEY) == \
        {rows.key(r, evaluate.RESUME_KEY) for r in plain + resumed}


def test_grid_and_sweep_carry_the_axis_like_eval(test_set):
    x, y = test_set
    pts = grid.make_points(["linear", "student"], [1], [32], ["awgn"], [5.0], n=8, seed=0,
                           impairment="narrowband", fractions=[0, 0.25, 0.25], sir_db=-3.0)
    assert [(p["scheme"], p["impairment"], p["fraction"], p["sir_db"]) for p in pts] == [
        ("linear", "none", 0.0, None), ("linear", "narrowband", 0.25, -3.0),
        ("student", "none", 0.0, None), ("student", "narrowband", 0.25, -3.0)]
    assert len({grid.point_key(p) for p in pts}) == len(pts)
    # a sweep row of an older CSV (no impairment columns) is the fraction-0 point
    old = {k: v for k, v in pts[0].items() if k not in ("impairment", "fraction", "sir_db")}
    assert grid.point_key(old) == grid.point_key(pts[0]) != grid.point_key(pts[1])
    row = sweep.run_point(pts[1])
    lib = evaluate.evaluate_point(schemes.make_scheme("linear", 32), x[:8], y[:8], "awgn", 5.0,
                                  impairment=("narrowband", 0.25, -3.0))
    assert {k: row[k] for k in METRICS} == _metrics(lib)
    assert (row["impairment"], row["fraction"], row["sir_db"]) == ("narrowband", 0.25, -3.0)
    with pytest.raises(ValueError, match="library channel only"):
        sweep.run_point(dict(pts[1], path="flowgraph"), flowgraph=lambda *a: (x[:8], {}))


def test_linear_at_half_erased_is_measurably_worse(test_set):
    x, y = test_set
    linear = schemes.make_scheme("linear", 32)
    clean = evaluate.evaluate_point(linear, x, y, "awgn", 10.0, impairment=("erasure", 0.0, 0.0))
    half = evaluate.evaluate_point(linear, x, y, "awgn", 10.0, impairment=("erasure", 0.5, 0.0))
    assert half["psnr"] < clean["psnr"] - 2.0 and half["accuracy"] < clean["accuracy"]


def test_digital_sees_an_erased_symbol_as_a_channel_erasure(test_set):
    x, y = test_set
    digital = schemes.make_scheme("digital", 128)
    clean = evaluate.evaluate_point(digital, x[:16], y[:16], "awgn", 20.0)
    small = evaluate.evaluate_point(digital, x[:16], y[:16], "awgn", 20.0, impairment=("erasure", 0.02, 0.0))
    half = evaluate.evaluate_point(digital, x[:16], y[:16], "awgn", 20.0, impairment=("erasure", 0.5, 0.0))
    assert clean["delivered"] == 1.0 and small["delivered"] >= 0.9  # the code corrects a few erasures
    assert half["delivered"] < 0.5 and half["psnr"] < clean["psnr"]


def test_separation_bound_at_the_impaired_capacity():
    clean = separation.capacity_bits(32, 10.0)
    assert separation.capacity_bits(32, 10.0, ("erasure", 0.0, 0.0)) == clean
    assert separation.capacity_bits(32, 10.0, ("truncation", 0.25, 0.0)) == pytest.approx(0.75 * clean)
    assert separation.capacity_bits(32, 10.0, ("erasure", 0.25, 0.0)) == pytest.approx(0.75 * clean, rel=0.02)
    assert 0.75 * clean < separation.capacity_bits(32, 10.0, ("narrowband", 0.25, 0.0)) < clean


def test_deepjscc_psnr_falls_as_the_erased_fraction_grows(test_set):
    x, y = test_set
    deepjscc = schemes.make_scheme("deepjscc", 32, threads=1)
    psnr = [evaluate.evaluate_point(deepjscc, x, y, "awgn", 10.0, impairment=("erasure", f, 0.0))["psnr"]
            for f in (0.0, 0.1, 0.25, 0.5)]
    assert all(a > b for a, b in zip(psnr, psnr[1:])), psnr
