"""ZeroMQ taps: what a person monitoring the semantic link wants to see, published without ever
blocking the link.

Wire format (one PUB endpoint, default tcp://127.0.0.1:5610; each message is two ZMQ frames):

    frame 1: topic, ASCII                 frame 2: payload
    b"constellation"                      equalised received symbols of one frame: complex64
                                          little-endian, interleaved re/im (numpy complex64)
    b"metrics"                            UTF-8 JSON object, one per decoded or lost frame
                                          (seq, snr_est_db, latency_ms, psnr_db, ssim, ...)
    b"image"                              PNG (8-bit grayscale, 28x28) of a reconstructed image;
                                          PNG tEXt chunks carry "seq", "kind", "decoder", and
                                          "label" (true class) when the publisher is told it
    b"state"                              UTF-8 JSON object: decoder/link counters and settings

A plain pyzmq SUB socket subscribes by topic prefix (``sock.subscribe(b"metrics")``) and reads
``topic, payload = sock.recv_multipart()``. GNU Radio's own ``zeromq.sub_source`` reads a topic
as a stream when given the topic as its `key` (it drops the first frame): itemsize 8
(gr_complex) for "constellation", itemsize 1 (bytes) for the others. For GNU Radio's
``zeromq.sub_msg_source`` (one serialised PMT per message) the zmq_taps block can publish every
topic a second time as PMT PDUs on another endpoint (gnuradio.diffsem._taps_pmt).

Never blocks: the socket is an XPUB with XPUB_NODROP and a small send high-water mark, and
every send is NOBLOCK, so a subscriber that falls behind makes `publish` return False and
counts a drop for that topic instead of stalling the caller. Without subscribers messages are
discarded by ZeroMQ (counted as sent: nobody was listening).
"""
from __future__ import annotations

import json
import math
import threading
from collections import Counter

import numpy as np

TOPICS = ("constellation", "metrics", "image", "state")
DEFAULT_ADDRESS = "tcp://127.0.0.1:5610"
DEFAULT_SNDHWM = 32
#: Addresses that switch the taps off (`--taps off` in the generated scripts and the apps).
OFF = ("", "off", "none", "no", "false", "0")


def is_off(address) -> bool:
    return address is None or str(address).strip().lower() in OFF


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _finite(obj):
    """JSON has no NaN/Inf: replace them by null so any JSON parser reads the message."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.floating):
        return _finite(float(obj))
    return obj


def encode_json(obj: dict) -> bytes:
    return json.dumps(_finite(obj), default=_json_default, separators=(",", ":")).encode()


def encode_constellation(symbols) -> bytes:
    return np.ascontiguousarray(np.asarray(symbols).ravel(), dtype="<c8").tobytes()


MAX_PAYLOAD = 4 << 20      # bytes of one tap message a subscriber accepts
MAX_IMAGE_PIXELS = 1 << 22  # width x height of a tap image (a 28x28 image scaled up 70x fits)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class TapMessageError(ValueError):
    """A tap message that is not what its topic promises; `kind` names the counter it goes to."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def decode(topic, payload: bytes):
    """Decode one tap message: constellation -> complex64 array, metrics/state -> dict,
    image -> (float32 image [28,28] in [0,1], dict of PNG text chunks). A message that is not
    what its topic promises (oversized, not a JSON object, not a PNG, a decompression bomb, a
    byte count that is no whole number of complex64) raises TapMessageError with its kind."""
    topic = topic.decode(errors="replace") if isinstance(topic, bytes) else str(topic)
    if topic not in TOPICS:
        raise TapMessageError(f"unknown tap topic {topic[:40]!r}: one of {TOPICS}", "unknown_topic")
    if len(payload) > MAX_PAYLOAD:
        raise TapMessageError(f"{topic} message of {len(payload)} bytes (at most {MAX_PAYLOAD})", "oversized")
    if topic == "constellation":
        if len(payload) % 8:
            raise TapMessageError(f"constellation payload of {len(payload)} bytes is not a whole number of "
                                  "complex64", "constellation_bytes")
        return np.frombuffer(payload, dtype="<c8")
    if topic in ("metrics", "state"):
        try:
            value = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise TapMessageError(f"{topic} message is not JSON ({exc})", "bad_json") from None
        if not isinstance(value, dict):
            raise TapMessageError(f"{topic} message is a JSON {type(value).__name__}, not an object", "json_type")
        return value
    if not payload.startswith(PNG_SIGNATURE):
        raise TapMessageError("image message is not a PNG", "not_png")
    return _decode_png_checked(payload)


