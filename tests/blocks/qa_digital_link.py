"""digital_link_tx / digital_link_rx: the separation baseline through GNU Radio (gr-fec + the semantic link's OFDM PHY).

Run: pytest -q tests/blocks/qa_digital_link.py
"""
import numpy as np
import pmt
import pytest

from diffsem import data, metrics
from diffsem.baselines import digital as dg
from gnuradio import diffsem
from gnuradio.diffsem import harness


@pytest.fixture(scope="module")
def images():
    x, _ = data.load("test")
    return x[:12]


def test_registry_resolves_the_blocks():
    import importlib
    for name in ("digital_link_tx", "digital_link_rx"):  # a block's module imported directly keeps the class bound
        assert getattr(diffsem, name) is getattr(importlib.import_module(f"gnuradio.diffsem.{name}"), name)


@pytest.mark.parametrize("mode", ["qpsk-1/2", "16qam-3/4", "64qam-5/6"])
def test_gr_fec_encoder_is_bit_exact_with_core(mode):
    budget = dg.bit_budget(128, dg.mode_by_name(mode))
    info = np.random.default_rng(0).integers(0, 2, (8, budget.info_bits), dtype=np.uint8)
    np.testing.assert_array_equal(harness.gr_fec_encode(info, budget), dg.conv_encode(info))


def _noisy_llr(mode, snr_db, frames, seed):
    m = dg.mode_by_name(mode)
    budget = dg.bit_budget(128, m)
    rng = np.random.default_rng(seed)
    info = rng.integers(0, 2, (frames, budget.info_bits), dtype=np.uint8)
    sym = dg.constellation(m.bits_per_symbol)[dg.bits_to_indices(dg.coded_frame_bits(info, budget), m.bits_per_symbol)]
    nv = 10 ** (-snr_db / 10)
    rx = sym + np.sqrt(nv / 2) * (rng.normal(size=sym.shape) + 1j * rng.normal(size=sym.shape))
    return info, dg.demap_llr(rx, np.full(rx.shape, nv), m.bits_per_symbol), budget


@pytest.mark.parametrize("mode", ["qpsk-3/4", "16qam-1/2", "64qam-5/6"])
def test_gr_fec_decoder_matches_numpy_viterbi(mode):
    """2 dB above the mode's threshold both decoders recover every frame; at the threshold (1%
    FER for the numpy Viterbi used in sweeps) gr-fec's cc_decoder decodes the same frames but for
    a few: its 8-bit soft input costs a little at 64-QAM (3.5% vs 0% FER at 19 dB for 5/6)."""
    info, llr, budget = _noisy_llr(mode, dg.MODE_THRESHOLDS_DB[mode] + 2, 40, seed=1)
    np.testing.assert_array_equal(harness.gr_fec_decode(llr, budget), info)
    np.testing.assert_array_equal(dg.decode_frame_llr(llr, budget), info)
    info, llr, budget = _noisy_llr(mode, dg.MODE_THRESHOLDS_DB[mode], 200, seed=2)
    gr_out, np_out = harness.gr_fec_decode(llr, budget), dg.decode_frame_llr(llr, budget)
    fer_gr, fer_np = (gr_out != info).any(1).mean(), (np_out != info).any(1).mean()
    assert fer_gr <= 0.05 and fer_np <= 0.03 and abs(fer_gr - fer_np) <= 0.04, (fer_gr, fer_np)
    assert (gr_out == np_out).all(1).mean() >= 0.95


def test_loopback_high_snr_is_bit_exact(images):
    """30 dB AWGN through channels.channel_model: every packet decodes and every image is
    exactly what the transmitter's codec produced (the receiver rebuilds the same bytes)."""
    mode, k = "16qam-3/4", 128
    out, metas, txc, rxc = harness.run_loopback(images, k, mode, 30.0, seed=3)
    budget = dg.bit_budget(k, dg.mode_by_name(mode))
    assert [m["status"] for m in metas] == ["ok"] * len(images), metas
    assert rxc["crc_fail"] == 0 and rxc["lost"] == 0 and txc["rejected"] == 0
    assert rxc["phy"]["frames"] == len(images) and txc["phy"]["frames"] == len(images)
    for rec, img in zip(out, images):
        np.testing.assert_array_equal(rec[0], dg.fit_codec(img[0], budget.data_bytes).image)
    est = np.array([m["snr_db"] for m in metas])                   # the PHY's per-frame estimate
    assert abs(est.mean() - 30.0) < 1.0 and np.all(np.abs(est - 30.0) < 3.0), est
    assert [m["seq"] for m in metas] == list(range(len(images)))


def test_loopback_below_threshold_counts_drops_and_shows_grey(images):
    mode, k = "64qam-3/4", 128     # needs ~20 dB; at 8 dB no frame survives
    out, metas, txc, rxc = harness.run_loopback(images, k, mode, 8.0, seed=4)
    assert len(out) == len(images)
    statuses = [m["status"] for m in metas]
    assert "ok" not in statuses
    assert all(s in ("crc_fail", "lost", "bad_payload") for s in statuses), statuses
    assert np.all(out == dg.GREY)
    assert rxc["crc_fail"] + rxc["lost"] + rxc["bad_payload"] >= sum(s != "lost" for s in statuses)
    assert rxc["ok"] == 0


