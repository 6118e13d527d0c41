"""PMT plumbing shared by the blocks (not a block): PDU parsing/building, the image PDU format,
the metadata's sequence number, counters as PMT, logging. It needs GNU Radio's PMT, so it
cannot live in the core library; everything it does is conversion, no link logic.

Image PDU: (meta dict, f32vector of 784 pixels in [0, 1], row-major 28x28); meta carries "seq".
Symbol PDU: (meta dict, c32vector of k symbols). Drop notice: a dict {"seq", "reason", "block"}.
"""
from __future__ import annotations

import functools

import numpy as np
import pmt
from gnuradio import gr

from diffsem import images as imglib
from diffsem.link.counters import Counters, RateLimitedLog
from diffsem.link.pdu import MAX_DEPTH, MAX_META_ITEMS, PduError, Rejections, validate_meta, validate_payload
from diffsem.link.seq import seq_of

# --- PDU helpers shared by the semantic blocks --------------------------------------------------

BadPdu = PduError  # a message that is not the PDU a port expects (the message says what was wrong)

# every uniform vector type: (predicate, elements accessor, numpy dtype). pmt.to_python cannot
# convert s8/s64/u64 vectors (it raises), so the blocks never call it on received messages.
_UVECTORS = [(getattr(pmt, f"is_{t}vector"), getattr(pmt, f"{t}vector_elements"), dtype) for t, dtype in (
    ("c32", np.complex64), ("f32", np.float32), ("u8", np.uint8), ("s8", np.int8), ("u16", np.uint16),
    ("s16", np.int16), ("u32", np.uint32), ("s32", np.int32), ("u64", np.uint64), ("s64", np.int64),
    ("f64", np.float64), ("c64", np.complex128))]


def uvector_to_numpy(vec) -> np.ndarray:
    """A PMT uniform vector of any type as a numpy array of its own dtype; BadPdu otherwise."""
    for is_type, elements, dtype in _UVECTORS:
        if is_type(vec):
            return np.asarray(elements(vec), dtype=dtype)
    raise BadPdu(f"not a uniform vector: {_short(vec)}", "payload_type")


def pmt_to_py(obj, depth: int = 0):
    """PMT -> Python values that never fails on a PMT type (unlike pmt.to_python): uniform
    vectors become numpy arrays of their own dtype, dicts dicts (keys converted too, so a
    non-symbol key stays visible to validate_meta), pairs and tuples tuples, vectors lists;
    BadPdu on containers nested deeper than MAX_DEPTH or longer than MAX_META_ITEMS."""
    if depth > MAX_DEPTH:
        raise BadPdu(f"PMT nests deeper than {MAX_DEPTH}", "meta_depth")
    if pmt.is_null(obj):
        return None
    if pmt.is_bool(obj):
        return pmt.to_bool(obj)
    if pmt.is_symbol(obj):
        return pmt.symbol_to_string(obj)
    if pmt.is_uint64(obj) and not pmt.is_integer(obj):
        return int(pmt.to_uint64(obj))
    if pmt.is_integer(obj):
        return int(pmt.to_long(obj))
    if pmt.is_real(obj):
        return float(pmt.to_double(obj))
    if pmt.is_complex(obj):
        return complex(pmt.to_complex(obj))
    if pmt.is_uniform_vector(obj):
        return uvector_to_numpy(obj)
    if pmt.is_dict(obj):
        items = pmt.dict_items(obj)
        n = pmt.length(items)
        if n > MAX_META_ITEMS:
            raise BadPdu(f"PMT dict has {n} entries", "meta_size")
        out = {}
        for i in range(n):
            item = pmt.nth(i, items)
            key = pmt_to_py(pmt.car(item), depth + 1)
            try:
                hash(key)
            except TypeError:
                key = ("unhashable", _short(key))
            out[key] = pmt_to_py(pmt.cdr(item), depth + 1)
        return out
    if pmt.is_vector(obj) or pmt.is_tuple(obj):
        n = pmt.length(obj)
        if n > MAX_META_ITEMS:
            raise BadPdu(f"PMT vector has {n} items", "meta_size")
        ref = pmt.vector_ref if pmt.is_vector(obj) else pmt.tuple_ref
        return [pmt_to_py(ref(obj, i), depth + 1) for i in range(n)]
    if pmt.is_pair(obj):
        return (pmt_to_py(pmt.car(obj), depth + 1), pmt_to_py(pmt.cdr(obj), depth + 1))
    return ("pmt", _short(obj))


def pdu_parts(msg, want: str | None = None) -> tuple[dict, np.ndarray]:
    """(meta as a validated Python dict, payload as a numpy array) of a PDU; BadPdu (with its
    kind) if it is not one. `want` ("complex", "float", ...) also checks the payload's type."""
    if not pmt.is_pair(msg) or pmt.is_dict(msg):
        raise BadPdu(f"not a PDU (expected a pair (meta, vector)), got {_short(msg)}", "not_pdu")
    meta_pmt, vec = pmt.car(msg), pmt.cdr(msg)
    if not pmt.is_uniform_vector(vec):
        raise BadPdu(f"PDU payload is not a uniform vector: {_short(vec)}", "payload_type")
    if not (pmt.is_dict(meta_pmt) or pmt.is_null(meta_pmt)):
        raise BadPdu(f"PDU metadata is not a dict: {_short(meta_pmt)}", "meta_not_dict")
    meta = validate_meta(pmt_to_py(meta_pmt))
    values = uvector_to_numpy(vec)
    if want is not None:
        validate_payload(values, want, finite=False)
    return meta, values