def _decode_png_checked(payload: bytes):
    import io
    import warnings

    from PIL import Image

    from diffsem.images import decode_png
    try:
        with Image.open(io.BytesIO(payload)) as img:  # reads the header only
            width, height = img.size
    except Exception as exc:  # noqa: BLE001 - whatever Pillow says, it is no image
        raise TapMessageError(f"image message is not a readable PNG ({exc})", "bad_png") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise TapMessageError(f"image of {width}x{height} pixels (at most {MAX_IMAGE_PIXELS})", "image_too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return decode_png(payload)
    except Exception as exc:  # noqa: BLE001
        raise TapMessageError(f"image message does not decode ({exc})", "bad_png") from None


class TapPublisher:
    """One XPUB socket publishing the topics above; thread-safe, never blocks the caller."""

    topic_frame = True  # [topic, payload]; a subclass may send the payload alone

    def __init__(self, address: str = DEFAULT_ADDRESS, sndhwm: int = DEFAULT_SNDHWM, context=None):
        import zmq

        self._zmq = zmq
        self.address = address
        self._lock = threading.Lock()  # ZMQ sockets are not thread-safe; blocks may share a publisher
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, int(sndhwm))
        self._sock.setsockopt(zmq.XPUB_NODROP, 1)  # a full subscriber makes send fail (counted), not vanish
        self._sock.setsockopt(zmq.LINGER, 0)  # closing never waits for a dead subscriber
        try:
            self._sock.bind(address)
        except zmq.ZMQError as exc:
            self._sock.close()
            raise OSError(f"ZMQ taps cannot bind {address}: {exc} (is another link publishing there? "
                          f"choose another port)") from exc
        self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()  # resolves a :0 / * port
        self.sent = Counter()
        self.dropped = Counter()
        self.subscriptions = 0
        self._closed = False

    def _drain_subscriptions(self):
        # XPUB queues subscription messages for us; read them so they never pile up.
        zmq = self._zmq
        while True:
            try:
                msg = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                self.subscriptions += 1
            elif msg[:1] == b"\x00":
                self.subscriptions = max(0, self.subscriptions - 1)

    def publish(self, topic: str, payload: bytes) -> bool:
        """Send one message; False (and a counted drop) if a subscriber is full or the socket is closed."""
        zmq = self._zmq
        with self._lock:
            if self._closed:
                self.dropped[topic] += 1
                return False
            self._drain_subscriptions()
            try:
                frames = [topic.encode(), payload] if self.topic_frame else [payload]
                self._sock.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                self.dropped[topic] += 1
                return False
            self.sent[topic] += 1
            return True

    def publish_constellation(self, symbols) -> bool:
        return self.publish("constellation", encode_constellation(symbols))

    def publish_metrics(self, metrics: dict) -> bool:
        return self.publish("metrics", encode_json(metrics))

    def publish_state(self, state: dict) -> bool:
        return self.publish("state", encode_json(state))

    def publish_image(self, image, seq=None, kind: str = "reconstruction", **text) -> bool:
        from diffsem.images import encode_png

        chunks = {"kind": kind, **{k: v for k, v in text.items() if v is not None}}
        if seq is not None:
            chunks["seq"] = seq
        return self.publish("image", encode_png(image, text=chunks))

    def stats(self) -> dict:
        with self._lock:
            return {"address": self.endpoint, "sent": dict(self.sent), "dropped": dict(self.dropped),
                    "subscriptions": self.subscriptions}

    def close(self):
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sock.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NoTaps(TapPublisher):
    """What `--taps off` gets: the publisher's interface with no socket; every publish is a no-op
    that returns False and counts nothing (nothing was offered to a subscriber)."""

    def __init__(self, address: str = "off", *args, **kwargs):
        self.address = self.endpoint = "off"
        self._lock = threading.Lock()
        self.sent, self.dropped, self.subscriptions = Counter(), Counter(), 0
        self._closed = True

    def publish(self, topic: str, payload: bytes) -> bool:
        return False

    def publish_image(self, image, seq=None, kind: str = "reconstruction", **text) -> bool:
        return False  # skips the PNG encoding

    def close(self):
        pass


def publisher(address: str = DEFAULT_ADDRESS, sndhwm: int = DEFAULT_SNDHWM, context=None) -> TapPublisher:
    """A TapPublisher bound to `address`, or NoTaps when the address says off ("off", "", "none")."""
    if is_off(address):
        return NoTaps()
    return TapPublisher(address, sndhwm, context)