def test_malformed_pdus_are_refused_counted_and_do_not_stall(images):
    bad = [
        pmt.intern("not a pdu"),
        pmt.cons(pmt.make_dict(), pmt.init_f32vector(10, [0.5] * 10)),          # wrong length
        pmt.cons(pmt.make_dict(), pmt.init_s32vector(784, [0] * 784)),         # wrong type
        pmt.cons(pmt.make_dict(), pmt.init_f32vector(784, [float("nan")] * 784)),  # NaN
    ]
    out, metas, txc, rxc = harness.run_loopback(images[:3], 128, "16qam-3/4", 30.0, extra_pdus=bad)
    assert txc["rejected"] == len(bad)
    assert [m["status"] for m in metas] == ["ok"] * 3      # the valid images after them still go through


def test_tx_knows_a_mode_with_no_room_for_the_frame():
    """Built, not raised: each image is then refused and counted (end to end in qa_digital_link_loopback.py)."""
    tx = diffsem.digital_link_tx(8, "bpsk-1/2")
    assert not tx.budget.carries_frame


def test_fading_channel_uses_per_symbol_noise_variance(images):
    """Selective fading at 25 dB through the PHY: LLRs weighted by sigma^2/|H|^2 keep most frames."""
    out, metas, txc, rxc = harness.run_loopback(images, 128, "qpsk-3/4", 25.0, channel="selective", seed=5)
    assert sum(m["status"] == "ok" for m in metas) >= len(images) - 2, [m["status"] for m in metas]


def test_linear_baseline_through_the_semantic_phy_matches_the_library_channel(images):
    """The linear Scheme through ofdm_analog_tx -> channel_sim -> ofdm_analog_rx, decoded with the
    receiver's own SNR and per-symbol noise variance, lands within 0.5 dB of diffsem.channel."""
    import torch
    from diffsem.baselines.linear import LinearScheme
    from diffsem.channel import transmit

    scheme = LinearScheme(128)
    fg, received = harness.scheme_loopback(scheme, images, 20.0, seed=6)
    assert received.all()
    s_hat, nv = transmit(torch.from_numpy(scheme.encode(images)), 20.0, "awgn",
                         generator=torch.Generator().manual_seed(6))
    lib = scheme.decode(s_hat.numpy(), np.full(len(images), 20.0), nv.numpy())
    psnr = lambda r: np.mean(metrics.psnr(r, images))  # noqa: E731
    assert abs(psnr(fg) - psnr(lib)) < 0.5, (psnr(fg), psnr(lib))


def test_rx_turns_malformed_symbol_frames_into_counted_grey_images():
    """What reaches the RX's demapper from the PHY but cannot be a frame of this link (wrong
    length, wrong type, NaN) gives a grey image with status bad_frame, counted, and the next
    good frame still decodes."""
    from gnuradio import blocks, gr

    k, mode = 128, "16qam-3/4"
    budget = dg.bit_budget(k, dg.mode_by_name(mode))
    rx = diffsem.digital_link_rx(k, mode)
    source, sink = harness.Emitter(), harness.Collector()
    tb = gr.top_block()
    # endless silence (a finished source would end the flowgraph, message handlers included)
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), blocks.throttle(gr.sizeof_gr_complex, 1e5), rx)
    tb.msg_connect(source, "out", rx.demapper, "in")         # frames injected where the PHY hands them over
    tb.msg_connect(rx, "out", sink, "in")
    tb.start()
    try:
        def frame(seq, values):
            meta = pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(seq))
            return pmt.cons(meta, values)
        source.post(frame(0, pmt.init_c32vector(5, [0j] * 5)))                       # wrong length
        source.post(frame(1, pmt.init_f32vector(k, [0.0] * k)))                      # wrong type
        source.post(frame(2, pmt.init_c32vector(k, [complex("nan")] * k)))          # NaN
        fit = dg.fit_codec(np.full((28, 28), 0.2, np.float32), budget.data_bytes)
        bits = dg.coded_frame_bits(dg.bytes_to_bits(dg.build_payload(fit, budget)), budget, seq=3)  # scrambled as frame 3
        good = dg.constellation(4)[dg.bits_to_indices(bits, 4)].astype(np.complex64)
        source.post(frame(3, pmt.init_c32vector(k, good.tolist())))
        assert sink.wait_for(4, 10)
    finally:
        tb.stop()
        tb.wait()
    metas = [pmt.to_python(pmt.car(m)) for m in sink.messages]
    assert [m["status"] for m in metas] == ["bad_frame"] * 3 + ["ok"]
    assert all(np.all(np.asarray(pmt.f32vector_elements(pmt.cdr(m))) == dg.GREY) for m in sink.messages[:3])
    assert rx.stats()["bad_frame"] == 3 and rx.stats()["ok"] == 1
