"""gr-diffsem GNU Radio blocks: `from gnuradio import diffsem`.

Thin adapters (streams, PDUs, tags, message ports) over the core library `diffsem`
(python/diffsem in the source tree). Every block module defines one class of the same name, as
GRC shows it; they are imported here, as in any GNU Radio OOT module, so that
`diffsem.image_source` is the block class even after someone imports the module
`gnuradio.diffsem.image_source` directly. Besides the blocks: `harness` (loopback wiring for the
apps and tests) and `_pdu` (PMT conversions the blocks share). The programs built on these
blocks are the `diffsem_apps` package (docs/architecture.md).
"""
# analog OFDM PHY and channel
from .ofdm_analog_tx import ofdm_analog_tx
from .ofdm_analog_rx import ofdm_analog_rx
from .channel_sim import channel_sim
from .symbol_source import symbol_source
from .symbol_checker import symbol_checker
# the semantic link
from .image_source import image_source
from .semantic_encoder import semantic_encoder
from .diffusion_decoder import diffusion_decoder
from .image_sink import image_sink
from .link_metrics import link_metrics
from .zmq_taps import zmq_taps
# digital baseline (codec + FEC + QAM on the stock OFDM blocks)
from .digital_link_tx import digital_link_tx
from .digital_link_rx import digital_link_rx

__all__ = ["ofdm_analog_tx", "ofdm_analog_rx", "channel_sim", "symbol_source", "symbol_checker",
           "image_source", "semantic_encoder", "diffusion_decoder", "image_sink", "link_metrics",
           "zmq_taps", "digital_link_tx", "digital_link_rx"]
