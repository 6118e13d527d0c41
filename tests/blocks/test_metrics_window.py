"""link_metrics keeps a bounded window with running totals, and its accounting stays exact when
the backlog exceeds the reference window: frames whose reference is gone are unmatched, never
decoded; notices naming no frame sent and garbage on the drops port are not drops of sent frames.
The image sink's folder can be capped."""
import time

import numpy as np
import pmt
from gnuradio import gr

from gnuradio import diffsem
from gnuradio.diffsem.harness import dict_to_pmt, image_pdu


def _img(seq):
    now = time.time()
    return image_pdu({"seq": seq, "label": 1, "t_src": now, "t_dec_out": now}, np.full((28, 28), 0.25, np.float32))


def _wait(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.02)
    return cond()


def _flowgraph(block):
    tb = gr.top_block()
    feeder = diffsem.harness.Emitter()
    for port in ("ref", "in", "drops"):
        tb.msg_connect(feeder, "out", block, port)  # puts the message-only block in the flowgraph
    tb.feeder = feeder  # msg_connect keeps no Python reference to it
    return tb


def _feed(met, n, extra=(), done=None):
    """n references then n decoded frames (seq 0..n-1), then `extra` drop notices; waits for `done`."""
    tb = _flowgraph(met)
    tb.start()
    post = met.to_basic_block()._post
    for seq in range(n):
        post(pmt.intern("ref"), _img(seq))
    assert _wait(lambda: met.accounting()["sent"] == n)
    for seq in range(n):
        post(pmt.intern("in"), _img(seq))
    for msg in extra:
        post(pmt.intern("drops"), msg)
    assert _wait(done)
    tb.stop()
    tb.wait()
    return met.accounting()


def test_backlog_beyond_the_reference_window_is_unmatched_not_decoded():
    met = diffsem.link_metrics(classifier_card="none", max_records=8)
    met.references.limit = 4
    extra = [dict_to_pmt({"seq": 77, "reason": "queue_full", "block": "diffusion_decoder"}),  # no frame sent
             pmt.cons(pmt.intern("junk"), pmt.PMT_NIL)]                                     # garbage
    acc = _feed(met, 10, extra, lambda: met.accounting()["bad_pdu"] == 1 and met.wait_idle(0) and len(met.records) >= 4)
    assert acc["sent"] == 10 and acc["decoded"] == 4 and acc["unmatched"] == 6
    assert acc["failed"] == 0 and acc["queue_dropped"] == 0 and acc["drops_unmatched"] == 1
    assert acc["missing"] == 0
    assert len(met.records) == 8  # the window caps the per-frame records
    assert met.summary()["frames_scored"] == 4


def test_records_window_is_bounded_and_totals_run_over_the_whole_run():
    met = diffsem.link_metrics(classifier_card="none", max_records=5)
    acc = _feed(met, 40, (), lambda: met.summary()["frames_scored"] == 40)
    assert len(met.records) == 5 and acc["decoded"] == 40
    assert "e2e_latency_ms_p50" in met.summary()


def test_the_image_folder_can_be_capped(tmp_path):
    sink = diffsem.image_sink(folder=str(tmp_path), mosaic_every=0, max_pngs=3)
    tb = gr.top_block()
    feeder = diffsem.harness.Emitter()
    tb.msg_connect(feeder, "out", sink, "in")
    tb.start()
    for seq in range(10):
        sink.to_basic_block()._post(pmt.intern("in"), _img(seq))
    assert _wait(lambda: sink.stats()["received"] == 10)
    tb.stop()
    tb.wait()
    assert sorted(p.name for p in tmp_path.glob("rx_0*.png")) == ["rx_000007.png", "rx_000008.png", "rx_000009.png"]
    assert sink.stats()["pngs_removed"] == 7


def test_symbol_checker_keeps_a_window_and_totals_over_the_whole_run():
    from diffsem import phy
    chk = diffsem.symbol_checker(n_symbols=4, seed=0, report_every=0, max_records=3)
    chk.keep_symbols = True
    for seq in range(10):
        meta = dict_to_pmt({"seq": seq, "snr_db": 10.0})
        meta = pmt.dict_add(meta, pmt.intern("noise_var"), pmt.init_f32vector(4, [0.1] * 4))
        sent = phy.reference_symbols(0, seq, 4) + (0.1 if seq % 2 else 0.0)  # odd frames: error 0.01
        chk.handle(pmt.cons(meta, pmt.init_c32vector(4, sent.tolist())))
    assert [r[0] for r in chk.records] == [7, 8, 9] and len(chk.symbol_records) == 3
    stats = chk.stats()
    assert stats["frames"] == 10 and stats["missing"] == 0
    assert abs(stats["mse_db"] - 10 * np.log10(0.005)) < 0.01  # the mean over all 10 frames


def test_wrong_typed_metadata_loses_a_field_not_the_record_and_a_nameless_notice_stays_out():
    """Metadata from the air or a foreign block: a string where a count belongs, a list for a
    time (a wrong "label" or "seq" is refused at the port, counted). The frame was decoded; its record must still come out (without the bad field). A drop
    notice naming no frame (garbage into the decoder) is no sent frame's drop."""
    met = diffsem.link_metrics(classifier_card="none")
    tb = _flowgraph(met)
    tb.start()
    post = met.to_basic_block()._post
    img = np.full((28, 28), 0.25, np.float32)
    post(pmt.intern("ref"), image_pdu({"seq": 0, "t_src": [1, 2]}, img))
    post(pmt.intern("ref"), image_pdu({"seq": 1, "label": 3, "t_src": time.time()}, img))
    assert _wait(lambda: met.accounting()["sent"] == 2)
    post(pmt.intern("in"), image_pdu({"seq": 0, "erased": "x", "interfered_carriers": [1, 2]}, img))
    post(pmt.intern("in"), image_pdu({"seq": 1, "erased": 4, "t_dec_out": "abc", "reliability": "high"}, img))
    post(pmt.intern("drops"), dict_to_pmt({"seq": -1, "reason": "bad_input", "block": "diffusion_decoder"}))
    assert _wait(lambda: met.summary()["frames_scored"] == 2 and met.accounting()["drops_unmatched"] == 1)
    tb.stop()
    tb.wait()
    acc = met.accounting()
    assert acc["decoded"] == 2 and acc["bad_input"] == 0 and acc["missing"] == 0
    first, second = sorted(met.records, key=lambda r: r["seq"])
    assert first["label"] == -1 and "erased" not in first and "interfered_carriers" not in first
    assert second["label"] == 3 and second["erased"] == 4 and "e2e_latency_ms" not in second
    assert "reliability" not in second and met.summary()["unscored"] == 0
