"""The ZMQ taps in PMT form, for stock GNU Radio readers.

A second PUB endpoint of zmq_taps (its `pmt_address`) carries every tap message as one ZMQ frame
holding a serialised PMT PDU (pmt.serialize_str), which is what stock `zeromq.sub_msg_source`
(and `zeromq.pub_msg_sink` on the sending side) exchange. sub_msg_source has no topic filter, so
each PDU names its topic in its meta ("topic"), and a stock `pdu.pdu_filter` (key "topic") splits
them:

    topic          meta                                         vector
    constellation  topic                                        c32vector: the frame's symbols
    metrics        topic + the JSON tap's fields (NaN -> nil)   u8vector: the same JSON text
    state          topic + the JSON tap's fields                u8vector: the same JSON text
    image          topic, seq, kind, decoder, label, width,      f32vector: width*height pixels
                   height                                       in [0,1], row by row
"""
from __future__ import annotations

import json

import numpy as np
import pmt

from diffsem.link import taps

from ._pdu import dict_to_pmt


def _pdu(meta: dict, vector) -> bytes:
    return pmt.serialize_str(pmt.cons(dict_to_pmt(meta), vector))


def _record(topic: str, fields: dict) -> bytes:
    text = taps.encode_json(fields)  # JSON-safe values (NaN -> null), the same text as the JSON tap
    return _pdu({"topic": topic, **json.loads(text)}, pmt.init_u8vector(len(text), list(text)))


class PmtTapPublisher(taps.TapPublisher):
    """TapPublisher whose messages are single-frame serialised PDUs (see the module doc)."""

    topic_frame = False

    def publish_constellation(self, symbols) -> bool:
        symbols = np.ascontiguousarray(np.asarray(symbols).ravel(), dtype=np.complex64)
        return self.publish("constellation", _pdu({"topic": "constellation"}, pmt.init_c32vector(symbols.size, symbols)))

    def publish_metrics(self, metrics: dict) -> bool:
        return self.publish("metrics", _record("metrics", metrics))

    def publish_state(self, state: dict) -> bool:
        return self.publish("state", _record("state", state))

    def publish_image(self, image, seq=None, kind: str = "reconstruction", **text) -> bool:
        pixels = np.ascontiguousarray(image, dtype=np.float32)
        meta = {"topic": "image", "kind": kind, **{k: v for k, v in text.items() if v is not None},
                "height": int(pixels.shape[0]), "width": int(pixels.shape[1])}
        if seq is not None:
            meta["seq"] = seq
        return self.publish("image", _pdu(meta, pmt.init_f32vector(pixels.size, pixels.ravel())))
