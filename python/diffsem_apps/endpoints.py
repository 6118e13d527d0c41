"""Endpoints of the radio apps (diffsem_apps.radio): a continuous burst stream for
sample-stream links (ZMQ), a SigMF recorder that annotates every frame the receiver detected, a
SigMF replay source, and the SDR endpoints (gr-uhd, gr-soapy) with one-sentence failures.
"""
from __future__ import annotations

import datetime
import os
import threading
import time
from collections import deque

import numpy as np
import pmt
from gnuradio import gr

from diffsem.link.counters import Counters, RateLimitedLog
from diffsem.link.pdu import PduError, validate_meta
from gnuradio.diffsem.harness import guarded, pmt_to_py


def _logger(block, name):
    return getattr(block, "logger", None) or gr.logger(name)


RECORDER = "gr-diffsem"


class EndpointError(RuntimeError):
    """An endpoint that cannot be opened (no device, unreadable recording): one sentence, no traceback."""


class burst_filler(gr.sync_block):
    """Complex bursts (PDUs on port "pdus") in, a continuous complex stream out: queued bursts
    back to back, zeros while none waits. A sample-stream link (ZMQ, an SDR sink) must never
    starve the receiver, and the receiver's sync needs quiet between bursts anyway. Rate it with
    a throttle (or the SDR's clock). At most `max_queue` bursts wait; beyond that the oldest is
    dropped and counted (stats()["dropped"]; a finite source's back-pressure keeps it at 0).
    `burst_ends()`/`on_air(n)`: where each burst ends in the output stream, so an app can tell
    which bursts a sink that has read n samples has taken whole."""

    def __init__(self, max_queue=256):
        gr.sync_block.__init__(self, name="diffsem_burst_filler", in_sig=None, out_sig=[np.complex64])
        self.log = _logger(self, "burst_filler")
        self.warn = RateLimitedLog(self.log)
        self._queue: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._current = np.zeros(0, np.complex64)
        self._pos = 0
        self._written = 0             # samples output so far
        self._ends: deque[int] = deque()  # output index just past each started burst, not yet on air
        self._on_air = 0
        self.last_end = 0             # output index just past the last burst started
        self.max_queue = int(max_queue)
        self.counters = Counters("bursts_in", "bursts_out", "dropped", "bad_pdu", "burst_samples")
        self.message_port_register_in(pmt.intern("pdus"))
        self.set_msg_handler(pmt.intern("pdus"), self._on_pdu)

    @guarded("pdus")
    def _on_pdu(self, msg):
        if not (pmt.is_pair(msg) and pmt.is_c32vector(pmt.cdr(msg))):
            self.counters.incr("bad_pdu")
            self.warn("bad_pdu", "burst_filler: ignoring a message that is not a complex PDU")
            return
        burst = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)), dtype=np.complex64)
        with self._lock:
            self._queue.append(burst)
            self.counters.incr("bursts_in")
            if len(self._queue) > self.max_queue:
                self._queue.popleft()
                self.counters.incr("dropped")
                self.warn("queue_full", "burst_filler: burst queue full, dropped the oldest burst")

    def pending(self) -> int:
        """Bursts not yet fully sent (queued + the one in progress)."""
        with self._lock:
            return len(self._queue) + (self._pos < self._current.size)

    def stats(self) -> dict:
        return self.counters.snapshot()

    def work(self, input_items, output_items):
        out = output_items[0]
        n, filled = len(out), 0
        with self._lock:
            while filled < n:
                if self._pos >= self._current.size:
                    if not self._queue:
                        break
                    self._current, self._pos = self._queue.popleft(), 0
                    self.last_end = self._written + filled + self._current.size
                    self._ends.append(self.last_end)
                    self.counters.incr("bursts_out")
                    self.counters.incr("burst_samples", self._current.size)
                take = min(n - filled, self._current.size - self._pos)
                out[filled:filled + take] = self._current[self._pos:self._pos + take]
                filled += take
                self._pos += take
            self._written += n
        out[filled:] = 0
        return n

    def on_air(self, consumed: int) -> int:
        """Bursts whose last sample is within the first `consumed` output samples (what the sink
        has read): they have left the flowgraph whole."""
        with self._lock:
            while self._ends and self._ends[0] <= consumed:
                self._ends.popleft()
                self._on_air += 1
            return self._on_air


