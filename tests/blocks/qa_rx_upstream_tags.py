"""The OFDM receiver frames bursts with its own stream tags: tags arriving from upstream (the TX's
packet_len passed on by a DC blocker, as in the HackRF RX flowgraph fed by a local TX) must not
break it. Before the receiver's input tag gate, every frame was dropped as malformed."""
import time

from gnuradio import blocks, gr
from gnuradio import filter as grfilter

from gnuradio import diffsem


def test_receiver_ignores_upstream_stream_tags():
    tb = gr.top_block()
    src = diffsem.symbol_source(128, 8, 0.0, 0)
    tx, rx = diffsem.ofdm_analog_tx(), diffsem.ofdm_analog_rx()
    dc = grfilter.dc_blocker_cc(128, True)  # propagates the TX's packet_len tags to the RX
    probe = blocks.tag_debug(gr.sizeof_gr_complex, "", "packet_len")
    probe.set_display(False)
    sink = blocks.message_debug()
    tb.msg_connect(src, "out", tx, "in")
    tb.connect(tx, dc, rx)
    tb.connect(dc, probe)
    tb.msg_connect(rx, "out", sink, "store")
    tb.start()
    deadline, last, seen = time.time() + 30, time.time(), 0
    while sink.num_messages() < 8 and time.time() < deadline and time.time() - last < 3:
        time.sleep(0.2)
        if sink.num_messages() != seen:
            seen, last = sink.num_messages(), time.time()
    tb.stop()
    tb.wait()
    assert probe.num_tags() >= 8  # the tags really reached the receiver's input
    # the DC blocker may cost the first frame while it settles
    assert sink.num_messages() >= 7, rx.stats()
    assert rx.stats()["malformed"] == 0
