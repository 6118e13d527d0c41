"""Block tests of the analog OFDM TX/RX (gnuradio.diffsem.ofdm_analog_tx / ofdm_analog_rx)."""
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, digital, gr
from gnuradio.digital import ofdm_txrx

from diffsem import phy
from gnuradio import diffsem
from gnuradio.diffsem.harness import PhyLoopback


def _pdu(vec, meta=None):
    return pmt.cons(meta if meta is not None else pmt.make_dict(), vec)


def _c32(x):
    x = np.asarray(x, dtype=np.complex64)
    return pmt.init_c32vector(x.size, x.tolist())


def test_header_matches_stock_generator():
    """Our header bits are what gr-digital's packet_headergenerator_bb makes (so the stock
    packet_headerparser_b on RX accepts them)."""
    data, _, _ = phy.carriers_by_role()
    fmt = digital.packet_header_ofdm([list(data)], 1, "packet_len", "frame_len", "packet_num", 1, 8)
    lengths = [1, 77, 128, 4095]
    stream, tags = [], []
    for length in lengths:
        tag = gr.tag_t()
        tag.offset, tag.key, tag.value = len(stream), pmt.intern("packet_len"), pmt.from_long(length)
        tags.append(tag)
        stream += [0] * length
    tb = gr.top_block()
    sink = blocks.vector_sink_b()
    tb.connect(blocks.vector_source_b(stream, False, 1, tags),
               digital.packet_headergenerator_bb(fmt.base(), "packet_len"), sink)
    tb.run()
    got = np.array(sink.data()).reshape(len(lengths), -1)
    for seq, length in enumerate(lengths):
        assert np.array_equal(got[seq], phy.header_bits(length, seq, len(data)))


def test_sync_words_match_gr_digital():
    data, pilots, _ = phy.carriers_by_role()
    w1, w2 = phy.sync_words()
    ref1 = ofdm_txrx._make_sync_word1(64, (list(data),), (list(pilots),))
    ref2 = ofdm_txrx._make_sync_word2(64, (list(data),), (list(pilots),))
    assert np.allclose(w1, ref1) and np.allclose(w2, ref2)


def _run_tx(messages, seconds=0.5):
    tb = gr.top_block()
    tx = diffsem.ofdm_analog_tx()
    sink = blocks.vector_sink_c()
    tb.connect(tx, sink)
    for msg in messages:
        tx.framer.to_basic_block()._post(pmt.intern("in"), msg)
    tb.start()
    time.sleep(seconds)
    tb.stop()
    tb.wait()
    return tx, np.array(sink.data()), sink.tags()


def test_tx_burst_length_power_and_metadata():
    rng = np.random.default_rng(0)
    sym = (rng.standard_normal(480) + 1j * rng.standard_normal(480)) / np.sqrt(2)  # 10 full OFDM symbols
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(42))
    tx, out, tags = _run_tx([_pdu(_c32(sym), meta), _pdu(_c32(sym))])
    n = tx.burst_length(480)
    assert out.size == 2 * n                                   # both bursts out whole, padding included
    burst = out[:n]
    assert np.all(burst[:tx.pad_front] == 0) and np.all(burst[-tx.pad_back:] == 0)
    active = burst[tx.pad_front:n - tx.pad_back]
    assert np.mean(np.abs(active) ** 2) == pytest.approx(1.0, rel=0.1)   # unit power per sample
    assert {pmt.symbol_to_string(t.key) for t in tags} >= {"image_id", "seq"}
    assert tx.stats()["frames"] == 2


