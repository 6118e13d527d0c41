"""Every payload length the OFDM header admits goes on air whole, and no metadata stops the TX."""
import time

import numpy as np
import pmt
from gnuradio import blocks, gr

from gnuradio import diffsem

LENGTHS = (1, 48, 128, 1776, 1777, 4095)


def _pdu(n, meta=None, seq=0):
    x = (np.random.default_rng(n).standard_normal(n) + 0j).astype(np.complex64)
    m = pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(seq)) if meta is None else meta
    return pmt.cons(m, pmt.init_c32vector(n, x.tolist()))


def _run(messages, expect_bursts, timeout=20.0):
    tb = gr.top_block()
    tx = diffsem.ofdm_analog_tx()
    sink = blocks.vector_sink_c()
    tb.connect(tx, sink)
    tb.start()
    for msg in messages:
        tx.framer.to_basic_block()._post(pmt.intern("in"), msg)
    end = time.monotonic() + timeout
    while tx.emitted()[0] < expect_bursts and time.monotonic() < end:
        time.sleep(0.02)
    samples = tx.emitted()[1]
    while len(sink.data()) < samples and time.monotonic() < end:
        time.sleep(0.02)
    tb.stop()
    tb.wait()
    return tx, len(sink.data())


def test_every_admitted_length_goes_on_air_whole():
    msgs = [_pdu(n, seq=i) for i, n in enumerate(LENGTHS)]
    tx, got = _run(msgs, len(LENGTHS))
    assert tx.stats()["frames"] == len(LENGTHS)
    assert tx.emitted()[0] == len(LENGTHS)
    assert got == sum(tx.burst_length(n) for n in LENGTHS)


def test_too_long_is_refused_and_counted():
    tx, _ = _run([_pdu(4096), _pdu(16)], 1)
    s = tx.stats()
    assert s["rejected_too_long"] == 1 and s["frames"] == 1 and tx.emitted()[0] == 1


def test_hostile_metadata_never_stalls_the_tx():
    bad = []
    m = pmt.dict_add(pmt.make_dict(), pmt.from_long(3), pmt.from_long(1))        # int key
    bad.append(m)
    bad.append(pmt.dict_add(pmt.make_dict(), pmt.from_double(float("nan")), pmt.PMT_T))  # NaN key
    bad.append(pmt.dict_add(pmt.make_dict(), pmt.init_f32vector(2, [1, 2]), pmt.PMT_T))  # vector key
    bad.append(pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_uint64(2 ** 63 + 5)))
    bad.append(pmt.dict_add(pmt.make_dict(), pmt.intern("x"), pmt.init_s8vector(2, [1, -1])))
    msgs = [_pdu(48, meta=b) for b in bad] + [_pdu(48, seq=7)]
    tx, got = _run(msgs, 2)
    s = tx.stats()
    # the s8 vector value is fine metadata (it travels as a tag); the others are refused
    assert tx.emitted()[0] == 2, s
    assert s["frames"] == 2
    assert s.get("rejected_meta_key", 0) == 3 and s.get("rejected_meta_int_range", 0) == 1, s
    assert got == 2 * tx.burst_length(48)
