"""Model inference off the GNU Radio scheduler: a worker thread with a bounded queue that batches
the frames waiting in it, drops by a counted policy when it cannot keep up, and measures latency.

The worker is generic: `process(items) -> results` is any callable over a list of items (one
model call per batch). `FrameEncoder` and `FrameDecoder` below are those callables for the ONNX
encoder and decoders of the ONNX contract (docs/design/conventions.md), so the GNU Radio blocks stay thin.

Drop policies when the queue is full: "oldest" (default: a live link wants the freshest image,
so the stalest waiting frame is dropped) or "newest" (the arriving frame is refused). Every drop
is counted and reported through `on_drop(item, reason)`, so frames are never lost silently.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

DROP_POLICIES = ("oldest", "newest")
_LATENCY_WINDOW = 4096  # most recent latencies kept for percentiles

log = logging.getLogger(__name__)


class SampleWindow:
    """The last `size` samples of a float series in a ring allocated up front (float64, 8 bytes
    a sample): its memory is the same on the first frame as after a day. A deque of Python floats
    grew by ~32 bytes a sample until full (4096 latencies: 130 kB per worker, reached only
    after 3.5 minutes of a 20 frame/s link). Not thread-safe: the caller locks."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError("SampleWindow size must be >= 1")
        self._ring = np.zeros(int(size), dtype=np.float64)
        self._next = 0   # slot of the next sample
        self._count = 0  # samples held (<= size)

    @property
    def maxlen(self) -> int:
        return self._ring.size

    def __len__(self) -> int:
        return self._count

    def append(self, value: float) -> None:
        self._ring[self._next] = value
        self._next = (self._next + 1) % self._ring.size
        self._count = min(self._count + 1, self._ring.size)

    def values(self) -> np.ndarray:
        """A copy of the samples held, oldest first."""
        if self._count < self._ring.size:
            return self._ring[:self._count].copy()
        return np.concatenate((self._ring[self._next:], self._ring[:self._next]))


@dataclass
class Job:
    item: object
    t_submit: float = field(default_factory=time.perf_counter)


