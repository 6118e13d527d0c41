"""The semantic loopback over the analog OFDM PHY and the simulated channel, headless, over tiny
exported models: every frame is accounted for (sent = decoded + CRC-dropped + queue-dropped,
plus frames the receiver never detected, reported as lost), and the in-flowgraph quality equals
offline decoding through diffsem.channel at the same SNR."""
from __future__ import annotations

import time

import numpy as np
import pytest

from test_inference_worker import TINY_K, export_tiny_models

K = TINY_K


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    export_tiny_models(folder)
    return folder


def _sim(models, **kw):
    from gnuradio.diffsem.bench_link import LoopbackSim

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

    from diffsem import inference
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


def test_a_poor_channel_loses_frames_and_says_where(models):
    tb = _sim(models, snr_db=5.0, decoders=["deepjscc"], count=12, sync_threshold=0.6)
    drained = tb.run_until_drained(timeout_s=120, quiet_s=3)
    acc = tb.metrics[0].accounting()
    assert acc["sent"] == 12
    # no frame counted twice (missing = sent - decoded - dropped is what the receiver never delivered)
    assert acc["missing"] >= 0 and _identity(acc) == 12
    assert acc["decoded"] < 12  # at 5 dB this PHY does not deliver every frame...
    assert drained == (acc["missing"] == 0)  # ...and what it never detected is reported missing
    rx = tb.rx.stats()
    assert acc["crc_dropped"] == rx["header_crc_fail"] + rx["malformed"] + rx["nonfinite"]
