"""What a PDU's contents may be, checked once for every block (no GNU Radio here: the blocks turn
PMT into Python values first, then call these).

A message handler that raises ends GNU Radio's message thread of its block for good, so every
handler runs under `Rejections.guard`: a refused PDU (`PduError`, with a `kind`) or any other
exception is counted under a named counter ("rejected_<kind>", "handler_error_<Type>") and
logged once per kind, then at most once per `interval` seconds with the count; nothing raises
out of the handler.

Plainly wrong values are refused early by `validate_meta` / `validate_payload` /
`validate_notice` rather than deep in a block: metadata that is not a dict of string keys,
integers outside int64 (they cannot travel on as PMT longs), a "seq" that is not a
non-negative integer, a "label" that is not an integer, an "snr_db" that is not a real number,
a "noise_var" that is not a vector of real numbers.
"""
from __future__ import annotations

import time
from numbers import Integral, Real

import numpy as np

from diffsem.link.counters import Counters

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_DEPTH = 8           # nesting of metadata containers accepted
MAX_META_ITEMS = 4096   # entries of a metadata dict (and of a list inside it)


class PduError(ValueError):
    """A message that is not what the port expects; `kind` names the counter it goes to."""

    def __init__(self, message: str, kind: str = "bad_pdu"):
        super().__init__(message)
        self.kind = str(kind)


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _check_value(key, value, depth):
    if depth > MAX_DEPTH:
        raise PduError(f"metadata {key!r} nests deeper than {MAX_DEPTH}", "meta_depth")
    if _is_int(value):
        if not INT64_MIN <= int(value) <= INT64_MAX:
            raise PduError(f"metadata {key!r} = {value} is outside the 64-bit signed range", "meta_int_range")
    elif isinstance(value, dict):
        _check_dict(value, depth + 1)
    elif isinstance(value, (list, tuple)):
        if len(value) > MAX_META_ITEMS:
            raise PduError(f"metadata {key!r} has {len(value)} items", "meta_size")
        for item in value:
            _check_value(key, item, depth + 1)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind == "u" and value.size and int(value.max()) > INT64_MAX:
            raise PduError(f"metadata {key!r} holds values above the 64-bit signed range", "meta_int_range")


def _check_dict(meta: dict, depth: int):
    if len(meta) > MAX_META_ITEMS:
        raise PduError(f"metadata has {len(meta)} entries (at most {MAX_META_ITEMS})", "meta_size")
    for key, value in meta.items():
        if not isinstance(key, str):
            raise PduError(f"metadata key {key!r} is not a string (symbol)", "meta_key")
        _check_value(key, value, depth)


