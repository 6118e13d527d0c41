"""The analog OFDM burst receiver, plain numpy (no GNU Radio): everything the RX does after the
stock Schmidl & Cox detector (gr-digital ofdm_sync_sc_cfb) has marked a frame.

Why not the stock header_payload_demux chain: its header round trip (demux -> header FFT ->
chanest -> equaliser -> decoder -> parser -> message back to the demux) holds every frame until
the header has crossed ~8 scheduler threads; with the Python stages an analog receiver needs
(per-frame CFO, header-copy combining, payload estimation) that round trip limited the RX to
~0.15 Msps on 2 cores with the demux spinning while it waited: below the slowest rate of a
HackRF. Here one object handles a whole frame in one pass over a sample buffer, so a frame costs
a few hundred microseconds of numpy and no thread hops; the stock blocks keep the sample-rate
work (sync, FFTs at the TX) and the header stays the stock packet_header_ofdm format.

Per trigger (sample index t of the detector's plateau, fine CFO estimate):
1. derotate the frame's samples by its own CFO (a phase ramp from the frame start; triggers
   inside an accepted frame are ignored, so a spurious one cannot change the correction);
2. FFT the preambles and header copies; integer carrier offset from the preambles;
3. least-squares channel on the second preamble, denoised (FrameEstimator.smooth_channel);
4. header copies combined maximum-ratio after their common phase (combine_header); CRC-8 of the
   stock header plus its zero fill checked;
5. data-aided refinement: with the header known, the header copies are extra training symbols:
   the channel is re-estimated on the preamble and all copies (estimation noise / (1 + copies))
   and the residual CFO is measured on every active carrier of the copies and removed in the time
   domain before the payload FFT (no inter-carrier interference left from it);
6. payload FFT, FrameEstimator.estimate (pilot phase tracking, noise from guards, pilots and the
   training residual, per-symbol noise variance).
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from diffsem import phy
from diffsem.phy.ofdm import DEFAULT_LAYOUT, OfdmLayout
from diffsem.phy.sync import DEFAULT_MF_THRESHOLD, PreambleDetector  # noqa: F401 (the RX block's default)

HEADER_FIELDS_BITS = phy.HEADER_BITS_LEN + phy.HEADER_BITS_SEQ + 8
# Schmidl & Cox metric threshold (gr-digital's default is 0.9, which detects nothing below ~13 dB;
# the metric is about (SNR/(1+SNR))^2). Measured with this receiver (300 frames, AWGN, seed 0):
# detected at 0 dB 20 % (0.3), 42 % (0.25), 64 % (0.2), 77 % (0.15); false triggers on noise per
# frame at 20 dB 0.01, 0.03, 0.18, 0.8 -- each costs one header decode (a fraction of a frame's
# work) and is refused by the header checks. 0.2 is the knee of Schmidl & Cox alone.
# With the matched filter (diffsem.phy.sync, detecting down to -3 dB) beside it, Schmidl & Cox
# only has to catch what the matched filter cannot: carrier offsets beyond ~0.8 subcarrier, at
# SNRs where its metric is high; 0.4 keeps its false triggers near zero.
SC_ONLY_SYNC_THRESHOLD = 0.2
DEFAULT_SYNC_THRESHOLD = 0.4
# A stream oversampled 2x (a recording made or resampled at twice the link's rate) holds no
# frame this receiver can find: while no frame has come for RATE_PROBE_IDLE samples, a second
# receiver runs on the stream decimated by 2 (pairs averaged) and each frame it decodes is
# reported, not delivered ("wrong_rate"): the rate is the user's to fix. It costs about half of
# this receiver's idle work, and nothing while frames arrive.
RATE_PROBE_IDLE = 1 << 18
# The preamble check: a real preamble's LS estimate is mostly explained by a few channel taps
# (half of its energy at 0 dB, all of it at high SNR), noise by ~taps/52 of it. Below
# `min_preamble_fit` (0.25) and above this floor a trigger is a frame only if its header then
# decodes (BPSK-like and CRC-checked), else it is counted as a false trigger, not a lost frame:
# at -3 dB AWGN a third of the real preambles fall between the two.
WEAK_PREAMBLE_FIT = 0.12
# The integer carrier offset's per-carrier products are capped at this many times their median
# (capped_products).
OFFSET_PRODUCT_CAP = 4.0


def capped_products(prod: np.ndarray) -> np.ndarray:
    """The integer-offset search's per-carrier preamble products [..., candidates, carriers], each
    magnitude capped at OFFSET_PRODUCT_CAP times the median of its frame's: a narrowband
    interferer 10 dB above the signal on 6 carriers makes products ~100 times the others' with
    random phases, which picked a wrong offset for a quarter of the frames (the frame then lost).
    Where the pattern lines up the products add in phase whatever their size, so the capped sum
    picks the same offset on clean frames."""
    mag = np.abs(prod)
    cap = OFFSET_PRODUCT_CAP * np.median(mag.reshape(mag.shape[:-2] + (-1,)), axis=-1)[..., None, None]
    return prod * np.minimum(1.0, cap / np.maximum(mag, 1e-300))


@dataclass
class ReceivedFrame:
    seq: int
    n_symbols: int
    estimate: phy.FrameEstimate
    cfo: float               # subcarrier spacings (integer + fine + data-aided residual)
    sample_offset: int       # absolute input sample where the frame (first preamble's CP) starts
    salvaged: bool = False   # header CRC failed; decoded with the link's fixed k (decode_header_known_length)


@dataclass
class _Header:
    """A frame whose header passed; waiting for its payload samples."""
    start: int
    n_symbols: int
    seq: int
    cfo: float               # fine CFO to remove (subcarrier spacings), data-aided residual included
    ls_taps: np.ndarray      # fft_len, fft-shifted: averaged LS estimate at the preamble's phase
    training: int            # training symbols averaged into ls_taps
    selection: tuple         # the preamble fit's delay and taps (FrameEstimator.smooth_channel)
    anchors: tuple | None    # (t, corr) of the decoded header copies for the payload's phase fit
    spread: tuple | None     # (energy per active carrier, dof per carrier) of the training estimates around their mean
    salvaged: bool = False


_BLAS = None


def _single_threaded_blas():
    """Context that keeps numpy's BLAS/LAPACK on one thread while the receiver works. Its products
    are tiny (52x52); OpenBLAS ran them (and the occasional least-squares table) on two threads
    whose spin-wait then held the other core for ~0.1 s: measured 1.3-2x the receiver's CPU, the
    core the flowgraph's other blocks needed. No-op where threadpoolctl is absent."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
            _BLAS = ThreadpoolController()
        except ImportError:  # pragma: no cover - threadpoolctl is in requirements.txt
            _BLAS = False
    if not _BLAS:
        return contextlib.nullcontext()
    return _BLAS.limit(limits=1, user_api="blas")


