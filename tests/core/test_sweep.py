"""diffsem.experiments.sweep on the library channel: grid keys, the CSV (truncated lines, old
headers), a Dask cluster, plots and tables. The `diffsem sweep` command and the flowgraph path
are tested in tests/apps/test_sweep_command.py.

Every point here uses the linear baseline (no training, fast) on a few test images.
"""
from __future__ import annotations

import os

import pytest

from diffsem.experiments import sweep


def test_points_and_keys_survive_the_csv(tmp_path):
    points = sweep.make_points(["linear", "student", "separation"], [1, 2], [32], ["awgn", "rayleigh"],
                               [-2.5, 0, 10], n=7, seed=3)
    # separation is AWGN-only: 3 SNRs; linear 2 channels x 3; student 2 steps x 2 channels x 3
    assert len(points) == 3 + 6 + 12
    assert len({sweep.point_key(p) for p in points}) == len(points)
    writer = sweep.RowWriter(tmp_path / "s.csv")
    for p in points:
        writer.write(dict(p, psnr=1.0, finished_at="t"))
    writer.close()
    rows = sweep.read_rows(tmp_path / "s.csv")
    assert [sweep.point_key(r) for r in rows] == [sweep.point_key(p) for p in points]
    assert all(r["seed"] == "3" for r in rows)


def test_truncated_last_line_is_recomputed_not_merged(tmp_path):
    path = tmp_path / "s.csv"
    p1, p2 = sweep.make_points(["linear"], [], [32], ["awgn"], [0, 5], n=4, seed=0)
    writer = sweep.RowWriter(path)
    writer.write(dict(p1, psnr=20.0, finished_at="t1"))
    writer.close()
    with open(path, "a") as f:  # what a kill in the middle of a write leaves
        f.write("library,linear,,32,awgn,0.0,5.0")
    assert [sweep.point_key(r) for r in sweep.read_rows(path)] == [sweep.point_key(p1)]
    writer = sweep.RowWriter(path)
    writer.write(dict(p2, psnr=21.0, finished_at="t2"))
    writer.close()
    assert [sweep.point_key(r) for r in sweep.read_rows(path)] == [sweep.point_key(p1), sweep.point_key(p2)]


def test_dask_cluster_runs_the_same_points(tmp_path):
    distributed = pytest.importorskip("distributed")
    points = sweep.make_points(["linear"], [], [32], ["awgn"], [0, 10], n=6, seed=1)
    bad = dict(points[0], cfo=0.5)  # library path has no CFO: this point must fail, counted, no crash
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cluster:
        counts = sweep.run_sweep(points + [bad], tmp_path / "dask.csv", scheduler=cluster.scheduler_address,
                                 progress=False)
    assert counts == {"points": 3, "skipped": 0, "ran": 2, "failed": 1}
    rows = sweep.read_rows(tmp_path / "dask.csv")
    assert {sweep.point_key(r) for r in rows} == {sweep.point_key(p) for p in points}
    assert all(not r["worker"].endswith(f":{os.getpid()}") for r in rows)  # ran in the cluster's worker
    assert all(r["seed"] == "1" for r in rows)
    # identical to the same point computed here: the seed makes a point reproducible anywhere
    remote = next(r for r in rows if sweep.point_key(r) == sweep.point_key(points[1]))
    assert float(remote["psnr"]) == pytest.approx(sweep.run_point(points[1])["psnr"], abs=1e-4)


def test_plots_and_table(tmp_path):
    rows = []
    for scheme, offset in (("linear", 0.0), ("digital", -5.0), ("separation", -2.0)):
        for snr in (0.0, 10.0, 20.0):
            rows.append({"path": "library", "scheme": scheme, "steps": "", "k": "32", "channel": "awgn",
                         "cfo": "0.0", "snr_db": str(snr), "n": "6", "seed": "0", "psnr": str(15 + snr / 4 + offset),
                         "ssim": "0.5", "accuracy": "0.7", "fid": "120.5", "finished_at": "t"})
    paths = sweep.write_plots(rows, tmp_path, prefix="cliff")
    assert sorted(p.name for p in paths) == ["cliff_k32_awgn.png", "cliff_pd_k32_awgn.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    table = sweep.markdown_table(rows, 32)
    assert table.splitlines()[0] == "| SNR (dB) | digital | linear | separation bound |"
    assert "| 10 | 12.50 / 0.700 | 17.50 / 0.700 | 15.50 / 0.700 |" in table


def test_path_table_pairs_flowgraph_with_library_points():
    common = {"scheme": "linear", "steps": "", "k": "32", "channel": "awgn", "n": "6", "seed": "0", "ssim": "0.5",
              "accuracy": "0.7", "fid": "1", "finished_at": "t"}
    rows = [dict(common, path="library", cfo="0.0", snr_db="10.0", psnr="20.0"),
            dict(common, path="flowgraph", cfo="0.0", snr_db="10.0", psnr="19.75", delivered="1.0"),
            dict(common, path="flowgraph", cfo="0.3", snr_db="10.0", psnr="19.5", delivered="0.9"),
            dict(common, path="flowgraph", cfo="0.0", snr_db="20.0", psnr="25.0", delivered="1.0")]  # no twin
    lines = sweep.path_table(rows).splitlines()
    assert lines[2:] == ["| linear | 32 | awgn | 0 | 10 | 19.75 | 20.00 | -0.25 | 1.0 |",
                         "| linear | 32 | awgn | 0.3 | 10 | 19.50 | 20.00 | -0.50 | 0.9 |"]


def test_diffusion_points_carry_their_temperature_in_the_key(monkeypatch):
    from diffsem.runtime import naming
    monkeypatch.setattr(naming, "card_temperature", lambda name, k, steps, folder=None: 0.85)
    lin, s1 = sweep.make_points(["linear", "student"], [1], [32], ["awgn"], [10], n=4, seed=0)
    assert lin["temperature"] is None and s1["temperature"] == 0.85   # the card's, when not given
    (s1_forced,) = sweep.make_points(["student"], [1], [32], ["awgn"], [10], n=4, seed=0, temperature=1.0)
    assert s1_forced["temperature"] == 1.0
    # a new card temperature is a new point: a resumed sweep recomputes it instead of keeping the old row
    assert sweep.point_key(s1) != sweep.point_key(s1_forced)


def test_csv_from_before_the_temperature_column_is_upgraded_in_place(tmp_path):
    """...and before the impairment columns: its rows are the unimpaired points."""
    path = tmp_path / "old.csv"
    old_fields = [f for f in sweep.FIELDS if f not in ("temperature", "impairment", "fraction", "sir_db")]
    path.write_text(",".join(old_fields) + "\n"
                    "library,linear,,32,awgn,0.0,10.0,4,0,20.5,0.5,0.7,99.0,0.5,,,,1.0,t0,w\n")
    (p_old, p_new) = sweep.make_points(["linear"], [], [32], ["awgn"], [10, 20], n=4, seed=0)
    writer = sweep.RowWriter(path)
    writer.write(dict(p_new, psnr=22.0, finished_at="t1"))
    writer.close()
    assert path.read_text().splitlines()[0] == ",".join(sweep.FIELDS)
    rows = sweep.read_rows(path)
    assert [sweep.point_key(r) for r in rows] == [sweep.point_key(p_old), sweep.point_key(p_new)]
    assert rows[0]["psnr"] == "20.5" and rows[0]["temperature"] == "" and rows[0]["fraction"] == ""
