"""zmq_taps: publish the link's constellation, metrics, images and decoder state on ZeroMQ.

Wire format: diffsem.link.taps (two-frame messages [topic, payload] on one PUB endpoint, default
tcp://127.0.0.1:5610; topics "constellation" (complex64), "metrics" (JSON), "image" (PNG),
"state" (JSON)). Sending never blocks: a slow or absent subscriber costs counted drops only.

In "constellation": symbol PDUs (e.g. ofdm_analog_rx "out"): their c32vector is published.
In "metrics":       dicts or PDUs with a dict meta (link_metrics "metrics") -> JSON.
In "image":         image PDUs (diffusion_decoder "out") -> PNG with tEXt seq/kind/decoder.
In "state":         dicts (diffusion_decoder "state") -> JSON.
In "ref":           image PDUs as sent (image_source "out"): their "label" by seq, so that the
                    image tap's PNG carries the true class in a tEXt chunk "label".

pmt_address (default "" = none): a second endpoint with every topic as a serialised PMT PDU, one
frame per message, for stock zeromq.sub_msg_source (see _taps_pmt).
"""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from diffsem.link import taps
from diffsem.link.seq import SEQ_MODULO

from ._pdu import BadPdu, RateLimitedLog, block_logger, guarded, parse_image_pdu, pdu_parts, pmt_to_py, seq_of
from ._taps_pmt import PmtTapPublisher


_NO_LABEL = np.iinfo(np.int64).min  # a seq whose reference carried no label (or none came yet)
# image meta carried into the PNG's tEXt chunks where present: a fill ("status" lost, "filled"),
# a salvaged header, and the receiver's reliability score
IMAGE_TEXT = ("status", "filled", "salvaged", "predicted_psnr_db", "reliability")


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
    def __init__(self, address=taps.DEFAULT_ADDRESS, sndhwm=taps.DEFAULT_SNDHWM, image_scale=1, pmt_address=""):
        gr.basic_block.__init__(self, name="zmq_taps", in_sig=None, out_sig=None)
        self.log = block_logger(self, "zmq_taps")
        self.warn = RateLimitedLog(self.log)
        # bind errors surface at build time; address "off" (or "", "none") publishes nothing
        self.publisher = taps.publisher(address, int(sndhwm))
        self.address = self.publisher.endpoint
        self.pmt_publisher = None if taps.is_off(pmt_address) else PmtTapPublisher(pmt_address, int(sndhwm))
        self.pmt_address = self.pmt_publisher.endpoint if self.pmt_publisher else "off"
        self.publishers = [p for p in (self.publisher, self.pmt_publisher) if p is not None]
        # label by seq mod 4096 (as on air), from the "ref" port: one slot per header seq, allocated
        # now, so memory is flat from the first frame (a dict filled up to 4096 entries, ~0.5 MB,
        # over a 20 frame/s link's first 3.5 minutes)
        self.labels = np.full(SEQ_MODULO, _NO_LABEL, dtype=np.int64)
        self.image_scale = max(1, int(image_scale))
        self.bad_input = 0
        if self.address == "off":
            self.log.info("ZMQ taps off")
        else:
            self.log.info(f"ZMQ taps on {self.address} (topics: {', '.join(taps.TOPICS)})")
        if self.pmt_publisher:
            self.log.info(f"ZMQ taps as PMT PDUs (zeromq.sub_msg_source) on {self.pmt_address}")
        for port, handler in (("constellation", self._constellation), ("metrics", self._metrics),
                              ("image", self._image), ("state", self._state), ("ref", self._ref)):
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
            for p in self.publishers:
                p.publish_constellation(symbols)
        self._guard("constellation", go, msg)

    @guarded("metrics")
    def _metrics(self, msg):
        self._guard("metrics", lambda m: [p.publish_metrics(_as_dict(m)) for p in self.publishers], msg)

    @guarded("state")
    def _state(self, msg):
        self._guard("state", lambda m: [p.publish_state(_as_dict(m)) for p in self.publishers], msg)

    @guarded("ref")
    def _ref(self, msg):
        def go(m):
            meta, _ = parse_image_pdu(m)
            seq, label = seq_of(meta), meta.get("label")
            if seq is not None:  # a new reference with this header seq: the older one's label is gone
                known = label is not None and _NO_LABEL < int(label) <= np.iinfo(np.int64).max
                self.labels[seq % SEQ_MODULO] = int(label) if known else _NO_LABEL
        self._guard("ref", go, msg)

    @guarded("image")
    def _image(self, msg):
        def go(m):
            meta, image = parse_image_pdu(m)
            img = np.kron(image, np.ones((self.image_scale, self.image_scale), np.float32)) if self.image_scale > 1 else image
            seq = seq_of(meta)
            label = meta.get("label", self.label_of(seq))
            # what a viewer must not take for a decoded frame, and how far to trust one that is
            said = {k: str(meta[k])[:32] for k in IMAGE_TEXT if meta.get(k) is not None}
            for p in self.publishers:
                p.publish_image(img, seq=seq, kind="reconstruction", decoder=meta.get("decoder"), label=label, **said)
        self._guard("image", go, msg)

    def label_of(self, seq):
        """The label the "ref" port gave for header seq `seq` (mod 4096), or None."""
        if seq is None:
            return None
        label = int(self.labels[seq % SEQ_MODULO])
        return None if label == _NO_LABEL else label

    def stop(self):
        return True

    def stats(self) -> dict:
        pmt_stats = {"pmt": self.pmt_publisher.stats()} if self.pmt_publisher else {}
        return {**self.publisher.stats(), **pmt_stats, "bad_input": self.bad_input}

    def close(self):
        for p in self.publishers:
            p.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
