"""Helpers shared by the GNU Radio block tests (not a test module)."""
import numpy as np
from gnuradio import blocks, gr


def run_block(block, x):
    """Samples x through one stream block in a fresh top block; returns what came out."""
    tb = gr.top_block()
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(np.asarray(x, np.complex64).tolist()), block, sink)
    tb.run()
    return np.array(sink.data())
