"""PMT plumbing shared by the blocks (not a block): PDU parsing/building, the image PDU format,
the metadata's sequence number, counters as PMT, logging. It needs GNU Radio's PMT, so it
cannot live in the core library; everything it does is conversion, no link logic.

Image PDU: (meta dict, f32vector of 784 pixels in [0, 1], row-major 28x28); meta carries "seq".
Symbol PDU: (meta dict, c32vector of k symbols). Drop notice: a dict {"seq", "reason", "block"}.
"""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from diffsem import images as imglib
from diffsem.link.counters import Counters, RateLimitedLog
from diffsem.link.seq import seq_of

# --- PDU helpers shared by the semantic blocks --------------------------------------------------

class BadPdu(ValueError):
    """A message that is not the PDU a port expects (the message says what was wrong)."""


def pdu_parts(msg) -> tuple[dict, np.ndarray]:
    """(meta as a Python dict, payload as a numpy array) of a PDU; BadPdu if it is not one."""
    if not pmt.is_pair(msg):
        raise BadPdu(f"not a PDU (expected a pair (meta, vector)), got {_short(msg)}")
    meta_pmt, vec = pmt.car(msg), pmt.cdr(msg)
    if not pmt.is_uniform_vector(vec):
        raise BadPdu(f"PDU payload is not a uniform vector: {_short(vec)}")
    meta = pmt.to_python(meta_pmt) if pmt.is_dict(meta_pmt) else {}
    if not isinstance(meta, dict):
        meta = {}
    return meta, np.asarray(pmt.to_python(vec))


def _short(obj, limit: int = 80) -> str:
    text = str(obj)
    return text if len(text) <= limit else text[:limit] + "…"


def _to_pmt(value):
    if isinstance(value, np.ndarray):
        if value.dtype == np.complex64 or np.iscomplexobj(value):
            return pmt.init_c32vector(value.size, value.astype(np.complex64).ravel())
        if value.dtype.kind == "f":
            return pmt.init_f32vector(value.size, value.astype(np.float32).ravel())
        return pmt.init_s64vector(value.size, value.astype(np.int64).ravel())
    if isinstance(value, (bool, np.bool_)):
        return pmt.from_bool(bool(value))
    if isinstance(value, (int, np.integer)):
        return pmt.from_long(int(value))
    if isinstance(value, (float, np.floating)):
        return pmt.from_double(float(value))
    if value is None:
        return pmt.PMT_NIL
    if isinstance(value, dict):
        return dict_to_pmt(value)
    return pmt.to_pmt(value)


def dict_to_pmt(meta: dict):
    out = pmt.make_dict()
    for key, value in meta.items():
        out = pmt.dict_add(out, pmt.intern(str(key)), _to_pmt(value))
    return out


def make_pdu(meta: dict, payload: np.ndarray):
    """A PDU from a dict and a float32 (f32vector) or complex64 (c32vector) array."""
    payload = np.ascontiguousarray(payload).ravel()
    if np.iscomplexobj(payload):
        vec = pmt.init_c32vector(payload.size, payload.astype(np.complex64))
    else:
        vec = pmt.init_f32vector(payload.size, payload.astype(np.float32))
    return pmt.cons(dict_to_pmt(meta), vec)


def image_pdu(meta: dict, image) -> object:
    return make_pdu(meta, imglib.as_image(image).ravel())


def parse_image_pdu(msg) -> tuple[dict, np.ndarray]:
    """(meta, [28, 28] float32) of an image PDU; BadPdu on a wrong size or NaN pixels."""
    meta, pixels = pdu_parts(msg)
    if pixels.size != imglib.N_PIXELS or pixels.dtype.kind != "f":
        raise BadPdu(f"image PDU must carry {imglib.N_PIXELS} float pixels, got {pixels.size} {pixels.dtype}")
    if not np.all(np.isfinite(pixels)):
        raise BadPdu("image PDU has NaN/Inf pixels")
    return meta, np.clip(pixels.astype(np.float32).reshape(28, 28), 0.0, 1.0)


def pdu_meta(msg):
    """The PMT metadata dict of a PDU; an empty dict when it has none."""
    car = pmt.car(msg) if pmt.is_pair(msg) else pmt.PMT_NIL
    return car if pmt.is_dict(car) else pmt.make_dict()


def pmt_seq(meta, default=None):
    """diffsem.link.seq.seq_of of a PMT metadata dict (`default` when it carries no seq)."""
    seq = seq_of({"seq": pmt.to_python(pmt.dict_ref(meta, pmt.intern("seq"), pmt.PMT_NIL))})
    return default if seq is None else seq


def msg_seq(msg, default=None):
    """pmt_seq of a PDU's metadata."""
    return pmt_seq(pdu_meta(msg), default)


def block_logger(block, name):
    logger = getattr(block, "logger", None)
    if logger is None:
        logger = gr.logger(name)
    return logger


def counters_to_pmt(counters: Counters):
    """A PMT dict of a diffsem.link.counters.Counters snapshot (a block's "stats" message)."""
    d = pmt.make_dict()
    for k, v in counters.snapshot().items():
        d = pmt.dict_add(d, pmt.intern(k), pmt.from_long(v))
    return d
