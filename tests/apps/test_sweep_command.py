"""`diffsem sweep`: a killed sweep resumes, the flowgraph path (GNU Radio PHY) agrees with the
library path and takes the carrier offset, the library path refuses one.

Every point here uses the linear baseline (no training, fast) on a few test images.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from support import REPO

from diffsem.experiments import sweep


def _sweep_cmd(csv_path, snrs, extra=()):
    return [sys.executable, "-m", "diffsem_apps.cli", "sweep", "--scheme", "linear", "--k", "32", "--n", "6",
            "--jobs", "1", "--quiet", "--csv", str(csv_path), "--snr", *[str(s) for s in snrs], *extra]


def test_killed_sweep_resumes_without_recomputing(tmp_path):
    csv_path = tmp_path / "sweep.csv"
    snrs = [float(x) for x in range(-5, 25)]  # 30 points: the kill lands well before the end
    proc = subprocess.Popen(_sweep_cmd(csv_path, snrs), cwd=REPO, start_new_session=True,
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

    out = subprocess.run(_sweep_cmd(csv_path, snrs), cwd=REPO, capture_output=True, text=True, timeout=300)
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

    again = subprocess.run(_sweep_cmd(csv_path, snrs), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert f'"skipped": {len(snrs)}, "ran": 0' in again.stdout


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


def test_cli_rejects_cfo_on_library_path(tmp_path):
    out = subprocess.run(_sweep_cmd(tmp_path / "x.csv", [0], extra=["--cfo", "0.1"]), cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--cfo needs --path flowgraph" in out.stderr