class zmq_sample_source(gr.sync_block):
    """ZMQ SUB -> complex64 samples: what gr-zeromq's sub_source does for a stock PUB sink (one
    message = raw complex64 samples), except that a message whose size is not a whole number of
    samples is dropped and counted (`bad_messages`) instead of ending the block's thread, which left
    the receiver silent for good. Connects (and reconnects) by itself, so the publisher may start
    before or after it; `messages`, `samples` and `last_message_s` (monotonic) say what arrived."""

    POLL_MS = 50  # how long one work() call waits for a message (the scheduler calls it again)

    def __init__(self, address: str):
        import zmq
        gr.sync_block.__init__(self, name="diffsem_zmq_sample_source", in_sig=None, out_sig=[np.complex64])
        self.log = _logger(self, "zmq_sample_source")
        self.warn = RateLimitedLog(self.log)
        self.address = address
        self._zmq = zmq
        self._sock = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.setsockopt(zmq.LINGER, 0)
        try:
            self._sock.connect(address)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise EndpointError(f"cannot subscribe to {address} ({exc})") from None
        self._pending = np.zeros(0, np.complex64)
        self.counters = Counters("messages", "samples", "bad_messages", "bad_bytes")
        self.last_message_s = None

    def _receive(self):
        zmq = self._zmq
        if not self._sock.poll(self.POLL_MS):
            return
        chunks = []
        while True:
            try:
                msg = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.counters.incr("messages")
            self.last_message_s = time.monotonic()
            if len(msg) % 8:
                self.counters.incr("bad_messages")
                self.counters.incr("bad_bytes", len(msg))
                self.warn("bad_message", f"zmq_sample_source: dropped a {len(msg)}-byte message from {self.address}: "
                                         "not whole complex64 samples (8 bytes each)")
                continue
            chunks.append(np.frombuffer(msg, np.complex64))
            if sum(c.size for c in chunks) >= 1 << 16:  # enough for several calls: leave the rest queued
                break
        if chunks:
            self._pending = np.concatenate([self._pending, *chunks])

    def work(self, input_items, output_items):
        out = output_items[0]
        if not self._pending.size:
            self._receive()
        n = min(out.size, self._pending.size)
        if n:
            out[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            self.counters.incr("samples", n)
        return n

    def stop(self):
        self._sock.close(0)
        return True

    def stats(self) -> dict:
        return self.counters.snapshot()


def sigmf_paths(path: str) -> tuple[str, str]:
    """"rec", "rec.sigmf-data" or "rec.sigmf-meta" -> ("rec.sigmf-data", "rec.sigmf-meta")."""
    base = str(path)
    for ext in (".sigmf-data", ".sigmf-meta", ".sigmf"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base + ".sigmf-data", base + ".sigmf-meta"


class sigmf_recorder(gr.sync_block):
    """Complex stream in -> a SigMF recording (cf32_le data + meta written on stop()).

    Message port "frames": receiver PDUs (ofdm_analog_rx "out"); each becomes an annotation at
    its metadata "sample_offset" (the input sample index where the frame starts, which is this
    block's sample index when both see the same stream), `frame_samples(n_symbols)` long, with
    seq, estimated SNR and CFO. `info` goes into the global object: sample rate, centre frequency,
    hardware, gains, author, description (see `write_meta`).

    A frame PDU whose sample_offset / n_symbols is not a non-negative integer (n_symbols at most
    MAX_SYMBOLS) is not annotated, counted ("bad_pdu", and by kind in the guard's counters);
    at most MAX_ANNOTATIONS are kept ("annotations_dropped" beyond). stop() never raises: a
    meta file the SigMF library cannot write is counted ("meta_errors") and logged."""

    MAX_SYMBOLS = 4095
    MAX_ANNOTATIONS = 1_000_000

    def __init__(self, path, samp_rate, center_freq=0.0, info=None, frame_samples=None, max_samples=0):
        gr.sync_block.__init__(self, name="diffsem_sigmf_recorder", in_sig=[np.complex64], out_sig=None)
        self.log = _logger(self, "sigmf_recorder")
        self.warn = RateLimitedLog(self.log)
        samp_rate, center_freq = float(samp_rate), float(center_freq)
        if not (np.isfinite(samp_rate) and samp_rate > 0):
            raise ValueError(f"sigmf_recorder: the sample rate must be a positive number, got {samp_rate}")
        if not (np.isfinite(center_freq) and center_freq >= 0):
            raise ValueError(f"sigmf_recorder: the centre frequency must be a number >= 0, got {center_freq}")
        if int(max_samples) < 0:
            raise ValueError(f"sigmf_recorder: max_samples must be >= 0 (0: no limit), got {max_samples}")
        self.data_path, self.meta_path = sigmf_paths(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.data_path)), exist_ok=True)
        self.samp_rate, self.center_freq = samp_rate, center_freq
        self.info = dict(info or {})
        self.frame_samples = frame_samples
        self.max_samples = int(max_samples)  # 0 = no limit; beyond it samples are not written
        self.annotations: list[dict] = []
        self.written_annotations = 0
        self.counters = Counters("samples", "frames", "bad_pdu", "annotations_dropped", "meta_errors")
        self._lock = threading.Lock()
        self._file = open(self.data_path, "wb")
        self._start_time = datetime.datetime.now(datetime.timezone.utc)
        self._written_meta = False
        self.message_port_register_in(pmt.intern("frames"))
        self.set_msg_handler(pmt.intern("frames"), self._on_frame)

    @guarded("frames")
    def _on_frame(self, msg):
        try:
            meta = _frame_meta(msg, self.MAX_SYMBOLS)
        except PduError:
            self.counters.incr("bad_pdu")
            raise  # counted by kind and logged (rate-limited) by @guarded
        n_sym = meta["n_symbols"]
        annotation = {"start": meta["sample_offset"],
                      "length": int(self.frame_samples(n_sym)) if self.frame_samples else None,
                      "seq": meta.get("seq"), "snr_db": meta.get("snr_db"), "cfo": meta.get("cfo"),
                      "n_symbols": n_sym}
        with self._lock:
            if len(self.annotations) >= self.MAX_ANNOTATIONS:
                self.counters.incr("annotations_dropped")
                return
            self.annotations.append(annotation)
        self.counters.incr("frames")

    def work(self, input_items, output_items):
        x = input_items[0]
        keep = len(x)
        if self.max_samples:
            keep = max(0, min(keep, self.max_samples - self.counters.snapshot()["samples"]))
        if keep and self._file is not None:
            x[:keep].astype(np.complex64).tofile(self._file)
            self.counters.incr("samples", keep)
        return len(x)

    def stop(self):
        try:  # an exception here would end the process (SIGABRT) with no report and no meta
            self.close()
        except Exception as exc:  # noqa: BLE001
            self.counters.incr("meta_errors")
            self.log.error(f"sigmf_recorder: cannot write {self.meta_path}: {exc}")
        return True

    def close(self):
        """Flush the data and write the meta file (idempotent; also called by stop())."""
        with self._lock:
            if self._written_meta:
                return
            self._written_meta = True
            if self._file is not None:
                self._file.close()
                self._file = None
            recorded = self.counters.snapshot()["samples"]
            # a frame that does not fit whole in a limited recording is not annotated
            annotations = sorted((a for a in self.annotations if a["start"] + (a["length"] or 0) <= recorded),
                                 key=lambda a: a["start"])
            self.written_annotations = len(annotations)
        write_meta(self.meta_path, self.data_path, "cf32_le", self.samp_rate, self.center_freq,
                   self._start_time, self.info, annotations)
        self.log.info(f"recorded {self.counters.snapshot()['samples']} samples, {len(annotations)} frames "
                      f"to {self.meta_path}")