def guarded(port: str):
    """Decorator of a block's message handler: nothing it raises leaves it (GNU Radio would end
    the block's message thread); refusals and errors go to the block's `rejections`
    (diffsem.link.pdu.Rejections: named counters, one log line per kind, rate-limited). The
    wrapper keeps the handler's name, which GNU Radio's gateway looks the handler up by."""
    def wrap(handler):
        @functools.wraps(handler)
        def run(self, msg):
            return rejections(self).guard(functools.partial(handler, self), port, msg)
        return run
    return wrap


def rejections(block) -> Rejections:
    """The block's Rejections (created on first use)."""
    rej = block.__dict__.get("_rejections")
    if rej is None:
        name = type(block).__name__
        log = block.__dict__.get("_reject_logger") or block_logger(block, name)
        rej = block.__dict__["_rejections"] = Rejections(name, log.warn)
    return rej


def _short(obj, limit: int = 80) -> str:
    text = str(obj)
    return text if len(text) <= limit else text[:limit] + "…"


def _to_pmt(value):
    try:
        return _to_pmt_strict(value)
    except Exception:  # an odd value must not stop the frame: it travels as its text
        return pmt.intern(_short(value))


def _to_pmt_strict(value):
    if isinstance(value, np.ndarray):
        if value.dtype == np.complex64 or np.iscomplexobj(value):
            return pmt.init_c32vector(value.size, value.astype(np.complex64).ravel())
        if value.dtype.kind == "f":
            return pmt.init_f32vector(value.size, value.astype(np.float32).ravel())
        if value.dtype.kind == "u" and value.size and int(value.max()) > np.iinfo(np.int64).max:
            return pmt.init_u64vector(value.size, value.astype(np.uint64).ravel())
        return pmt.init_s64vector(value.size, value.astype(np.int64).ravel())
    if isinstance(value, (bool, np.bool_)):
        return pmt.from_bool(bool(value))
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if value > np.iinfo(np.int64).max:  # from_long would overflow: the PMT type that holds it
            return pmt.from_uint64(value) if value < 1 << 64 else pmt.intern(str(value))
        if value < np.iinfo(np.int64).min:
            return pmt.intern(str(value))
        return pmt.from_long(value)
    if isinstance(value, (float, np.floating)):
        return pmt.from_double(float(value))
    if value is None:
        return pmt.PMT_NIL
    if isinstance(value, dict):
        return dict_to_pmt(value)
    if isinstance(value, (list, tuple)):
        out = pmt.make_vector(len(value), pmt.PMT_NIL)
        for i, item in enumerate(value):
            pmt.vector_set(out, i, _to_pmt(item))
        return out
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
    if pixels.dtype.kind != "f":
        raise BadPdu(f"image PDU must carry float pixels, got {pixels.dtype}", "payload_type")
    if pixels.size != imglib.N_PIXELS:
        raise BadPdu(f"image PDU must carry {imglib.N_PIXELS} pixels, got {pixels.size}", "payload_size")
    if not np.all(np.isfinite(pixels)):
        raise BadPdu("image PDU has NaN/Inf pixels", "payload_nonfinite")
    return meta, np.clip(pixels.astype(np.float32).reshape(28, 28), 0.0, 1.0)


def pdu_meta(msg):
    """The PMT metadata dict of a PDU; an empty dict when it has none."""
    car = pmt.car(msg) if pmt.is_pair(msg) else pmt.PMT_NIL
    return car if pmt.is_dict(car) else pmt.make_dict()


def pmt_seq(meta, default=None):
    """diffsem.link.seq.seq_of of a PMT metadata dict (`default` when it carries no seq)."""
    seq = seq_of({"seq": pmt_to_py(pmt.dict_ref(meta, pmt.intern("seq"), pmt.PMT_NIL))})
    return default if seq is None else seq


def msg_seq(msg, default=None):
    """pmt_seq of a PDU's metadata."""
    return pmt_seq(pdu_meta(msg), default)


def block_logger(block, name):
    logger = getattr(block, "logger", None)
    if logger is None:
        logger = gr.logger(name)
    return logger


def publish_if_subscribed(block, port: str, make):
    """Publish make() on `port` only if something subscribes to it: a per-frame "stats" message
    that nothing reads (the usual case in a loopback) costs a dict's worth of PMT conversion per
    frame. The subscribers are known once the flowgraph runs."""
    key = pmt.intern(port)
    if pmt.length(block.message_subscribers(key)):
        block.message_port_pub(key, make())


def counters_to_pmt(counters: Counters):
    """A PMT dict of a diffsem.link.counters.Counters snapshot (a block's "stats" message)."""
    d = pmt.make_dict()
    for k, v in counters.snapshot().items():
        d = pmt.dict_add(d, pmt.intern(k), pmt.from_long(v))
    return d