def parse_header(bits: np.ndarray, n_data: int):
    """(n_symbols, seq) from hard header bits (LSB first: 12-bit length, 12-bit sequence number,
    CRC-8 over both, zero fill to n_data bits), or None if the CRC or the fill is wrong."""
    bits = np.asarray(bits, dtype=np.int64)
    weights = 1 << np.arange(12)
    n_symbols = int(bits[:12] @ weights)
    seq = int(bits[12:24] @ weights)
    crc = int(bits[24:32] @ weights[:8])
    if bits[HEADER_FIELDS_BITS:n_data].any() or not 0 < n_symbols <= phy.MAX_SYMBOLS_PER_FRAME:
        return None
    if phy.crc8(bytes((n_symbols & 0xFF, n_symbols >> 8, seq & 0xFF, seq >> 8))) != crc:
        return None
    return n_symbols, seq


# Soft header decoding: the CRC-8 (poly 0x07) has Hamming distance 4 over the 24 header bits, so
# flipping one or two of the least reliable bits until it passes corrects what the 4 combined
# copies get wrong at 0 dB (bit error rate ~2e-3 there: 1 error in 15 headers, 2 in 400) and
# still leaves one more error detected. The zero fill is known: a few wrong fill bits do not
# lose the frame (noise triggers are refused by the matched filter and the preamble fit first).
CHASE_BITS = 8        # least reliable field bits tried
CHASE_FLIPS = 2       # at most this many flipped at once
MAX_FILL_ERRORS = 3   # of the n_data - 32 zero-fill bits


def _chase_candidates():
    from itertools import combinations
    out = []
    for n in range(1, CHASE_FLIPS + 1):
        out += list(combinations(range(CHASE_BITS), n))
    return out


_CHASE = _chase_candidates()


def decode_header(soft: np.ndarray, n_data: int):
    """(n_symbols, seq, flipped bits) from soft header values (real part: >0 is bit 1), or None:
    hard decisions first; if the CRC fails, the candidates that flip up to CHASE_FLIPS of the
    CHASE_BITS least reliable field bits, the cheapest (smallest sum |soft| flipped) that passes.
    The zero fill may hold up to MAX_FILL_ERRORS wrong bits."""
    soft = np.asarray(soft, dtype=np.float64)
    bits = soft > 0
    if int(np.count_nonzero(bits[HEADER_FIELDS_BITS:n_data])) > MAX_FILL_ERRORS:
        return None
    fields = bits.copy()
    fields[HEADER_FIELDS_BITS:] = False
    parsed = parse_header(fields, n_data)
    if parsed is not None:
        return parsed + (0,)
    rel = np.abs(soft[:HEADER_FIELDS_BITS])
    weakest = np.argsort(rel)[:CHASE_BITS]
    best = None
    for combo in _CHASE:
        idx = weakest[list(combo)]
        cost = float(rel[idx].sum())
        if best is not None and cost >= best[0]:
            continue
        trial = fields.copy()
        trial[idx] = ~trial[idx]
        parsed = parse_header(trial, n_data)
        if parsed is not None:
            best = (cost, parsed, len(combo))
    return None if best is None else best[1] + (best[2],)