def _frame_meta(msg, max_symbols) -> dict:
    """A receiver frame PDU's metadata checked for annotating; PduError (by kind) otherwise."""
    if not pmt.is_pair(msg) or not pmt.is_dict(pmt.car(msg)):
        raise PduError("frame message is not a PDU with a dict metadata", "not_pdu")
    meta = validate_meta(pmt_to_py(pmt.car(msg)))
    offset, n_sym = meta.get("sample_offset"), meta.get("n_symbols", 0)
    for key, value, hi in (("sample_offset", offset, 1 << 62), ("n_symbols", n_sym, max_symbols)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= hi:
            raise PduError(f"frame {key} must be an integer in 0..{hi}, got {str(value)[:40]}", f"bad_{key}")
    for key in ("snr_db", "cfo"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, (int, float, np.floating)) and np.isfinite(value)):
            meta[key] = None  # an unknown estimate is not written, the frame still is
    meta["sample_offset"], meta["n_symbols"] = int(offset), int(n_sym)
    return meta


def write_meta(meta_path, data_path, datatype, samp_rate, center_freq, start_time, info, annotations):
    """SigMF meta for a single-capture recording. `info` keys: hw, author, description, gains
    (dict, written under the "diffsem:" extension namespace with the other app settings in
    "settings"). Annotations: {"start", "length", "seq", "snr_db", "cfo", "n_symbols"}."""
    from sigmf import SigMFFile

    fs = float(samp_rate)
    extra = {k: v for k, v in info.items() if k not in ("hw", "author", "description")}
    global_info = {"core:datatype": datatype, "core:sample_rate": fs,
                   "core:recorder": RECORDER,
                   "core:hw": str(info.get("hw", "unknown")),
                   "core:author": str(info.get("author", "")) or os.environ.get("USER", "gr-diffsem"),
                   "core:description": str(info.get("description", "gr-diffsem analog OFDM recording")),
                   "core:extensions": [{"name": "diffsem", "version": "0.1.0", "optional": True}]}
    for key, value in extra.items():
        global_info[f"diffsem:{key}"] = value
    # an empty recording (no peer ever sent a sample) still gets its meta: the SigMF library
    # cannot map an empty data file, so it is not handed one
    has_data = os.path.exists(data_path) and os.path.getsize(data_path) > 0
    handle = SigMFFile(data_file=data_path if has_data else None, global_info=global_info)
    handle.add_capture(0, metadata={"core:frequency": float(center_freq),
                                    "core:datetime": start_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    half_band = fs / 2 * float(info.get("occupied_fraction", 1.0))
    for a in annotations:
        meta = {"core:label": f"diffsem frame seq {a.get('seq')}",
                "core:freq_lower_edge": float(center_freq) - half_band,
                "core:freq_upper_edge": float(center_freq) + half_band}
        for key in ("seq", "snr_db", "cfo", "n_symbols"):
            if a.get(key) is not None:
                meta[f"diffsem:{key}"] = float(a[key]) if isinstance(a[key], float) else a[key]
        handle.add_annotation(int(a["start"]), a.get("length"), metadata=meta)
    handle.tofile(meta_path, overwrite=True)


# numpy dtypes of the SigMF datatypes a replay accepts (complex, little-endian)
IDLE_CHUNK = 256  # zeros per 10 ms once a replay has played out

_DATATYPES = {"cf32_le": (np.float32, 1.0), "ci16_le": (np.int16, 1 / 32768.0), "ci8": (np.int8, 1 / 128.0),
              "cu8": (np.uint8, None)}


class sigmf_replay(gr.sync_block):
    """A SigMF recording -> complex stream, then `tail` zero samples (so the receiver finishes the
    last frame), then a trickle of zeros until the flowgraph is stopped (finished() turns True). Datatypes: cf32_le, ci16_le, ci8, cu8 (HackRF-style 8-bit captures
    are scaled to +-1). `info()` gives sample rate, centre frequency and annotations. Unreadable
    or unsupported recordings raise EndpointError with one sentence."""

    def __init__(self, path, tail=4096, repeat=False):
        gr.sync_block.__init__(self, name="diffsem_sigmf_replay", in_sig=None, out_sig=[np.complex64])
        self.data_path, self.meta_path = sigmf_paths(path)
        self.meta = read_meta(self.meta_path)
        g = self.meta["global"]
        datatype = g.get("core:datatype", "")
        if datatype not in _DATATYPES:
            raise EndpointError(f"recording {self.meta_path} holds {datatype!r} samples; the replay reads "
                                f"{', '.join(_DATATYPES)}")
        if not os.path.isfile(self.data_path):
            raise EndpointError(f"recording data file {self.data_path} is missing")
        dtype, scale = _DATATYPES[datatype]
        raw = np.fromfile(self.data_path, dtype=dtype)
        if raw.size % 2:
            raw = raw[:-1]
        if datatype == "cu8":
            raw = (raw.astype(np.float32) - 127.5) / 128.0
        else:
            raw = raw.astype(np.float32) * scale if scale != 1.0 else raw
        self.samples = np.ascontiguousarray(raw).view(np.complex64).copy()
        # NaN/Inf would poison the receiver's FFTs and estimates: zero them, count, say so once
        bad = ~np.isfinite(self.samples)
        self.nonfinite_samples = int(np.count_nonzero(bad))
        if self.nonfinite_samples:
            self.samples[bad] = 0
            _logger(self, "sigmf_replay").warn(
                f"sigmf_replay: {self.nonfinite_samples} non-finite samples in {self.data_path} replaced by zeros")
        self.samples = np.concatenate((self.samples, np.zeros(int(tail), np.complex64)))
        self.repeat = bool(repeat)
        self._pos = 0

    def info(self) -> dict:
        g, caps = self.meta["global"], self.meta.get("captures") or [{}]
        return {"samp_rate": float(g.get("core:sample_rate", 0.0)),
                "center_freq": float(caps[0].get("core:frequency", 0.0)),
                "samples": int(self.samples.size), "annotations": self.meta.get("annotations", [])}

    def finished(self) -> bool:
        """The recording (and its tail) has been played."""
        return not self.repeat and self._pos >= self.samples.size

    def work(self, input_items, output_items):
        out = output_items[0]
        if self._pos >= self.samples.size:
            if self.repeat:
                self._pos = 0
            else:
                # Played out. Returning WORK_DONE would end the whole flowgraph and drop the
                # frames still waiting in the decoder, so idle on a trickle of zeros until the
                # app stops the flowgraph (it watches finished() and the decoder).
                time.sleep(0.01)
                out[:IDLE_CHUNK] = 0
                return min(len(out), IDLE_CHUNK)
        take = min(len(out), self.samples.size - self._pos)
        out[:take] = self.samples[self._pos:self._pos + take]
        self._pos += take
        return take

    def played(self) -> int:
        """Samples of the recording (tail included) handed on so far."""
        return min(self._pos, self.samples.size)


def read_meta(meta_path: str) -> dict:
    """The meta of a recording, validated by the sigmf package; EndpointError when unreadable."""
    import json

    from sigmf import SigMFFile
    try:
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        SigMFFile(metadata=meta).validate()
    except FileNotFoundError:
        raise EndpointError(f"no SigMF recording at {meta_path}") from None
    except Exception as exc:
        raise EndpointError(f"SigMF meta {meta_path} is not valid: {str(exc).splitlines()[0]}") from None
    return meta


# --- SDR endpoints ----------------------------------------------------------------------------------

def uhd_endpoint(direction, samp_rate, center_freq, gain, device_args="", antenna=""):
    """A gr-uhd usrp_source ("rx") or usrp_sink ("tx"), tuned; EndpointError when no USRP answers
    or gr-uhd is not installed."""
    try:
        from gnuradio import uhd
    except ImportError as exc:
        raise EndpointError(f"gr-uhd is not installed ({exc}): apt install gnuradio (it brings gr-uhd) "
                            "or python3-uhd, or use --source/--sink soapy for a HackRF") from None
    args = str(device_args)
    try:
        stream_args = uhd.stream_args(cpu_format="fc32", channels=[0])
        dev = uhd.usrp_source(args, stream_args) if direction == "rx" else uhd.usrp_sink(args, stream_args, "")
        dev.set_samp_rate(float(samp_rate))
        dev.set_center_freq(float(center_freq), 0)
        dev.set_gain(float(gain), 0)
        if antenna:
            dev.set_antenna(str(antenna), 0)
    except RuntimeError as exc:
        raise EndpointError(f"no USRP found through UHD for device arguments {args!r} "
                            f"({str(exc).splitlines()[0].strip()})") from None
    return dev


def soapy_endpoint(direction, samp_rate, center_freq, gain, device_args="driver=hackrf", antenna=""):
    """A gr-soapy source ("rx") or sink ("tx") (HackRF by default); EndpointError when none answers
    or gr-soapy is not installed."""
    try:
        from gnuradio import soapy
    except ImportError as exc:
        raise EndpointError(f"gr-soapy is not installed ({exc}): apt install gnuradio (3.10 brings gr-soapy) "
                            "and soapysdr-module-hackrf for a HackRF") from None
    args = str(device_args or "driver=hackrf")
    try:
        make = soapy.source if direction == "rx" else soapy.sink
        dev = make(args, "fc32", 1, "", "", [""], [""])
        dev.set_sample_rate(0, float(samp_rate))
        dev.set_frequency(0, float(center_freq))
        dev.set_gain(0, float(gain))
        if antenna:
            dev.set_antenna(0, str(antenna))
    except RuntimeError as exc:
        raise EndpointError(f"no SoapySDR device found for device arguments {args!r} "
                            f"({str(exc).splitlines()[0].strip()})") from None
    return dev
