"""The radio apps' ZMQ sample source: a message that is not whole complex64 samples is dropped and
counted, and the samples after it still flow (gr-zeromq's sub_source stopped for good on one)."""
import time

import numpy as np
import zmq
from gnuradio import blocks, gr

from diffsem_apps.endpoints import zmq_sample_source
from support import free_ports


def test_a_malformed_message_is_counted_and_the_stream_goes_on():
    address = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind(address)
    src = zmq_sample_source(address)
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(src, blocks.head(gr.sizeof_gr_complex, 3000), sink)
    tb.start()
    try:
        samples = (np.arange(1000) * (1 + 1j)).astype(np.complex64)
        deadline = time.monotonic() + 20
        while len(sink.data()) < 3000 and time.monotonic() < deadline:
            pub.send(b"abc")                       # 3 bytes: not a sample
            pub.send(samples.tobytes())
            time.sleep(0.05)
    finally:  # the source runs until stopped (it waits for messages), as gr-zeromq's does
        tb.stop()
        tb.wait()
        pub.close(0)
    got = np.array(sink.data())
    assert got.size == 3000 and np.array_equal(got[:1000], samples)
    stats = src.stats()
    assert stats["bad_messages"] >= 1 and stats["bad_bytes"] == 3 * stats["bad_messages"]