# the best candidate must beat the next by this many median |soft| bits. Headers that failed
# the CRC chase, +-1 bits plus N(0, 0.6^2) / N(0, 0.9^2), 1500 trials each: margin 2 salvaged
# 247 / 297 with 1 / 33 wrong seqs, margin 3 148 / 147 with 0 / 10 wrong, margin 4 61 / 64 with 0 / 1.
SALVAGE_MARGIN = 3.0
# A frame's seq is most likely a few after the last header that passed its CRC (the frames lost
# in between): those SALVAGE_WINDOW are searched first, the best must beat the window's runner-up
# by SALVAGE_WINDOW_MARGIN and every seq outside it by SALVAGE_OUTSIDE_MARGIN typical bits. Where
# a seq outside scores best (a TX restart, a long outage) the search over all 4096 needs
# SALVAGE_RESYNC_MARGIN. Headers that failed the CRC chase (+-1 bits plus N(0, sd^2); 0, 1, 2, ...
# frames lost since the last good header with probability 1/2, 1/4, 1/8, ...; 3000 trials):
# sd 0.6: 587 of 729 salvaged, 0 wrong (all 4096 at margin 3: 231, 0 wrong); sd 0.9: 1107 of 2461,
# 5 wrong (361, 8 wrong); sd 1.2: 522 of 2729, 43 wrong (176, 54 wrong).
SALVAGE_WINDOW = 16  # 0: all 4096 alike (what `diffsem measure phy --only salvage` compares with)
SALVAGE_WINDOW_MARGIN = 2.0
SALVAGE_OUTSIDE_MARGIN = 1.0
SALVAGE_RESYNC_MARGIN = 4.0


@functools.lru_cache(maxsize=4)
def _known_length_codebook(n_symbols: int, n_data: int) -> np.ndarray:
    """[SEQ_MODULO, n_data] +-1: the header bits (fields and zero fill) of every seq for a known length."""
    return np.stack([np.where(phy.header_bits(n_symbols, seq, n_data) > 0, 1.0, -1.0)
                     for seq in range(phy.SEQ_MODULO)])


def decode_header_known_length(soft: np.ndarray, n_data: int, n_symbols: int, expect: int | None = None):
    """Salvage a header whose CRC failed when the link's frame length is fixed: the length field
    is then known, so only the 12-bit seq is unknown and the 4096 candidate headers (zero fill
    included) are few enough to decode by maximum likelihood (correlation of the soft bits with
    each). expect: the seq after the last header that passed its CRC, if any; the SALVAGE_WINDOW
    seqs from it are searched first (see SALVAGE_WINDOW_MARGIN). (n_symbols, seq, 0) when one
    candidate stands out by its margin, else None."""
    soft = np.asarray(soft, dtype=np.float64)[:n_data]
    score = _known_length_codebook(int(n_symbols), int(n_data)) @ soft
    typical = float(np.median(np.abs(soft)))
    margin = SALVAGE_MARGIN
    if expect is not None and SALVAGE_WINDOW > 0:
        window = (int(expect) + np.arange(SALVAGE_WINDOW)) % phy.SEQ_MODULO
        inside = score[window]
        best = int(np.argmax(inside))
        outside = np.delete(score, window).max()
        runner_up = np.delete(inside, best).max()
        if (inside[best] - runner_up >= SALVAGE_WINDOW_MARGIN * typical
                and inside[best] - outside >= SALVAGE_OUTSIDE_MARGIN * typical):
            return int(n_symbols), int(window[best]), 0
        if outside <= inside[best]:  # the likeliest is expected but not clear: no guess from elsewhere
            return None
        margin = SALVAGE_RESYNC_MARGIN
    top2 = np.partition(score, -2)[-2:]
    if top2[1] - top2[0] < margin * typical:
        return None
    return int(n_symbols), int(np.argmax(score)), 0


