"""diffsem sweep: grid keys, resume after a kill, Dask cluster, flowgraph vs library, plots.

Every point here uses the linear baseline (no training, fast) on a few test images.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffsem.experiments import sweep

ROOT = Path(__file__).resolve().parents[1]


def _sweep_cmd(csv_path, snrs, extra=()):
    return [sys.executable, "-m", "diffsem_apps.cli", "sweep", "--scheme", "linear", "--k", "32", "--n", "6",
            "--jobs", "1", "--quiet", "--csv", str(csv_path), "--snr", *[str(s) for s in snrs], *extra]


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


def test_killed_sweep_resumes_without_recomputing(tmp_path):
    csv_path = tmp_path / "sweep.csv"
    snrs = [float(x) for x in range(-5, 25)]  # 30 points: the kill lands well before the end
    proc = subprocess.Popen(_sweep_cmd(csv_path, snrs), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(sweep.read_rows(csv_path)) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker: a hard kill, nothing cleaned up
        proc.wait()
    first = sweep.read_rows(csv_path)
    assert 3 <= len(first) < len(snrs), "the kill should land mid-sweep"

    out = subprocess.run(_sweep_cmd(csv_path, snrs), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert f'"skipped": {len(first)}' in summary and f'"ran": {len(snrs) - len(first)}' in summary
    rows = sweep.read_rows(csv_path)
    keys = [sweep.point_key(r) for r in rows]
    assert len(keys) == len(set(keys)) == len(snrs)
    # the finished points were not recomputed: their rows (timestamps, worker pid) are untouched
    by_key = {sweep.point_key(r): r for r in rows}
    for r in first:
        assert by_key[sweep.point_key(r)]["finished_at"] == r["finished_at"]
        assert by_key[sweep.point_key(r)]["worker"] == r["worker"]
    new_workers = {r["worker"] for r in rows if sweep.point_key(r) not in {sweep.point_key(f) for f in first}}
    assert not new_workers & {r["worker"] for r in first}
    psnr = {float(r["snr_db"]): float(r["psnr"]) for r in rows}
    assert psnr[20.0] > psnr[0.0] + 3 > psnr[-5.0] + 3  # rows hold real measurements

    again = subprocess.run(_sweep_cmd(csv_path, snrs), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert f'"skipped": {len(snrs)}, "ran": 0' in again.stdout


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


def test_flowgraph_and_library_paths_agree_on_awgn():
    pytest.importorskip("gnuradio.digital")
    from diffsem_apps.sweep import run_flowgraph
    base = dict(scheme="linear", steps=None, k=32, channel="awgn", cfo=0.0, snr_db=20.0, n=6, seed=0)
    lib = sweep.run_point(dict(base, path="library"))
    fg = sweep.run_point(dict(base, path="flowgraph"), run_flowgraph)
    assert fg["delivered"] == 1.0
    assert abs(fg["psnr"] - lib["psnr"]) < 0.5, (fg["psnr"], lib["psnr"])


def test_cfo_reaches_the_loopbacks(monkeypatch):
    """A flowgraph point hands its CFO to the harness loopbacks as an argument (no patching)."""
    pytest.importorskip("gnuradio.digital")
    import numpy as np
    from gnuradio.diffsem import harness

    from diffsem_apps.sweep import run_flowgraph
    seen = []

    def fake_scheme_loopback(scheme, images, snr_db, channel="awgn", seed=0, cfo=0.0):
        seen.append(("scheme", cfo))
        return np.asarray(images, np.float32), np.ones(len(images), bool)

    def fake_run_loopback(images, k, mode, snr_db, channel="awgn", seed=0, cfo=0.0):
        seen.append(("digital", cfo))
        return np.asarray(images, np.float32), [{"status": "ok"}] * len(images), {}, {}

    monkeypatch.setattr(harness, "scheme_loopback", fake_scheme_loopback)
    monkeypatch.setattr(harness, "run_loopback", fake_run_loopback)
    base = dict(path="flowgraph", steps=None, k=128, channel="awgn", cfo=0.3, snr_db=20.0, n=4, seed=0)
    assert sweep.run_point(dict(base, scheme="linear"), run_flowgraph)["delivered"] == 1.0
    assert sweep.run_point(dict(base, scheme="digital"), run_flowgraph)["delivered"] == 1.0
    assert seen == [("scheme", 0.3), ("digital", 0.3)]


def test_digital_point_without_room_for_a_frame_is_grey_on_both_paths():
    """k=32 at 0 dB: link adaptation picks BPSK 1/2, which cannot hold a frame; the flowgraph
    runs anyway (TX refuses each image, RX shows grey) and scores like the library path."""
    pytest.importorskip("gnuradio.digital")
    from diffsem_apps.sweep import run_flowgraph
    base = dict(scheme="digital", steps=None, k=32, channel="awgn", cfo=0.0, snr_db=0.0, n=4, seed=0)
    lib = sweep.run_point(dict(base, path="library"))
    fg = sweep.run_point(dict(base, path="flowgraph"), run_flowgraph)
    assert fg["mode"] == lib["mode"] == "bpsk-1/2"
    assert fg["delivered"] == lib["delivered"] == 0.0
    assert fg["psnr"] == pytest.approx(lib["psnr"], abs=1e-6)


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


def test_cli_rejects_cfo_on_library_path(tmp_path):
    out = subprocess.run(_sweep_cmd(tmp_path / "x.csv", [0], extra=["--cfo", "0.1"]), cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--cfo needs --path flowgraph" in out.stderr


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
    path = tmp_path / "old.csv"
    old_fields = [f for f in sweep.FIELDS if f != "temperature"]
    path.write_text(",".join(old_fields) + "\n"
                    "library,linear,,32,awgn,0.0,10.0,4,0,20.5,0.5,0.7,99.0,0.5,,,,1.0,t0,w\n")
    (p_old, p_new) = sweep.make_points(["linear"], [], [32], ["awgn"], [10, 20], n=4, seed=0)
    writer = sweep.RowWriter(path)
    writer.write(dict(p_new, psnr=22.0, finished_at="t1"))
    writer.close()
    assert path.read_text().splitlines()[0] == ",".join(sweep.FIELDS)
    rows = sweep.read_rows(path)
    assert [sweep.point_key(r) for r in rows] == [sweep.point_key(p_old), sweep.point_key(p_new)]
    assert rows[0]["psnr"] == "20.5" and rows[0]["temperature"] == ""