class InferenceWorker:
    """Run `process(list_of_items) -> list_of_results` on a worker thread.

    `emit(item, result, info)` is called on the worker thread for each result, in submission
    order within a batch; `info` has latency_ms (submit -> result), batch_size, queue_ms.
    `on_drop(item, reason)` is called for each dropped item (reason "queue_full" or
    "error: ..."); a failing batch drops its items with the error and the worker carries on.
    An emit that raises is logged and counted (`emit_failed`); the rest of the batch still goes out.
    `on_batch(n)` (optional) runs after each batch, e.g. to publish the worker's state.
    """

    def __init__(self, process, emit, *, max_queue: int = 16, max_batch: int = 8,
                 drop_policy: str = "oldest", on_drop=None, on_batch=None, name: str = "inference",
                 logger=None):
        if drop_policy not in DROP_POLICIES:
            raise ValueError(f"drop_policy {drop_policy!r}: choose one of {DROP_POLICIES}")
        if max_queue < 1 or max_batch < 1:
            raise ValueError("max_queue and max_batch must be >= 1")
        self.process, self.emit, self.on_drop, self.on_batch = process, emit, on_drop, on_batch
        self.max_queue, self.max_batch, self.drop_policy = int(max_queue), int(max_batch), drop_policy
        self.name = name
        self.log = logger or log
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._thread = None
        self._stopping = False
        self._in_flight = 0
        self._latencies = SampleWindow(_LATENCY_WINDOW)
        self.counters = {"submitted": 0, "processed": 0, "dropped_queue": 0, "failed": 0, "emit_failed": 0,
                         "batches": 0}
        self.busy_s = 0.0

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self):
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, drain: bool = True, timeout: float = 10.0) -> bool:
        """Stop the thread; with drain=True the frames already queued are processed first.
        Frames still queued when it stops (drain=False or timeout) are dropped and counted."""
        if drain:
            self.wait_idle(timeout)
        with self._cond:
            self._stopping = True
            left = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in left:
            self._drop(job.item, "stopped")
        if self._thread is not None:
            self._thread.join(timeout)
            alive = self._thread.is_alive()
            self._thread = None if not alive else self._thread
            return not alive
        return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or being processed; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
        return True

    # --- producer side (called from the scheduler's message thread: never blocks on inference) --
    def submit(self, item, t_submit: float | None = None) -> bool:
        """Queue `item`; returns False when it was refused (policy "newest" and queue full)."""
        job = Job(item) if t_submit is None else Job(item, t_submit)
        dropped = None
        with self._cond:
            self.counters["submitted"] += 1
            if len(self._queue) >= self.max_queue:
                if self.drop_policy == "newest":
                    dropped = job
                else:
                    dropped = self._queue.popleft()
                    self._queue.append(job)
            else:
                self._queue.append(job)
            self._cond.notify()
        if dropped is not None:
            self.counters["dropped_queue"] += 1
            self._drop(dropped.item, "queue_full")
            return dropped is not job
        return True

    def _drop(self, item, reason):
        if self.on_drop is not None:
            try:
                self.on_drop(item, reason)
            except Exception:  # a broken callback must not kill the producer or the worker
                self.log.exception("%s: on_drop callback failed", self.name)

    # --- worker --------------------------------------------------------------------------------
    def _run(self):
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                n = min(len(self._queue), self.max_batch)
                jobs = [self._queue.popleft() for _ in range(n)]
                self._in_flight = n
            t0 = time.perf_counter()
            try:
                results = self.process([j.item for j in jobs])
                if len(results) != len(jobs):
                    raise RuntimeError(f"process returned {len(results)} results for {len(jobs)} items")
            except Exception as exc:  # bad batch: count, log, drop, keep serving
                self.log.error("%s: batch of %d failed: %s", self.name, len(jobs), exc)
                with self._cond:
                    self.counters["failed"] += len(jobs)
                for j in jobs:
                    self._drop(j.item, f"error: {exc}")
                results = None
            t1 = time.perf_counter()
            self.busy_s += t1 - t0
            if results is not None:
                for j, r in zip(jobs, results):
                    latency = (time.perf_counter() - j.t_submit) * 1e3
                    with self._cond:  # stats() reads the window from another thread
                        self._latencies.append(latency)
                    info = {"latency_ms": latency, "queue_ms": (t0 - j.t_submit) * 1e3,
                            "infer_ms": (t1 - t0) * 1e3, "batch_size": len(jobs)}
                    try:
                        self.emit(j.item, r, info)
                    except Exception:
                        self.log.exception("%s: emit failed", self.name)
                        with self._cond:
                            self.counters["emit_failed"] += 1
                with self._cond:
                    self.counters["processed"] += len(jobs)
                    self.counters["batches"] += 1
            if self.on_batch is not None:
                try:
                    self.on_batch(len(jobs))
                except Exception:
                    self.log.exception("%s: on_batch callback failed", self.name)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    # --- reporting ------------------------------------------------------------------------------
    def stats(self) -> dict:
        with self._cond:
            lat = self._latencies.values()
            out = dict(self.counters)
            out["queue_depth"] = len(self._queue)
        out["mean_batch"] = out["processed"] / out["batches"] if out["batches"] else 0.0
        out["latency_ms_p50"] = float(np.percentile(lat, 50)) if lat.size else None
        out["latency_ms_p99"] = float(np.percentile(lat, 99)) if lat.size else None
        out["busy_s"] = self.busy_s
        return out


# --- the models of the ONNX contract as batch callables ------------------------------------------