class BurstReceiver:
    """Stream in (samples + the detector's triggers and fine CFO), frames out.

    `push(samples, triggers, cfos)`: samples (complex64, consecutive), trigger positions relative
    to this chunk's first sample (the detector's plateau, as gr-digital's ofdm_sync_sc_cfb marks
    it) and the fine CFO there (subcarrier spacings). Returns the list of events completed:
    ("frame", ReceivedFrame); ("false_trigger", why): no preamble where the trigger points (the
    detector fired on noise); ("header_fail", why): a preamble whose header is not BPSK or fails
    its CRC or zero fill (a frame lost); ("nonfinite", what); ("wrong_rate", what): a frame found
    at twice the sample rate (see RATE_PROBE_IDLE). A frame whose burst ends before its header's
    length (estimate.cut > 0) is delivered with the missing tail erased, and the search for the
    next frame goes on from where its burst ended.
    Samples are kept only as long as a pending trigger may need them.
    With `mf_threshold` > 0 (the default) the receiver also finds frames itself with a matched
    filter on the known preambles (diffsem.phy.sync.PreambleDetector, down to -3 dB); the given
    triggers then only add frames it missed (a carrier offset beyond ~0.8 subcarrier). Header
    decoding is soft (decode_header: CRC-checked flips of the least reliable bits).
    """

    def __init__(self, layout: OfdmLayout = DEFAULT_LAYOUT, header_repeats: int = 4,
                 phase_tracking: str = "linear", payload_scale: float = 1.0,
                 timing_advance: int | None = None, min_header_quality: float = 3.0,
                 max_carr_offset: int = 3, data_aided: bool = True, min_preamble_fit: float = 0.25,
                 mf_threshold: float = DEFAULT_MF_THRESHOLD, fixed_k: int = 0, rate_probe: bool = True):
        self.layout = layout
        self._probe_args = None
        if rate_probe and mf_threshold > 0:
            self._probe_args = dict(layout=layout, header_repeats=header_repeats, phase_tracking=phase_tracking,
                                    payload_scale=payload_scale, mf_threshold=mf_threshold, fixed_k=fixed_k,
                                    rate_probe=False)
        self.fixed_k = int(fixed_k)  # the link's frame length when fixed (0 = not): salvages failed headers
        self._last_seq = None  # of the last header that passed its CRC: where a salvage looks first
        self.repeats = int(header_repeats)
        self.sym_len = layout.fft_len + layout.cp_len
        # The detector marks the middle of its timing plateau, ~12 samples into the cyclic prefix
        # at high SNR with a low threshold: starting the FFT windows 3 samples later than
        # gr-digital leaves margin for multipath, more would let the timing jitter at 5 dB (about
        # -7..+10 samples) reach the next symbol.
        self.timing_advance = min(3, layout.cp_len // 4) if timing_advance is None else int(timing_advance)
        self.estimator = phy.FrameEstimator(layout, phase_tracking=phase_tracking, payload_scale=payload_scale,
                                            symbols_before_payload=1 + self.repeats)
        self.min_header_quality = float(min_header_quality)
        self.min_preamble_fit = float(min_preamble_fit)
        self.max_carr_offset = int(max_carr_offset)
        self.data_aided = bool(data_aided)
        n = layout.fft_len
        self.half = n // 2
        self.sync1, self.sync2 = phy.sync_words(layout)
        self.data = np.asarray(self.estimator.data)
        self.pilots = np.asarray(self.estimator.pilots)
        self.active = self.estimator.active
        self.cells = np.asarray(self.estimator.serializer_carriers)
        self.cp = layout.cp_len
        self.header_syms = 2 + self.repeats
        self._s1_idx = np.flatnonzero(self.sync1)
        self._s12 = np.conj(self.sync1[self._s1_idx]) * self.sync2[self._s1_idx]
        self._copy_gather = phy.header_bit_of_carrier(self.repeats, layout)
        self._idx_d, self._idx_p = self.estimator._idx_d, self.estimator._idx_p
        self._scrambler = phy.header_scrambler(self.repeats, layout)
        self._pilot_row = np.asarray(layout.pilot_symbols, dtype=np.float64)[None, :]
        offsets = [c for c in range(-self.max_carr_offset, self.max_carr_offset + 1)
                   if 0 <= self._s1_idx.min() + c and self._s1_idx.max() + c < n]
        self._offsets = np.asarray(offsets or [0])
        self._offset_idx = self._s1_idx[None, :] + self._offsets[:, None]
        self._fftshift = np.fft.fftshift(np.arange(n))
        # FFT window positions (samples from the frame start) of every symbol, for derotation
        self._win = self.cp + np.arange(n)[None, :] + self.sym_len * np.arange(self.header_syms + layout.n_ofdm_symbols(phy.MAX_SYMBOLS_PER_FRAME))[:, None]
        self.buf = np.zeros(0, dtype=np.complex64)
        self.buf_start = 0            # absolute index of buf[0]
        self.pending: deque = deque()  # (absolute trigger index, fine cfo, from the matched filter)
        self.waiting: _Header | None = None
        self.busy_until = 0           # triggers before this sample lie inside an accepted frame
        # matched-filter detection (diffsem.phy.sync) beside the given triggers; 0 = off
        self.detector = PreambleDetector(layout, mf_threshold) if mf_threshold > 0 else None
        self._held: list = []         # (trigger index, cfo, from the matched filter) not yet ordered
        self._recent_mf: deque = deque(maxlen=16)  # matched-filter triggers handed on lately
        self.detections = {"matched_filter": 0, "schmidl_cox": 0, "schmidl_cox_merged": 0}
        # the 2x-rate probe (RATE_PROBE_IDLE): its receiver, the sample it expects next, a
        # sample left over from pairing, where it started, the first frame delivered while it
        # ran; the start of the last frame delivered
        self._probe, self._probe_next, self._probe_left = None, -1, np.zeros(0, np.complex64)
        self._probe_origin = 0
        self._probe_until = None      # the first frame delivered while the probe ran
        self._last_frame_at = None

    # ------------------------------------------------------------------ stream bookkeeping
    def push(self, samples: np.ndarray, triggers=(), cfos=()) -> list:
        with _single_threaded_blas():
            return self._push(samples, triggers, cfos)

    def _push(self, samples: np.ndarray, triggers=(), cfos=()) -> list:
        base, samples = self._ingest(samples, triggers, cfos)
        events = []
        while True:
            if self.waiting is not None:
                if not self._finish(self.waiting, events):
                    break
                self.waiting = None
                continue
            if not self.pending:
                break
            trig, cfo, from_mf = self.pending[0]
            start = self._header_start(trig)
            if start - self.cp < self.buf_start or self._inside_frame(trig):
                self.pending.popleft()
                continue
            if not self._header_in(start):
                break
            self.pending.popleft()
            self.waiting = self._next_header(start, cfo, events, from_mf)
        self._complete(events)
        self._trim()
        if self._probe_args is not None:
            self._probe_rate(samples, base, events)
        return events

    def _ingest(self, samples, triggers, cfos):
        """Append a chunk to the buffer; its triggers (and the matched filter's) to `pending`.
        Returns (the chunk's first absolute sample, the chunk as complex64)."""
        base = self.buf_start + self.buf.size
        samples = np.asarray(samples, dtype=np.complex64)
        if self.detector is None:
            for t, c in zip(triggers, cfos):
                self.pending.append((base + int(t), float(c), False))
        else:
            self._merge_triggers(samples, base, triggers, cfos)
        self.buf = np.concatenate((self.buf, samples))
        return base, samples

    def _header_start(self, trig: int) -> int:
        """Absolute sample where the header of a frame triggered at `trig` starts."""
        return trig - self.sym_len + self.timing_advance

    def _header_in(self, start: int) -> bool:
        """Whether the buffer holds the header starting at `start` (+ cp: room to move the
        windows later, see _retime)."""
        return start + self.header_syms * self.sym_len + self.cp <= self.buf_start + self.buf.size

    def _header_failure(self, explained: float) -> str | None:
        """What a failed header counts as, from the share of the LS energy the preamble fit
        explains: "header_fail" (a real preamble: a frame lost), "false_trigger" (a weak fit, a
        frame only if its header decodes on its own), or None (no preamble: refused)."""
        if explained >= self.min_preamble_fit:
            return "header_fail"
        return "false_trigger" if explained >= min(WEAK_PREAMBLE_FIT, self.min_preamble_fit) else None

    def _inside_frame(self, trig: int) -> bool:
        """Whether a trigger lies inside the accepted frame (before busy_until): then it is
        dropped (a subclass that defers payloads settles a cut burst's end first)."""
        return trig < self.busy_until

    def _next_header(self, start: int, cfo: float, events: list, from_mf: bool):
        """The header stage of the next trigger in stream order (a subclass may batch it)."""
        return self._header(start, cfo, events, from_mf)

    def _complete(self, events: list):
        """Called once per push before the buffer is trimmed (a subclass finishes deferred work)."""

    def _probe_rate(self, samples: np.ndarray, base: int, events: list):
        """The 2x-rate probe (RATE_PROBE_IDLE) over this chunk, while no frame came lately.
        Idle or not is decided at the chunk's start: a chunk that holds the first frames after a
        silence is probed too, however many samples a push holds. Once frames come, the probe
        finishes what lies before the first of them, then stops (measured against the first:
        in a dense stream every push brings a later one, which the probe would chase forever)."""
        idle = self._last_frame_at is None or base - self._last_frame_at >= RATE_PROBE_IDLE
        first = None
        for kind, value in events:
            if kind == "frame":
                self._last_frame_at = value.sample_offset
                first = value.sample_offset if first is None else first
        if not idle:
            p = self._probe
            until = self._last_frame_at if self._probe_until is None else self._probe_until
            if p is None or (p.waiting is None and not p.pending and not p._held
                             and self._probe_origin + 2 * p.detector.horizon >= until):
                self._probe = None
                return
        if self._probe is None or base != self._probe_next:
            self._probe = type(self)(**self._probe_args)
            self._probe_left = np.zeros(0, np.complex64)
            self._probe_origin = base
            self._probe_until = None
        if self._probe_until is None:
            self._probe_until = first
        self._probe_next = base + samples.size
        x = np.concatenate((self._probe_left, samples))
        even = x.size - x.size % 2
        self._probe_left = x[even:]
        with np.errstate(invalid="ignore", over="ignore"):  # Inf samples: the probe's detector zeroes them
            pairs = 0.5 * (x[0:even:2] + x[1:even:2])
        for kind, _ in self._probe._push(pairs):
            if kind == "frame":
                events.append(("wrong_rate", "a frame at twice the sample rate: the stream is oversampled 2x "
                                             "(a recording made or replayed at another rate?)"))

    def _merge_triggers(self, samples, base, triggers, cfos):
        """Matched-filter detections and the given (Schmidl & Cox) triggers, in time order, into
        `pending`. A given trigger within half a symbol of a matched-filter one is the same frame
        and dropped (the matched filter's timing and CFO are the better ones). Detections come
        about two symbols late, so the given triggers wait until the filter has passed them."""
        # a frame starting at s is handed on as a trigger at s + sym_len - timing_advance (the
        # detector's convention); _header places the windows from there (see its from_mf)
        lead = self.sym_len - self.timing_advance
        for pos, cfo, _ in self.detector.scan(samples):
            self._held.append((pos + lead, cfo, True))
            self.detections["matched_filter"] += 1
        for t, c in zip(triggers, cfos):
            self._held.append((base + int(t), float(c), False))
            self.detections["schmidl_cox"] += 1
        near = self.sym_len // 2
        ready_before = self.detector.horizon + lead - near
        self._held.sort(key=lambda h: h[0])
        ready = [h for h in self._held if h[0] < ready_before]
        self._held = self._held[len(ready):]
        self._recent_mf.extend(h[0] for h in ready if h[2])
        mf = list(self._recent_mf) + [h[0] for h in self._held if h[2]]
        for trig, cfo, from_mf in ready:
            if not from_mf and any(abs(trig - m) <= near for m in mf):
                self.detections["schmidl_cox_merged"] += 1
                continue
            self.pending.append((trig, cfo, from_mf))

    def _trim(self):
        keep_from = self.buf_start + self.buf.size - self.sym_len - self.cp  # a trigger looks back
        if self.detector is not None:  # detections come late: keep what they will look back to
            keep_from = min(keep_from, self.detector.horizon - 3 * self.sym_len)
        if self._held:
            keep_from = min(keep_from, self._held[0][0] - 2 * self.sym_len)
        if self.waiting is not None:
            keep_from = min(keep_from, self.waiting.start)
        if self.pending:
            keep_from = min(keep_from, self.pending[0][0] - self.sym_len - self.cp)
        drop = keep_from - self.buf_start
        if drop > 0:
            self.buf = self.buf[drop:]
            self.buf_start += drop

    def _symbols(self, start: int, first: int, count: int, cfo: float) -> np.ndarray:
        """FFT (fft-shifted, unnormalised like gr's fft_vcc) of OFDM symbols first..first+count-1
        of the frame starting at absolute sample `start`, derotated by `cfo` from the frame start."""
        n, sym = self.layout.fft_len, self.sym_len
        lo = start - self.buf_start + first * sym
        block = self.buf[lo:lo + count * sym].reshape(count, sym)[:, self.cp:]
        rot = np.exp((-2j * np.pi / n * cfo) * self._win[first:first + count])
        return np.fft.fft(block * rot, axis=1)[:, self._fftshift]

    # ------------------------------------------------------------------ per frame
    def _carrier_offset(self, y1: np.ndarray, y2: np.ndarray) -> int:
        """Integer carrier offset: the coherent product of both preambles (channel and CFO phase
        cancel) is largest where the known pattern lines up (each carrier's product capped,
        capped_products)."""
        idx = self._offset_idx  # [candidates, sync-1 carriers]
        prod = capped_products(y1[idx] * np.conj(y2[idx]))
        m = np.abs(np.einsum("cj,j->c", prod, np.conj(self._s12)))  # no BLAS threads
        return int(self._offsets[int(np.argmax(m))])

    def _header(self, start: int, cfo: float, events: list, from_mf: bool = False):
        # a matched-filter detection marks the frame start (of its strongest path) to the sample:
        # the windows go half a cyclic prefix earlier, where a single path's tap sits mid-prefix,
        # and stay there if the channel is one tap (one preamble fit instead of two)
        early = self.cp // 2 if from_mf else 0
        start -= early
        spec = self._symbols(start, 0, self.header_syms, cfo)
        if not np.isfinite(spec).all():
            events.append(("nonfinite", "NaN/Inf samples in a frame's preamble or header"))
            return None
        c = self._carrier_offset(spec[0], spec[1]) if self.max_carr_offset > 0 else 0
        if c:
            # an integer offset is removed in the time domain too: besides moving the carriers it
            # turns each OFDM symbol by 2 pi c cp_len / fft_len (the cyclic prefix)
            cfo += c
            spec = self._symbols(start, 0, self.header_syms, cfo)
        act = self.active + self.half
        ls, fit, smooth, good = self._preamble_fit(spec)
        if from_mf and (fit[4] > 1 or self._retime(fit[-1])):
            # multipath: back to the filter's peak (the strongest path, not always the first)
            # and let _retime centre all taps from there
            start += early
            spec = self._symbols(start, 0, self.header_syms, cfo)
            ls, fit, smooth, good = self._preamble_fit(spec)
        shift = self._retime(fit[-1])
        if shift:
            # The trigger jitters (-7..+10 samples at 5 dB): windows that start too late reach
            # into the next symbol. Move them so the channel's taps sit mid cyclic prefix.
            start += shift
            spec = self._symbols(start, 0, self.header_syms, cfo)
            ls, fit, smooth, good = self._preamble_fit(spec)
        selection = fit[-1]
        fitted_on = ls[act] if good is None else ls[act][good]
        explained = 1.0 - fit[2] / max(float(np.sum(np.abs(fitted_on) ** 2)), 1e-30)
        fail = self._header_failure(explained)
        if fail is None:
            events.append(("false_trigger", "no preamble where the detector triggered"))
            return None
        combined = phy.combine_header(self.estimator, spec[2:], smooth, 0)
        if combined is None:
            events.append((fail, "no usable channel estimate"))
            return None
        soft, slope, quality = combined
        if quality < self.min_header_quality:
            events.append((fail, "header symbols are not BPSK"))
            return None
        parsed = decode_header(soft.real, self.layout.n_data)
        salvaged = False
        if parsed is None and self.fixed_k and fail == "header_fail":  # never salvage a weak preamble
            expect = None if self._last_seq is None else (self._last_seq + 1) % phy.SEQ_MODULO
            parsed = decode_header_known_length(soft.real, self.layout.n_data, self.fixed_k, expect)
            salvaged = parsed is not None
        if parsed is None:
            events.append((fail, "header CRC failed"))
            return None
        n_symbols, seq, _ = parsed
        if not salvaged:
            self._last_seq = seq
        # the bits as sent (corrected, zero fill) train the channel and phase estimates below
        bits = phy.header_bits(n_symbols, seq, self.layout.n_data).astype(bool)
        n = self.layout.fft_len
        training, anchors, spread = 1, None, None
        if self.data_aided:
            ls, slope, training, anchors, spread = self._data_aided(spec, ls, smooth, slope, bits)
            # residual CFO from the common-phase slope (rad per OFDM symbol). Where its
            # inter-carrier interference ((pi eps)^2 / 3 of the signal power) exceeds 1 % of the
            # noise, remove it from the training too: derotate again and re-estimate on the clean
            # preamble and copies (at 20 dB that is above ~0.006 subcarrier).
            residual = slope * n / (2.0 * math.pi * self.sym_len)
            snr = float(np.mean(np.abs(fit[0]) ** 2)) * max(fit[3], 1) / max(fit[2], 1e-30)
            if (math.pi * residual) ** 2 / 3.0 * snr > 0.01:
                cfo += residual
                spec = self._symbols(start, 0, self.header_syms, cfo)
                ls, _, smooth, _ = self._preamble_fit(spec, selection, good, detect=False)
                ls, slope, training, anchors, spread = self._data_aided(spec, ls, smooth, 0.0, bits)
        # what remains is removed in the time domain from the payload on; the channel estimate
        # moves to that derotation's phase (its effective instant is the middle of the second
        # preamble's FFT window)
        residual = slope * n / (2.0 * math.pi * self.sym_len)
        ls = ls * np.exp(-2j * math.pi * residual * (self.sym_len + self.cp + (n - 1) / 2.0) / n)
        return _Header(start, n_symbols, seq, cfo + residual, ls, training, selection, anchors, spread, salvaged)

    def _preamble_fit(self, spec: np.ndarray, start=None, good=None, detect=True):
        """LS channel on the second preamble (fft-shifted, zero off the active carriers), its
        denoised fit (FrameEstimator.smooth_channel, from `start` if given), the fitted channel
        spread back over the FFT bins, and the carriers it was fitted on (None: all). With
        `detect`, the carriers phy.preamble_interference finds are left out of the fit (the delay
        and taps found again without them) and `good` is that mask; a given `good` is used as is.
        The spread-back channel is zero on the left-out carriers, so the header's combining and
        the data-aided phase, which weight each carrier by it, leave them out too."""
        act = self.active + self.half
        ls = np.zeros(self.layout.fft_len, dtype=np.complex128)
        ls[act] = spec[1, act] / self.sync2[act]
        est = self.estimator
        fit = est.smooth_channel(ls[act], 0, start)
        if good is None and detect:
            hit = phy.preamble_interference(ls[act], fit[0])
            good = ~hit if hit.any() else None
        if good is not None:
            centre = start[0] if start is not None else est.delay_of(np.where(good, ls[act], 0.0), 0)
            fit = est.smooth_channel(ls[act], 0, (centre, ()), good)
        smooth = np.zeros_like(ls)
        smooth[act] = fit[0] if good is None else np.where(good, fit[0], 0.0)
        return ls, fit, smooth, good

    def _retime(self, selection) -> int:
        """Samples to move the FFT windows by (positive: later) so the channel's significant taps
        (delays within the window, from the preamble fit) sit in the middle of the ISI-free range
        [0, cp_len]; 0 when they are within 2 samples of it."""
        centre, chosen = selection
        delays = centre + np.asarray(chosen) - self.estimator.taps_before
        lo, hi = float(delays.min()), float(delays.max())
        shift = int(round(lo - (self.cp - (hi - lo)) / 2.0))
        shift = max(min(shift, self.cp), -self.cp)  # the buffer keeps cp_len samples either side
        return shift if abs(shift) > 2 else 0

    def _data_aided(self, spec, ls, smooth, slope, bits):
        """Header known (CRC passed): its copies are training symbols. Common-phase slope from all
        active carriers of the copies (weighted by `smooth`, zero where the preamble showed
        interference), then the LS channel averaged over preamble + copies, each copy derotated
        to the preamble's phase. Returns (ls_taps, slope, training symbols)."""
        # known copies on the active carriers: BPSK header bits (hard decisions, verified by the
        # CRC) cyclically shifted per copy, and the pilots; all +-1
        base = np.where(bits, 1.0, -1.0)
        x = np.empty((self.repeats, self.active.size))
        x[:, self._idx_d] = base[self._copy_gather] * self._scrambler
        x[:, self._idx_p] = self._pilot_row
        act = self.active + self.half
        y = spec[2:, act]
        h = smooth[act]
        corr = np.sum(y * np.conj(h) * x, axis=1)
        t = 1.0 + np.arange(self.repeats)
        slope = phy.fit_phase_slope(corr * np.exp(-1j * slope * t), t) + slope
        each = np.concatenate((ls[act][None, :], y * x * np.exp(-1j * slope * t)[:, None]))  # x = +-1: y/x = y x
        mean = each.mean(axis=0)
        out = np.zeros_like(ls)
        out[act] = mean
        # spread of the 1 + repeats estimates around their mean: noise only (a channel-model
        # error is common to all of them), sigma^2 per carrier each
        # (per carrier: an interfered carrier shows it, FrameEstimator.estimate)
        spread = (np.sum(np.abs(each - mean[None, :]) ** 2, axis=0), self.repeats)
        # what is left of each copy's phase once the slope is removed: anchors for the payload's
        # phase fit (|corr| ~ sum |H|^2 over the 52 known carriers, the pilots' weighting)
        anchors = (t, corr * np.exp(-1j * slope * t))
        return out, slope, 1 + self.repeats, anchors, spread

    def _finish(self, hdr: _Header, events: list) -> bool:
        """Payload of an accepted header, once its samples are in. False = wait for samples."""
        pay0 = hdr.start + self.header_syms * self.sym_len
        end = self.frame_end(hdr)
        if end > self.buf_start + self.buf.size:
            return False
        max_live = self._next_frame_inside(pay0, end)
        if max_live is None:
            return False
        # the next burst's trigger may sit in our last symbol's tail
        self.busy_until = pay0 + max_live * self.sym_len - self.sym_len
        self._payload(hdr, max_live, events)
        return True

    def frame_end(self, hdr: _Header) -> int:
        """Absolute sample just after the frame's last OFDM symbol (as its header claims)."""
        return hdr.start + (self.header_syms + self.layout.n_ofdm_symbols(hdr.n_symbols)) * self.sym_len

    def _payload(self, hdr: _Header, max_live: int, events: list):
        """Payload of an accepted header (_estimate_payload): appends its event; a frame whose
        burst ended early moves busy_until back to where it ended (_cut_back)."""
        event = self._estimate_payload(hdr, max_live)
        events.append(event)
        if event[0] == "frame":
            self._cut_back(hdr, event[1].estimate)

    def _cut_back(self, hdr: _Header, est: phy.FrameEstimate):
        """A frame's burst ended early (est.cut): whatever follows may be the next frame."""
        if est.cut:
            live = self.layout.n_ofdm_symbols(hdr.n_symbols - est.cut)
            pay0 = hdr.start + self.header_syms * self.sym_len
            self.busy_until = min(self.busy_until, pay0 + live * self.sym_len - self.sym_len)

    def _estimate_payload(self, hdr: _Header, max_live: int):
        """Payload FFT and estimate of an accepted header, `max_live` of its OFDM symbols before
        another frame starts: the event, ("frame", ReceivedFrame) or ("nonfinite", what).
        Reads the buffer only (no receiver state changes)."""
        n_ofdm = self.layout.n_ofdm_symbols(hdr.n_symbols)
        spec = self._symbols(hdr.start, self.header_syms, n_ofdm, hdr.cfo)
        if not np.isfinite(spec[:max(max_live, 1)]).all():
            return ("nonfinite", "NaN/Inf samples in a frame's payload")
        spec = np.where(np.isfinite(spec), spec, 0.0)  # past another frame's start: erased below
        cells = spec[:, self.cells + self.half]
        est = self.estimator.estimate(cells, hdr.ls_taps, hdr.n_symbols, training_symbols=hdr.training,
                                      channel_start=hdr.selection, phase_anchors=hdr.anchors,
                                      training_spread=hdr.spread, max_live=max_live)
        if not (np.isfinite(est.symbols).all() and np.isfinite(est.noise_var).all() and math.isfinite(est.snr_db)):
            return ("nonfinite", "estimation gave NaN/Inf")
        return ("frame", ReceivedFrame(hdr.seq, hdr.n_symbols, est, hdr.cfo, hdr.start, hdr.salvaged))

    def _next_frame_inside(self, pay0: int, end: int):
        """Payload OFDM symbols (from absolute sample `pay0`) before another frame starts: a
        pending trigger inside this payload whose header decodes (a header that claims more
        symbols than were sent, a burst cut by the next one). (end - pay0) / sym_len when there
        is none, None when a candidate's header is not in the buffer yet."""
        n_ofdm = (end - pay0) // self.sym_len
        cands, waiting = [], False
        for trig, cfo, from_mf in sorted(list(self.pending) + self._held):
            start = self._header_start(trig)
            if start >= end:
                break
            if start < pay0:
                continue
            if not self._header_in(start):
                waiting = True  # unless an earlier candidate's header decodes
                break
            cands.append((start, cfo, from_mf))
        for other in self._headers_inside(cands):
            if other is not None:
                return max(0, min(n_ofdm, (other.start - pay0) // self.sym_len))
        return None if waiting else n_ofdm

    def _headers_inside(self, cands: list):
        """The header (_Header or None) of each candidate (start, cfo, from_mf) in order, each
        computed when asked for (a subclass may compute them together)."""
        for start, cfo, from_mf in cands:
            yield self._header(start, cfo, [], from_mf)