def validate_meta(meta) -> dict:
    """`meta` (a PDU's metadata as Python values) if it is acceptable, else PduError."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise PduError(f"PDU metadata is {type(meta).__name__}, not a dict", "meta_not_dict")
    _check_dict(meta, 0)
    if "seq" in meta:
        seq = meta["seq"]
        if not _is_int(seq) or int(seq) < 0:
            raise PduError(f"metadata 'seq' must be a non-negative integer, got {_short(seq)}", "meta_seq")
    if "label" in meta and not _is_int(meta["label"]):
        raise PduError(f"metadata 'label' must be an integer, got {_short(meta['label'])}", "meta_label")
    if "snr_db" in meta:
        snr = meta["snr_db"]
        if not isinstance(snr, Real) or isinstance(snr, (bool, np.bool_)):
            raise PduError(f"metadata 'snr_db' must be a number, got {_short(snr)}", "meta_snr")
    if "noise_var" in meta:
        nv = meta["noise_var"]
        if not isinstance(nv, np.ndarray) or nv.ndim != 1 or nv.dtype.kind not in "iuf":
            raise PduError(f"metadata 'noise_var' must be a vector of real numbers, got {_short(nv)}",
                           "meta_noise_var")
    return meta


# payload kinds: the numpy dtype kinds each accepts
PAYLOAD_KINDS = {"complex": "c", "float": "f", "bytes": "u", "real": "iuf"}


def validate_payload(values, want: str = "complex", size=None, max_size=None, finite=True) -> np.ndarray:
    """`values` (a PDU's data as a 1-D numpy array) if it is a `want` vector of the given size
    (an int, or None for any size up to `max_size`), else PduError."""
    if not isinstance(values, np.ndarray) or values.ndim != 1:
        raise PduError(f"PDU data is {type(values).__name__}, not a uniform vector", "payload_type")
    kinds = PAYLOAD_KINDS[want]
    if values.dtype.kind not in kinds or (want == "bytes" and values.dtype.itemsize != 1):
        raise PduError(f"PDU data is a {values.dtype} vector, expected {want}", "payload_type")
    if values.size == 0:
        raise PduError("PDU data is empty", "payload_empty")
    if size is not None and values.size != size:
        raise PduError(f"PDU data has {values.size} values, expected {size}", "payload_size")
    if max_size is not None and values.size > max_size:
        raise PduError(f"PDU data has {values.size} values, at most {max_size}", "payload_size")
    if finite and values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
        raise PduError("PDU data has NaN/Inf values", "payload_nonfinite")
    return values


def validate_notice(notice) -> tuple:
    """(seq or None, reason, block) of a drop notice {"seq", "reason", "block"}, else PduError."""
    if not isinstance(notice, dict):
        raise PduError(f"drop notice is {type(notice).__name__}, not a dict", "notice_type")
    seq = notice.get("seq")
    if seq is not None and (not _is_int(seq) or not -1 <= int(seq) <= INT64_MAX):
        raise PduError(f"drop notice 'seq' must be an integer >= -1, got {_short(seq)}", "notice_seq")
    reason, block = notice.get("reason", "error"), notice.get("block")
    if not isinstance(reason, str) or (block is not None and not isinstance(block, str)):
        raise PduError("drop notice 'reason' and 'block' must be strings", "notice_type")
    seq = None if seq is None or int(seq) < 0 else int(seq)
    return seq, reason, block


def _short(obj, limit: int = 60) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[:limit] + "…"


class KindLog:
    """One warning per kind, then at most one per `interval` seconds with the count since."""

    def __init__(self, warn, interval: float = 10.0):
        self.warn, self.interval = warn, float(interval)
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, kind: str, message: str):
        now = time.monotonic()
        last, quiet = self._last.get(kind, (None, 0))
        if last is None or now - last >= self.interval:
            more = f" ({quiet} more of this kind since the last line)" if quiet else ""
            self._last[kind] = (now, 0)
            try:
                self.warn(f"{message} [{kind}]{more}")
            except Exception:  # a logger must not be what kills the handler
                pass
        else:
            self._last[kind] = (last, quiet + 1)


class Rejections:
    """The named rejection counters of one block and their rate-limited log."""

    def __init__(self, block_name: str, warn, interval: float = 10.0):
        self.block_name = str(block_name)
        self.counters = Counters()
        self.log = KindLog(warn, interval)

    def reject(self, kind: str, message: str) -> None:
        name = f"rejected_{kind}"
        self.counters.incr(name)
        self.log(name, f"{self.block_name}: refused a message: {message}")

    def guard(self, handler, port: str, msg):
        """handler(msg); a PduError or any other exception is counted and logged, never raised."""
        try:
            return handler(msg)
        except PduError as exc:
            self.reject(exc.kind, f"{exc} (port {port!r})")
        except Exception as exc:  # noqa: BLE001 - whatever it is, the message thread must live
            name = f"handler_error_{type(exc).__name__}"
            self.counters.incr(name)
            self.log(name, f"{self.block_name}: handler of port {port!r} failed: {_short(exc, 200)}")
        return None

    def snapshot(self) -> dict:
        return self.counters.snapshot()

    def total(self) -> int:
        return sum(self.snapshot().values())