def test_tx_stream_is_the_numpy_bursts_with_their_tags():
    """Bursts back to back as phy.BurstBuilder builds them (padding included), each tagged on its
    first sample with its length (packet_len) and its metadata."""
    rng = np.random.default_rng(1)
    lengths = (128, 1, 500, 48)
    payloads = [((rng.standard_normal(k) + 1j * rng.standard_normal(k)) / np.sqrt(2)).astype(np.complex64) for k in lengths]
    metas = [pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(i)) for i in range(len(lengths))]
    tx, out, tags = _run_tx([_pdu(_c32(p), m) for p, m in zip(payloads, metas)])
    expected, sizes = phy.BurstBuilder(tx.layout, tx.header_repeats, tx.pad_front, tx.pad_back).build(payloads, range(len(lengths)))
    assert np.array_equal(out, expected)
    assert tx.emitted() == (len(lengths), out.size)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).tolist()
    by_key = {}
    for t in tags:
        by_key.setdefault(pmt.symbol_to_string(t.key), []).append((t.offset, pmt.to_python(t.value)))
    assert by_key["packet_len"] == list(zip(starts, sizes.tolist()))
    assert by_key["seq"] == list(zip(starts, range(len(lengths))))
    assert by_key["image_id"] == list(zip(starts, range(len(lengths))))


def test_tx_refuses_bad_pdus_and_keeps_running():
    good = _c32(np.ones(100))
    bad = [
        _pdu(_c32(np.zeros(0))),                                              # empty
        _pdu(_c32(np.ones(4096))),                                            # too long
        _pdu(pmt.init_f32vector(4, [1.0, 2.0, 3.0, 4.0])),                    # wrong type
        _pdu(pmt.init_u8vector(3, [1, 2, 3])),                                # wrong type
        _pdu(pmt.intern("not a vector")),                                     # wrong type
        pmt.intern("hello"),                                                  # not a PDU
        _pdu(_c32([1, np.nan, 2])),                                           # NaN
        _pdu(_c32([1, np.inf])),                                              # Inf
    ]
    tx, out, _ = _run_tx(bad + [_pdu(good)])
    stats = tx.stats()
    assert stats == {"frames": 1, "rejected_not_pdu": 1, "rejected_wrong_type": 3,
                     "rejected_empty": 1, "rejected_too_long": 1, "rejected_nonfinite": 2}
    assert out.size == tx.burst_length(100)                    # the good PDU after them went out


def test_loopback_awgn_metadata_and_accuracy():
    lb = PhyLoopback(snr_db=20.0, n_frames=40, seed=3)
    dbg = blocks.message_debug()
    lb.msg_connect(lb.rx, "out", dbg, "store")
    stats_dbg = blocks.message_debug()
    lb.msg_connect(lb.rx, "stats", stats_dbg, "store")
    result = lb.run_until_done(timeout=60)
    assert result["lost"] == 0 and result["missing"] == 0      # the first frame too
    assert result["mse_db"] == pytest.approx(-20.0, abs=0.5)
    assert result["snr_est_db"] == pytest.approx(20.0, abs=1.0)
    assert result["noise_var_db"] == pytest.approx(result["mse_db"], abs=0.5)
    msg = dbg.get_message(0)
    meta = pmt.car(msg)
    assert pmt.to_long(pmt.dict_ref(meta, pmt.intern("seq"), pmt.PMT_NIL)) == 0
    nv = pmt.dict_ref(meta, pmt.intern("noise_var"), pmt.PMT_NIL)
    assert pmt.is_f32vector(nv) and pmt.length(nv) == 128 == pmt.length(pmt.cdr(msg))
    for key in ("snr_db", "cfo", "time"):
        assert pmt.is_real(pmt.dict_ref(meta, pmt.intern(key), pmt.PMT_NIL))
    assert pmt.to_long(pmt.dict_ref(meta, pmt.intern("n_symbols"), pmt.PMT_NIL)) == 128
    offsets = [pmt.to_uint64(pmt.dict_ref(pmt.car(dbg.get_message(i)), pmt.intern("sample_offset"), pmt.PMT_NIL))
               for i in range(dbg.num_messages())]
    burst = lb.tx.burst_length(128)
    assert np.all(np.abs(np.diff(offsets) - burst) <= 3)      # one burst apart (+- sync jitter)
    assert pmt.is_dict(stats_dbg.get_message(stats_dbg.num_messages() - 1))
    assert lb.rx.stats()["frames"] == 40


