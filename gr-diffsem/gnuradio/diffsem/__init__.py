"""gr-diffsem GNU Radio blocks: `from gnuradio import diffsem`.

Thin adapters (streams, PDUs, tags, message ports) over the core library `diffsem`
(python/diffsem in the source tree). Blocks are imported on first use, so importing the
package does not load torch or onnxruntime for a flowgraph that only uses the PHY.
"""
import importlib as _importlib

# block name -> module in this package that defines a class of that name
_BLOCKS = {
    # analog OFDM PHY and channel
    "ofdm_analog_tx": "ofdm_analog_tx",
    "ofdm_analog_rx": "ofdm_analog_rx",
    "channel_sim": "channel_sim",
    "symbol_source": "symbol_loopback",
    "symbol_checker": "symbol_loopback",
    # the semantic link
    "image_source": "image_source",
    "semantic_encoder": "semantic_encoder",
    "diffusion_decoder": "diffusion_decoder",
    "image_sink": "image_sink",
    "link_metrics": "link_metrics",
    "zmq_taps": "zmq_taps",
    # digital baseline (codec + FEC + QAM on the stock OFDM blocks)
    "digital_link_tx": "digital_link",
    "digital_link_rx": "digital_link",
}

__all__ = sorted(_BLOCKS)


def __getattr__(name):
    module = _BLOCKS.get(name)
    if module is None:
        raise AttributeError(f"module 'gnuradio.diffsem' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
