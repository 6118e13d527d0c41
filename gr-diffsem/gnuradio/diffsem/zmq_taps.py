"""zmq_taps: publish the link's constellation, metrics, images and decoder state on ZeroMQ.

Wire format: diffsem.link.taps (two-frame messages [topic, payload] on one PUB endpoint, default
tcp://127.0.0.1:5610; topics "constellation" (complex64), "metrics" (JSON), "image" (PNG),
"state" (JSON)). Sending never blocks: a slow or absent subscriber costs counted drops only.

In "constellation": symbol PDUs (e.g. ofdm_analog_rx "out"): their c32vector is published.
In "metrics":       dicts or PDUs with a dict meta (link_metrics "metrics") -> JSON.
In "image":         image PDUs (diffusion_decoder "out") -> PNG with tEXt seq/kind/decoder.
In "state":         dicts (diffusion_decoder "state") -> JSON.
"""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from diffsem.link import taps

from ._pdu import BadPdu, RateLimitedLog, block_logger, guarded, parse_image_pdu, pdu_parts, pmt_to_py, seq_of


def _as_dict(msg):
    if pmt.is_dict(msg):
        value = pmt_to_py(msg)
    elif pmt.is_pair(msg) and pmt.is_dict(pmt.car(msg)):
        value = pmt_to_py(pmt.car(msg))
    else:
        value = None
    if not isinstance(value, dict):
        raise BadPdu(f"expected a dict or a PDU with a dict meta, got {str(msg)[:60]}")
    return {k: (v.tolist() if isinstance(v, np.ndarray) and v.size <= 16 else v) for k, v in value.items()
            if not (isinstance(v, np.ndarray) and v.size > 16)}  # big vectors stay off the JSON tap


class zmq_taps(gr.basic_block):
    def __init__(self, address=taps.DEFAULT_ADDRESS, sndhwm=taps.DEFAULT_SNDHWM, image_scale=1):
        gr.basic_block.__init__(self, name="zmq_taps", in_sig=None, out_sig=None)
        self.log = block_logger(self, "zmq_taps")
        self.warn = RateLimitedLog(self.log)
        self.publisher = taps.TapPublisher(address, int(sndhwm))  # bind errors surface at build time
        self.address = self.publisher.endpoint
        self.image_scale = max(1, int(image_scale))
        self.bad_input = 0
        self.log.info(f"ZMQ taps on {self.address} (topics: {', '.join(taps.TOPICS)})")
        for port, handler in (("constellation", self._constellation), ("metrics", self._metrics),
                              ("image", self._image), ("state", self._state)):
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), handler)

    def _guard(self, port, fn, msg):
        try:
            fn(msg)
        except Exception:
            self.bad_input += 1
            raise  # counted by kind and logged (rate-limited) by @guarded

    @guarded("constellation")
    def _constellation(self, msg):
        def go(m):
            _, symbols = pdu_parts(m)
            if symbols.dtype.kind != "c":
                raise BadPdu(f"constellation PDU must carry complex symbols, got {symbols.dtype}")
            self.publisher.publish_constellation(symbols)
        self._guard("constellation", go, msg)

    @guarded("metrics")
    def _metrics(self, msg):
        self._guard("metrics", lambda m: self.publisher.publish_metrics(_as_dict(m)), msg)

    @guarded("state")
    def _state(self, msg):
        self._guard("state", lambda m: self.publisher.publish_state(_as_dict(m)), msg)

    @guarded("image")
    def _image(self, msg):
        def go(m):
            meta, image = parse_image_pdu(m)
            img = np.kron(image, np.ones((self.image_scale, self.image_scale), np.float32)) if self.image_scale > 1 else image
            self.publisher.publish_image(img, seq=seq_of(meta), kind="reconstruction", decoder=meta.get("decoder"),
                                         label=meta.get("label"))
        self._guard("image", go, msg)

    def stop(self):
        return True

    def stats(self) -> dict:
        return {**self.publisher.stats(), "bad_input": self.bad_input}

    def close(self):
        self.publisher.close()

    def __del__(self):
        try:
            self.publisher.close()
        except Exception:
            pass
