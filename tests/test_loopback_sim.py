"""The semantic loopback over the analog OFDM PHY and the simulated channel, headless, over tiny
exported models: every frame is accounted for (sent = decoded + CRC-dropped + queue-dropped,
plus frames the receiver never detected, reported as lost), and the in-flowgraph quality equals
offline decoding through diffsem.channel at the same SNR."""
from __future__ import annotations

import time

import numpy as np
import pytest
from gnuradio import gr

from test_inference_worker import TINY_K, export_tiny_models

K = TINY_K


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    export_tiny_models(folder)
    return folder


def _sim(models, **kw):
    from gnuradio.diffsem.harness import LoopbackSim

    defaults = dict(k=K, snr_db=20.0, channel="awgn", decoders=["diffusion:1", "deepjscc"], count=12,
                    models_dir=str(models), provider="cpu", classifier_card="none", keep_images=True)
    defaults.update(kw)
    return LoopbackSim(**defaults)


def _identity(acc):
    return acc["decoded"] + acc["crc_dropped"] + acc["queue_dropped"] + acc["bad_input"] + acc["failed"] + acc["missing"]


def test_every_frame_is_decoded_and_quality_matches_offline(models):
    tb = _sim(models)
    assert tb.run_until_drained(timeout_s=120, quiet_s=5)
    report = tb.report()
    assert report["sent"] == 12 and report["rx"]["frames"] == 12
    for d in report["decoders"]:
        assert d["sent"] == 12 == d["decoded"] and d["lost"] == 0 and d["crc_dropped"] == 0 == d["queue_dropped"]
        assert d["unmatched"] == 0
    assert report["samples"] > 12 * 3 * 80  # the bursts really went through the channel

    # offline: same images, same models, diffsem.channel's AWGN at the same SNR
    import torch

    from diffsem.runtime import inference
    from diffsem.channel import transmit
    from diffsem.data import load
    from diffsem.metrics import psnr

    images, _ = load("test")
    x = images[:12]
    enc = inference.FrameEncoder(inference.load_model(models / f"encoder_k{K}.json", "cpu"))
    symbols = np.stack(enc([inference.EncodeRequest(im[0]) for im in x]))
    s = torch.from_numpy(inference.symbols_to_array(symbols))
    s_hat, noise_var = transmit(s, 20.0, "awgn", generator=torch.Generator().manual_seed(0))
    requests = [inference.DecodeRequest(inference.array_to_symbols(s_hat[i].numpy()), 20.0,
                                        noise_var[i].numpy(), seq=i) for i in range(12)]
    for met, (mode, card) in zip(tb.metrics, (("diffusion", f"student_k{K}_s1"), ("deepjscc", f"deepjscc_k{K}"))):
        dec = inference.FrameDecoder(inference.load_model(models / f"{card}.json", "cpu"), K, mode, seed=0)
        offline = float(np.mean(psnr(np.stack(dec(requests))[:, None], x)))
        in_graph = met.summary()["avg_psnr_db"]
        assert abs(in_graph - offline) < 0.5, (mode, in_graph, offline)
        # and the RX's SNR estimate agrees with the channel's setting
        snr_est = [r["snr_est_db"] for r in met.records]
        assert abs(np.mean(snr_est) - 20.0) < 1.5


def test_queue_drops_through_the_phy_are_accounted_for(models):
    tb = _sim(models, decoders=["deepjscc"], count=16, max_queue=1, max_batch=1)
    worker = tb.decoders[0].worker
    fast = worker.process

    def stalled(items):  # the decoder cannot keep up until the last frame has reached it
        deadline = time.monotonic() + 20
        while worker.counters["submitted"] < 16 - tb.rx.stats()["header_crc_fail"] and time.monotonic() < deadline:
            time.sleep(0.01)
        return fast(items)

    worker.process = stalled
    assert tb.run_until_drained(timeout_s=120, quiet_s=5)
    acc = tb.metrics[0].accounting()
    assert acc["queue_dropped"] > 0
    assert acc["sent"] == 16 == acc["decoded"] + acc["crc_dropped"] + acc["queue_dropped"]
    assert acc["missing"] == 0