def test_loopback_cfo_and_timing_offset():
    for cfo in (0.3, -0.3):
        lb = PhyLoopback(snr_db=10.0, cfo=cfo, timing_offset=0.5, n_frames=30, seed=1)
        dbg = blocks.message_debug()
        lb.msg_connect(lb.rx, "out", dbg, "store")
        result = lb.run_until_done(timeout=60)
        assert result["lost"] == 0
        assert result["mse_db"] == pytest.approx(-10.0, abs=0.6)
        est_cfo = [pmt.to_double(pmt.dict_ref(pmt.car(dbg.get_message(i)), pmt.intern("cfo"), pmt.PMT_NIL))
                   for i in range(dbg.num_messages())]
        assert np.median(est_cfo) == pytest.approx(cfo, abs=0.03)


def test_rx_survives_noise_and_garbage_input():
    """Noise only, then a burst of huge/NaN samples: no frame, no crash, still receives after."""
    tb = PhyLoopback(snr_db=15.0, n_frames=5, seed=2)
    # splice garbage before the TX's bursts: a source of NaNs added into the channel input
    rng = np.random.default_rng(0)
    garbage = (rng.standard_normal(5000) * 1e6).astype(np.complex64)
    garbage[::7] = np.nan
    gtb = gr.top_block()
    rx = diffsem.ofdm_analog_rx()
    gtb.connect(blocks.vector_source_c(garbage.tolist() + [0j] * 2000), rx)
    gtb.run()
    assert rx.stats()["frames"] == 0
    result = tb.run_until_done(timeout=60)
    assert result["frames"] == 5


def test_checker_refuses_malformed():
    from gnuradio.diffsem.symbol_checker import symbol_checker
    chk = symbol_checker(n_symbols=4, seed=0, report_every=0)
    good_meta = pmt.dict_add(pmt.dict_add(pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(0)),
                                          pmt.intern("snr_db"), pmt.from_double(10.0)),
                             pmt.intern("noise_var"), pmt.init_f32vector(4, [0.1] * 4))
    chk.handle(pmt.intern("junk"))
    chk.handle(pmt.cons(pmt.make_dict(), _c32(np.ones(4))))
    chk.handle(pmt.cons(good_meta, _c32(np.ones(3))))
    chk.handle(pmt.cons(good_meta, _c32(phy.reference_symbols(0, 0, 4))))
    stats = chk.stats()
    assert stats["malformed"] == 3 and stats["frames"] == 1 and stats["mse_db"] < -100


def test_crc_failures_are_counted_and_published():
    """Noise bursts that trigger the sync give headers failing the CRC: counted in stats() and
    published on "stats", never passed on as frames."""
    rng = np.random.default_rng(5)
    noise = np.zeros(60000, np.complex64)
    for start in range(0, 60000, 2000):  # bursts of strong noise between quiet gaps
        noise[start:start + 600] = (rng.standard_normal(600) + 1j * rng.standard_normal(600)) * 3
    tb = gr.top_block()
    rx = diffsem.ofdm_analog_rx(sync_threshold=0.05)
    stats = blocks.message_debug()
    out = blocks.message_debug()
    tb.connect(blocks.vector_source_c(noise.tolist()), rx)
    tb.msg_connect(rx, "stats", stats, "store")
    tb.msg_connect(rx, "out", out, "store")
    tb.start()
    time.sleep(1.5)
    tb.stop()
    tb.wait()
    counts = rx.stats()
    refused = counts["false_triggers"] + counts["header_crc_fail"]
    assert refused > 0 and counts["frames"] == 0 and out.num_messages() == 0
    assert counts["false_triggers"] > counts["header_crc_fail"]  # noise has no BPSK header to fail a CRC
    last = pmt.to_python(stats.get_message(stats.num_messages() - 1))
    assert last == counts
