"""The one experiment engine: every scheme through the one runner (no name branches), the one
grid, and eval and sweep agreeing on a point.

Uses the baselines only (no trained model): linear, digital and the separation bound, k=32, a
few test images.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from diffsem import data
from diffsem.experiments import evaluate, grid, plots, rows, schemes, sweep

ENGINE = [Path(m.__file__) for m in (evaluate, grid, plots, rows, sweep)]


@pytest.fixture(scope="module")
def few():
    images, labels = data.load("test")
    return images[:8], labels[:8]


def _name_branches(path: Path) -> list[str]:
    """Comparisons against a scheme name (`scheme == "digital"`, `name in ("teacher", ...)`)."""
    names = set(schemes.ALL_SCHEMES)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        for c in node.comparators:
            values = c.elts if isinstance(c, (ast.Tuple, ast.List, ast.Set)) else [c]
            if any(isinstance(v, ast.Constant) and v.value in names for v in values):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_grid_runner_writer_and_plots_never_ask_a_schemes_name():
    apps_sweep = Path(evaluate.__file__).parents[2] / "diffsem_apps" / "sweep.py"
    assert [hit for p in ENGINE + [apps_sweep] for hit in _name_branches(p)] == []


@pytest.mark.parametrize("name", ["linear", "digital", "separation"])
def test_every_baseline_runs_through_the_one_runner(name, few):
    x, y = few
    scheme = schemes.make_scheme(name, 32)
    row = evaluate.evaluate_point(scheme, x, y, "awgn", 20.0, seed=0)
    assert row["scheme"] == name and row["k"] == 32 and row["n"] == 8 and np.isfinite(row["psnr"])
    if name == "digital":  # the scheme reports its own columns
        assert row["mode"] == scheme.mode_for(20.0).name and 0.0 <= row["delivered"] <= 1.0
    if name == "separation":  # offline: the bound's own reconstruction, scored like any other
        from diffsem.baselines.separation import reconstruct
        assert row["psnr"] == evaluate.score(reconstruct(x, 32, 20.0)[0], x, y)["psnr"]
        assert 0.0 <= row["delivered"] <= 1.0


def test_digital_delivered_counts_every_batch(few):
    x, y = few
    one = evaluate.evaluate_point(schemes.make_scheme("digital", 128), x, y, "awgn", 8.0, batch=8)
    split = evaluate.evaluate_point(schemes.make_scheme("digital", 128), x, y, "awgn", 8.0, batch=3)
    assert one["delivered"] == split["delivered"]


def test_eval_and_sweep_rows_agree_on_a_point(few):
    (point,) = grid.make_points(["linear"], [], [32], ["awgn"], [5.0], n=8, seed=4)
    x, y = few
    lib = evaluate.evaluate_point(schemes.make_scheme("linear", 32), x, y, "awgn", 5.0, seed=4)
    row = sweep.run_point(point)
    assert {k: row[k] for k in ("psnr", "ssim", "accuracy", "fid", "hf_ratio")} == \
        {k: lib[k] for k in ("psnr", "ssim", "accuracy", "fid", "hf_ratio")}


def test_grid_follows_each_kind(monkeypatch):
    from diffsem.runtime import naming
    monkeypatch.setattr(naming, "card_temperature", lambda name, k, steps, folder=None: 0.85)
    pts = grid.make_points(["separation", "deepjscc", "student"], [1, 2], [32], ["awgn", "rayleigh"], [0.0],
                           n=4, seed=0, temperature=[0.5, 1.0], csis=["perfect", "estimated"])
    by = {}
    for p in pts:
        by.setdefault(p["scheme"], []).append(p)
    assert {p["channel"] for p in by["separation"]} == {"awgn"}                # the bound is AWGN-only
    assert len(by["deepjscc"]) == 1 + 2 and {p["temperature"] for p in by["deepjscc"]} == {None}
    assert len(by["student"]) == 2 * 2 * (1 + 2)                               # steps x T x (awgn + 2 CSI)
    assert {p["csi"] for p in pts if p["channel"] == "awgn"} == {None}
    assert len({grid.point_key(p) + (p["csi"],) for p in pts}) == len(pts)


def test_eval_rows_resume_keys_survive_their_csv(tmp_path):
    row = {"scheme": "student", "steps": 2, "k": 32, "channel": "awgn", "snr_db": 5.0, "psnr": 20.0,
           "n": 8, "seed": 0, "temperature": 0.85, "mode": None}
    with evaluate.CsvWriter(tmp_path / "e.csv") as w:
        w.write(row)
    (back,) = rows.read_rows(tmp_path / "e.csv")
    fields = ("scheme", "steps", "temperature", "k", "channel", "snr_db", "n", "seed")
    assert rows.key(back, fields) == rows.key(row, fields) and back["mode"] == ""


def test_eval_takes_the_baselines_and_resumes_from_its_csv(tmp_path, capsys, run_command):
    out_csv = tmp_path / "eval.csv"
    argv = ["--scheme", "linear", "digital", "separation", "--k", "32", "--channel", "awgn", "rayleigh",
            "--snr", "0", "20", "--n", "8", "--csv", out_csv, "--quiet"]
    assert run_command("diffsem.experiments.evaluate", argv) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # linear and digital on both channels, the bound on AWGN only
    assert sorted({(r["scheme"], r["channel"]) for r in first}) == [
        ("digital", "awgn"), ("digital", "rayleigh"), ("linear", "awgn"), ("linear", "rayleigh"),
        ("separation", "awgn")]
    assert all(r["steps"] is None for r in first) and {r["mode"] for r in first if r["scheme"] == "digital"}
    assert run_command("diffsem.experiments.evaluate", argv + ["--resume", "--snr", "0", "10", "20"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["snr_db"] for r in again} == {10.0} and len(again) == len(first) // 2
    assert len(rows.read_rows(out_csv)) == len(first) + len(again)
