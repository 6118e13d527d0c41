"""The semantic loopback over the analog OFDM PHY and the simulated channel, headless, over tiny
exported models: every frame is accounted for (sent = decoded + CRC-dropped + queue-dropped,
plus frames the receiver never detected, reported as lost), and the in-flowgraph quality equals
offline decoding through diffsem.channel at the same SNR."""
from __future__ import annotations

import time

import numpy as np
import pytest
from gnuradio import gr

from support import TINY_K, grcc, import_script, run_until_accounted

K = TINY_K


def _sim(tiny_models, **kw):
    from gnuradio.diffsem.harness import LoopbackSim

    defaults = dict(k=K, snr_db=20.0, channel="awgn", decoders=["diffusion:1", "deepjscc"], count=12,
                    models_dir=str(tiny_models), provider="cpu", classifier_card="none", keep_images=True)
    defaults.update(kw)
    return LoopbackSim(**defaults)


def _identity(acc):
    return acc["decoded"] + acc["crc_dropped"] + acc["queue_dropped"] + acc["bad_input"] + acc["failed"] + acc["missing"]


def test_every_frame_is_decoded_and_quality_matches_offline(tiny_models):
    tb = _sim(tiny_models)
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
    enc = inference.FrameEncoder(inference.load_model(tiny_models / f"encoder_k{K}.json", "cpu"), 20.0)
    symbols = np.stack(enc([inference.EncodeRequest(im[0]) for im in x]))
    s = torch.from_numpy(inference.symbols_to_array(symbols))
    s_hat, noise_var = transmit(s, 20.0, "awgn", generator=torch.Generator().manual_seed(0))
    requests = [inference.DecodeRequest(inference.array_to_symbols(s_hat[i].numpy()), 20.0,
                                        noise_var[i].numpy(), seq=i) for i in range(12)]
    for met, (mode, card) in zip(tb.metrics, (("diffusion", f"student_k{K}_s1"), ("deepjscc", f"deepjscc_k{K}"))):
        dec = inference.FrameDecoder(inference.load_model(tiny_models / f"{card}.json", "cpu"), K, mode, seed=0,
                                     encoder_snr_db=20.0)  # LoopbackSim: the encoder at the channel's SNR
        offline = float(np.mean(psnr(np.stack(dec(requests))[:, None], x)))
        in_graph = met.summary()["avg_psnr_db"]
        assert abs(in_graph - offline) < 0.5, (mode, in_graph, offline)
        # and the RX's SNR estimate agrees with the channel's setting
        snr_est = [r["snr_est_db"] for r in met.records]
        assert abs(np.mean(snr_est) - 20.0) < 1.5


def test_queue_drops_through_the_phy_are_accounted_for(tiny_models):
    tb = _sim(tiny_models, decoders=["deepjscc"], count=16, max_queue=1, max_batch=1)
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


def _jammed_sim(tiny_models, part):
    from gnuradio import diffsem

    geometry = diffsem.ofdm_analog_tx()  # the same (default) settings as the link's TX: burst layout
    jammer = burst_jammer(geometry, K, part)
    tb = _sim(tiny_models, decoders=["deepjscc"], count=12, impairment=jammer)
    return tb, jammer


def test_crc_dropped_frames_are_accounted_for(tiny_models):
    tb, jammer = _jammed_sim(tiny_models, "header")
    assert tb.run_until_drained(timeout_s=120, quiet_s=5)
    acc = tb.metrics[0].accounting()
    assert jammer.jammed == {1, 4, 7, 10}
    assert acc["sent"] == 12 == acc["decoded"] + acc["crc_dropped"] + acc["queue_dropped"]
    assert acc["crc_dropped"] == 4 and acc["decoded"] == 8 and acc["missing"] == 0
    decoded = sorted(r["seq"] for r in tb.metrics[0].records if not r.get("filled"))
    assert decoded == [s for s in range(12) if s % 3 != 1]  # exactly the jammed frames are missing
    # ...and each was shown as the decoder's fill once the next frame arrived, still counted lost
    assert sorted(r["seq"] for r in tb.metrics[0].records if r.get("filled")) == [1, 4, 7, 10]
    assert acc["filled"] == 4


def test_frames_the_receiver_never_detects_are_reported_lost(tiny_models):
    tb, jammer = _jammed_sim(tiny_models, "preamble")
    drained = tb.run_until_drained(timeout_s=120, quiet_s=3)
    acc = tb.metrics[0].accounting()
    assert not drained  # the link went quiet with frames unaccounted for...
    assert acc["sent"] == 12 and acc["decoded"] == 8 and acc["crc_dropped"] == 0
    assert acc["missing"] == 4  # ...and says how many were lost
    assert tb.report()["decoders"][0]["lost"] == 4


# --- the GRC flowgraphs: compile with grcc, run the generated code headless / offscreen -----------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("grcc")
    for name in ("loopback_sim", "loopback_sim_gui"):
        grcc(name, out)
    return out


def test_generated_headless_flowgraph_accounts_for_every_frame(generated, tiny_models, tmp_path):
    module = import_script(generated / "loopback_sim.py")
    tb = module.loopback_sim(k=K, models_dir=str(tiny_models), n_images=6, rate=50.0, snr_db=20.0, provider="cpu",
                             taps="tcp://127.0.0.1:0", out_dir=str(tmp_path / "img"))
    acc = run_until_accounted(tb, 6)
    assert acc["sent"] == 6 == acc["decoded"] + acc["crc_dropped"] + acc["queue_dropped"]
    assert acc["decoded"] >= 5  # at 20 dB at most the run's first frame may fail its header
    assert len(list((tmp_path / "img").glob("rx_0*.png"))) == acc["decoded"] + acc["filled"]
    tb.diffsem_zmq_taps_0.close()


def test_gui_flowgraph_runs_offscreen_and_shows_the_latest_image(generated, tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import Qt

    app = Qt.QApplication.instance() or Qt.QApplication([])
    module = import_script(generated / "loopback_sim_gui.py")
    tb = module.loopback_sim_gui(k=K, models_dir=str(tiny_models), n_images=4, rate=20.0, snr_db=20.0, provider="cpu",
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