DECODER_MODES = ("diffusion", "deepjscc")
MAX_NOISE_VAR = 1e4  # = channel.MIN_GAIN floor: what training saw for the deepest fade
# What the decoders were trained on (models/recipes: SNR -5..25 dB; a selective channel's strong
# subcarriers give noise variances down to ~10^-3.5). Receiver reports outside it are clamped:
# a noiseless recording estimates ~140 dB, which a network never saw.
TRAINED_SNR_DB = (-5.0, 25.0)
TRAINED_NOISE_VAR = (10 ** -3.5, MAX_NOISE_VAR)


def clamp_to_trained(snr_db, noise_var):
    """(snr_db, noise_var) limited to the range the decoders were trained on, as float32 arrays."""
    return (np.clip(np.asarray(snr_db, np.float32), *TRAINED_SNR_DB).astype(np.float32),
            np.clip(np.asarray(noise_var, np.float32), *TRAINED_NOISE_VAR).astype(np.float32))
def load_model(card_path, provider: str = "auto", cache_dir=None, threads: int | None = None,
               max_batch: int = 64):
    """An OnnxModel for `card_path` (sha256 and I/O checked against the card, provider logged).

    Raises cards.CardError (ModelFileMissing, ChecksumMismatch, runtime.ModelMismatch) or
    runtime.ProviderUnavailable with a message naming the file and what to do.
    """
    from diffsem.runtime import OnnxModel

    # max_batch sizes the TensorRT shape profile: it must cover the worker's largest batch
    return OnnxModel(card_path, provider=provider or "auto", cache_dir=cache_dir or None, threads=threads,
                     max_batch=max(1, int(max_batch)))


def _input_names(model) -> set:
    card = getattr(model, "card", None)
    if card and card.get("inputs"):
        return {spec["name"] for spec in card["inputs"]}
    names = getattr(model, "input_names", None)
    return set(names) if names else set()


def symbols_to_array(symbols: np.ndarray) -> np.ndarray:
    """complex [..., k] -> float32 [..., k, 2] (re, im), the contract's layout."""
    symbols = np.asarray(symbols)
    return np.stack((symbols.real, symbols.imag), axis=-1).astype(np.float32)


def array_to_symbols(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float32)
    return (arr[..., 0] + 1j * arr[..., 1]).astype(np.complex64)


@dataclass
class EncodeRequest:
    image: np.ndarray          # [28, 28] float32 in [0, 1]
    meta: dict = field(default_factory=dict)


# The SNR an encoder designs for when the transmitter is not told the channel's (semantic_encoder's
# default). The codec's graphs scale their symbols per SNR (nn.models.SnrPowerMap), so a decoder
# must be told the SNR its encoder ran at, not the channel's: the channel reaches it through the
# per-symbol noise variances.
DESIGN_SNR_DB = 10.0


@dataclass
class DecodeRequest:
    symbols: np.ndarray        # [k] complex64, equalised
    snr_db: float              # estimated Es/N0 (dB)
    noise_var: np.ndarray      # [k] float32, per-symbol noise variance after equalisation
    seq: int
    meta: dict = field(default_factory=dict)


class FrameEncoder:
    """images -> unit-power symbols through the encoder model (one call per batch)."""

    def __init__(self, model, snr_db: float = DESIGN_SNR_DB):
        self.model = model
        self.snr_db = float(snr_db)
        self.wants_snr = "snr_db" in _input_names(model) or not _input_names(model)

    def __call__(self, requests: list[EncodeRequest]) -> list[np.ndarray]:
        images = np.stack([np.asarray(r.image, np.float32).reshape(1, 28, 28) for r in requests])
        inputs = {"image": images}
        if self.wants_snr:
            inputs["snr_db"] = np.full(len(requests), self.snr_db, np.float32)
        out = self.model(**inputs)["symbols"]
        symbols = array_to_symbols(out)
        if not np.all(np.isfinite(symbols)):
            raise FloatingPointError("encoder produced non-finite symbols")
        return list(symbols)