class burst_jammer(gr.sync_block):
    """Replaces one part ("header" or "preamble") of every 3rd burst (bursts 1, 4, 7, ...) by noise.

    The TX's bursts follow each other back to back (padding included), so sample n belongs to
    burst n // burst_len: a header jammed this way fails its CRC in the receiver, a jammed
    preamble is never detected at all."""

    def __init__(self, tx, k, part):
        gr.sync_block.__init__(self, name="burst_jammer", in_sig=[np.complex64], out_sig=[np.complex64])
        sym = tx.layout.fft_len + tx.layout.cp_len
        self.burst_len = tx.burst_length(k)
        start = tx.pad_front + (2 * sym if part == "header" else 0)
        length = tx.header_repeats * sym if part == "header" else 2 * sym
        self.span = (start, start + length)
        self.rng = np.random.default_rng(1)
        self.jammed = set()

    def work(self, input_items, output_items):
        x, y = input_items[0], output_items[0]
        n = len(y)
        y[:] = x[:n]
        pos = self.nitems_written(0) + np.arange(n)
        burst, offset = pos // self.burst_len, pos % self.burst_len
        hit = (burst % 3 == 1) & (offset >= self.span[0]) & (offset < self.span[1])
        if hit.any():
            m = int(hit.sum())
            y[hit] = ((self.rng.standard_normal(m) + 1j * self.rng.standard_normal(m)) / np.sqrt(2)).astype(np.complex64)
            self.jammed.update(int(b) for b in np.unique(burst[hit]))
        return n


def _jammed_sim(models, part):
    from gnuradio import diffsem

    geometry = diffsem.ofdm_analog_tx()  # the same (default) settings as the link's TX: burst layout
    jammer = burst_jammer(geometry, K, part)
    tb = _sim(models, decoders=["deepjscc"], count=12, impairment=jammer)
    return tb, jammer


def test_crc_dropped_frames_are_accounted_for(models):
    tb, jammer = _jammed_sim(models, "header")
    assert tb.run_until_drained(timeout_s=120, quiet_s=5)
    acc = tb.metrics[0].accounting()
    assert jammer.jammed == {1, 4, 7, 10}
    assert acc["sent"] == 12 == acc["decoded"] + acc["crc_dropped"] + acc["queue_dropped"]
    assert acc["crc_dropped"] == 4 and acc["decoded"] == 8 and acc["missing"] == 0
    decoded = sorted(r["seq"] for r in tb.metrics[0].records)
    assert decoded == [s for s in range(12) if s % 3 != 1]  # exactly the jammed frames are missing


def test_frames_the_receiver_never_detects_are_reported_lost(models):
    tb, jammer = _jammed_sim(models, "preamble")
    drained = tb.run_until_drained(timeout_s=120, quiet_s=3)
    acc = tb.metrics[0].accounting()
    assert not drained  # the link went quiet with frames unaccounted for...
    assert acc["sent"] == 12 and acc["decoded"] == 8 and acc["crc_dropped"] == 0
    assert acc["missing"] == 4  # ...and says how many were lost
    assert tb.report()["decoders"][0]["lost"] == 4


