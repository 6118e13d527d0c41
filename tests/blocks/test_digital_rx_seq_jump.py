"""digital_link_rx follows the header's sequence number: a short gap gives one grey "lost" image
per missing frame, a jump (TX restart, wrap after a long outage) is counted without making an
image per skipped number, so memory stays bounded whatever the header says."""
import time

import pmt
from gnuradio import blocks, gr

from gnuradio import diffsem
from gnuradio.diffsem.harness import Collector, dict_to_pmt


def _idle(seq):
    return pmt.cons(dict_to_pmt({"seq": seq}), pmt.init_u8vector(0, []))


def test_a_sequence_jump_is_counted_not_drawn():
    tb = gr.top_block()
    rx = diffsem.digital_link_rx(k=128, mode="qpsk-1/2")
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), blocks.throttle(gr.sizeof_gr_complex, 1000), rx)
    out = Collector()
    tb.msg_connect(rx, "out", out, "in")
    tb.start()
    for seq in (10, 13, 3000, 3001, 5):  # gap of 2, jump of 2986, next, wrap-around jump of 1099
        rx.imager.to_basic_block()._post(pmt.intern("bad"), _idle(seq))
    expected = 5 + 2
    assert out.wait_for(expected, 10)
    time.sleep(0.2)
    tb.stop()
    tb.wait()
    s = rx.stats()
    assert len(out.messages) == expected
    assert s["lost"] == 2 and s["seq_jumps"] == 2 and s["gap_not_shown"] == 2986 + 1099