class FrameDecoder:
    """Received symbols (+ SNR estimate, per-symbol noise variance) -> images, one model call per batch.

    mode "diffusion": a distilled student, whose `noise` input (the sampler's source noise) is
    drawn from numpy's default_rng([seed, seq]) (times the sampling temperature: the card's
    `default_temperature` unless given, naming.DEFAULT_TEMPERATURE without one) so a run is reproducible frame by frame whatever the batching;
    mode "deepjscc": the DeepJSCC decoder (no noise input).
    encoder_snr_db: the SNR the transmitter's encoder ran at, which the model is conditioned on
    (DESIGN_SNR_DB); None conditions it on each frame's estimated SNR instead (what the codec
    was trained with when the transmitter adapts its encoder to the channel).
    """

    def __init__(self, model, k: int, mode: str = "diffusion", seed: int = 0, temperature: float | None = None,
                 encoder_snr_db: float | None = DESIGN_SNR_DB):
        from diffsem.runtime.naming import temperature_of_card
        if mode not in DECODER_MODES:
            raise ValueError(f"decoder mode {mode!r}: choose one of {DECODER_MODES}")
        self.model, self.k, self.mode, self.seed = model, int(k), mode, int(seed)
        self.encoder_snr_db = None if encoder_snr_db is None else float(encoder_snr_db)
        if self.encoder_snr_db is not None and not np.isfinite(self.encoder_snr_db):
            raise ValueError(f"encoder_snr_db {encoder_snr_db!r} is not a finite number")
        if temperature is None:  # the card's calibrated value (docs/design/decisions.md#sampling-temperature), as diffsem eval uses
            temperature = temperature_of_card(getattr(model, "card", None) or {})
        self.temperature = float(temperature)
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature {temperature} out of range [0, 2]")
        names = _input_names(model)
        self.wants_noise = ("noise" in names) if names else mode == "diffusion"
        if mode == "diffusion" and names and "noise" not in names:
            raise ValueError("diffusion mode needs a student model with a `noise` input; "
                             "this model has none (use mode='deepjscc')")

    def source_noise(self, seq: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(seq) & 0xFFFFFFFF])
        return self.temperature * rng.standard_normal((1, 28, 28), dtype=np.float32)

    def __call__(self, requests: list[DecodeRequest]) -> list[np.ndarray]:
        # The receiver may report what training never saw (a noiseless input estimates ~140 dB, a
        # deep fade an infinite variance): clamp to the trained range (diffsem.channel).
        told = [r.snr_db if self.encoder_snr_db is None else self.encoder_snr_db for r in requests]
        snr_db, noise_var = clamp_to_trained(told,
                                             np.stack([np.asarray(r.noise_var, np.float32) for r in requests]))
        inputs = {"symbols": np.stack([symbols_to_array(r.symbols) for r in requests]),
                  "snr_db": snr_db, "noise_var": noise_var}
        if self.wants_noise:
            inputs["noise"] = np.stack([self.source_noise(r.seq) for r in requests])
        images = np.asarray(self.model(**inputs)["image"], np.float32).reshape(len(requests), 28, 28)
        return list(np.clip(np.nan_to_num(images, nan=0.0), 0.0, 1.0))


def check_decode_inputs(symbols, noise_var, snr_db, k: int) -> str | None:
    """Why a received frame cannot go to a k-symbol decoder, or None if it can.

    Non-finite symbols or noise variances are reported too: a NaN would poison the whole batch.
    """
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or symbols.size != k:
        return f"expected {k} symbols, got shape {symbols.shape}"
    if not np.all(np.isfinite(symbols)):
        return "symbols contain NaN/Inf"
    if noise_var is not None:
        noise_var = np.asarray(noise_var)
        if noise_var.ndim != 1 or noise_var.size != k:
            return f"expected {k} noise variances, got shape {noise_var.shape}"
        if np.any(np.isnan(noise_var)) or np.any(noise_var < 0):
            return "noise_var contains NaN or negative values"
    if snr_db is None or not np.isfinite(snr_db):
        return f"snr_db missing or not finite ({snr_db!r})"
    return None