# --- the GRC flowgraphs: compile with grcc, run the generated code headless / offscreen -----------

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    import os
    import subprocess

    out = tmp_path_factory.mktemp("grcc")
    extra = os.environ.get("GRC_BLOCKS_PATH")
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc") + (f":{extra}" if extra else ""))
    for name in ("loopback_sim", "loopback_sim_gui"):
        proc = subprocess.run(["grcc", "-o", str(out), str(REPO / "flowgraphs" / f"{name}.grc")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and (out / f"{name}.py").exists(), proc.stdout + proc.stderr
    return out


def _import(folder, name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_headless_flowgraph_accounts_for_every_frame(generated, models, tmp_path):
    module = _import(generated, "loopback_sim")
    tb = module.loopback_sim(k=K, models_dir=str(models), n_images=6, rate=50.0, snr_db=20.0, provider="cpu",
                             taps="tcp://127.0.0.1:0", out_dir=str(tmp_path / "img"))
    met, src = tb.diffsem_link_metrics_0, tb.diffsem_image_source_0
    tb.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            acc = met.accounting()
            if src.finished() and acc["sent"] == 6 and acc["missing"] == 0 and met.wait_idle(0):
                break
            time.sleep(0.05)
    finally:
        tb.stop()
        tb.wait()
    acc = met.accounting()
    assert acc["sent"] == 6 == acc["decoded"] + acc["crc_dropped"] + acc["queue_dropped"]
    assert acc["decoded"] >= 5  # at 20 dB at most the run's first frame may fail its header
    assert len(list((tmp_path / "img").glob("rx_0*.png"))) == acc["decoded"]
    tb.diffsem_zmq_taps_0.close()


def test_gui_flowgraph_runs_offscreen_and_shows_the_latest_image(generated, models, tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import Qt

    app = Qt.QApplication.instance() or Qt.QApplication([])
    module = _import(generated, "loopback_sim_gui")
    tb = module.loopback_sim_gui(k=K, models_dir=str(models), n_images=4, rate=20.0, snr_db=20.0, provider="cpu",
                                 taps="tcp://127.0.0.1:0", out_dir=str(tmp_path / "img"))
    tb.start()
    tb.show()
    met = tb.diffsem_link_metrics_0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and met.accounting()["decoded"] < 6:
            app.processEvents()
            time.sleep(0.02)
        for _ in range(20):  # let the widgets refresh once more
            app.processEvents()
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()
    assert met.accounting()["decoded"] >= 6  # the GUI variant loops over its images
    view = tb._diffsem_image_sink_0_win
    assert view.shown is not None and view.views[0].pixmap() is not None and view.views[1].pixmap() is not None
    info = view.info.text()  # the RX SNR estimate and the frame's quality, beside the images
    assert "RX SNR" in info and "PSNR" in info
    snr = float(info.split("RX SNR ")[1].split()[0])
    assert abs(snr - 20.0) < 2.0
    tb.diffsem_zmq_taps_0.close()
    tb.close()


def test_demo_writes_mosaic_metrics_and_plot(models, tmp_path):
    import json

    from diffsem_apps.cli import main

    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--k", str(K), "--models-dir", str(models), "--n", "6", "--show", "4",
               "--snr", "20", "--channel", "awgn", "--steps", "1", "--provider", "cpu", "--taps", "off"])
    assert rc == 0
    from PIL import Image

    with Image.open(out / "mosaic.png") as im:  # original + DeepJSCC + diffusion rows, 4 columns
        assert im.height > 3 * 28 * 3 and im.width > 4 * 28 * 3
    assert (out / "psnr_accuracy_vs_snr.png").stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 6 and {p["decoder"] for p in metrics["points"]} == {"diffusion s1", "deepjscc"}
    for p in metrics["points"]:
        assert p["accounting"]["sent"] == 6 == p["accounting"]["decoded"] + p["accounting"]["crc_dropped"]
        assert abs(p["delta_psnr_db"]) < 0.5  # the PHY adds no hidden loss (tiny linear models, 20 dB)
        assert p["in_flowgraph"]["n"] == 6 and p["snr_est_db_mean"] is not None
    assert metrics["command"].startswith("diffsem demo --out")


def test_bench_link_prints_one_json_line(models, capsys):
    import argparse
    import json

    from diffsem_apps import bench_link

    parser = argparse.ArgumentParser()
    bench_link.add_arguments(parser)
    args = parser.parse_args(["--images", "4", "--k", str(K), "--models-dir", str(models), "--provider", "cpu",
                              "--snr", "20", "--decoder", "diffusion:1"])
    assert bench_link.run(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["drained"] and result["drops"] == 0 and result["throughput_pass"]["decoded"] == 4
    assert result["images_per_s"] > 0 and result["ofdm_msps"] > 0 and result["samples_per_image"] > 0
    assert result["latency_pass"]["latency_ms_p99"] >= result["latency_pass"]["latency_ms_p50"] > 0


def test_demo_without_models_says_which_file_is_missing(tmp_path, capsys):
    from diffsem_apps.cli import main

    rc = main(["demo", "--out", str(tmp_path / "demo"), "--models-dir", str(tmp_path / "none"), "--n", "2",
               "--snr", "10", "--channel", "awgn", "--taps", "off"])
    assert rc == 2
    assert "encoder_k128.json: model card not found" in capsys.readouterr().err
