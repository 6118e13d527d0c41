"""Loopback wiring for the apps, the benchmarks and the tests (not a block): headless top blocks
that connect this package's blocks the way the flowgraphs do, and the message plumbing to drive
them from Python.

* LoopbackSim: the semantic link over channel_sim (what flowgraphs/loopback_sim.grc draws):
  image_source -> semantic_encoder -> ofdm_analog_tx -> channel_sim -> ofdm_analog_rx
  -> diffusion_decoder (one per decoder asked for) -> link_metrics (+ image_sink, zmq_taps).
* PhyLoopback: the analog OFDM PHY alone (symbol_source ... symbol_checker).
* run_loopback / scheme_loopback: images through digital_link_tx/rx, or any Scheme through the
  analog PHY, returning what came out in order.
* gr_fec_encode / gr_fec_decode: gr-fec's convolutional code on frames (the equivalence check
  against diffsem.baselines.digital).
* Collector / Emitter / run_async: post PDUs into message ports and collect what comes out.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pmt
from gnuradio import blocks, fec, gr

from diffsem.baselines import digital as core
from diffsem.phy.ofdm import ERASED_NOISE_VAR

from ._pdu import dict_to_pmt, guarded, image_pdu, make_pdu, msg_seq, pdu_parts, pmt_to_py, rejections
from .digital_link_rx import llr_to_gr_soft, make_cc_decoder
from .digital_link_tx import make_cc_encoder

__all__ = ["LoopbackSim", "PhyLoopback", "parse_decoders", "run_loopback", "scheme_loopback", "wait_for_link",
           "gr_fec_encode", "gr_fec_decode", "Collector", "Emitter", "run_async", "pixels_pdu", "msg_seq",
           "dict_to_pmt", "image_pdu", "make_pdu", "pdu_parts", "guarded", "pmt_to_py", "rejections"]


# --- message plumbing ---------------------------------------------------------------------------

class Collector(gr.basic_block):
    def __init__(self):
        gr.basic_block.__init__(self, "diffsem_collector", None, None)
        self.messages = []
        self._cond = threading.Condition()
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class Emitter(gr.basic_block):
    """Posts what it is given (``post(pdu)``) on its "out" port: feeds a hier block's message input."""

    def __init__(self):
        gr.basic_block.__init__(self, "diffsem_emitter", None, None)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self._forward)  # a bound method: GR's gateway rejects lambdas

    def _forward(self, msg):
        self.message_port_pub(pmt.intern("out"), msg)

    def post(self, msg):
        self.to_basic_block()._post(pmt.intern("in"), msg)


def run_async(block, pdus, timeout: float = 30.0):
    tb = gr.top_block()
    sink = Collector()
    tb.msg_connect(block, "out", sink, "in")
    tb.start()
    try:
        for p in pdus:
            block.to_basic_block()._post(pmt.intern("in"), p)
        if not sink.wait_for(len(pdus), timeout):
            raise TimeoutError(f"gr-fec gave {len(sink.messages)} of {len(pdus)} frames")
    finally:
        tb.stop()
        tb.wait()
    return sink.messages



# --- gr-fec on frames ---------------------------------------------------------------------------

def record_bursts(tb, sink, n_bursts: int, length: int, timeout: float = 60.0) -> np.ndarray:
    """Run `tb` until its vector sink holds n_bursts bursts of `length` samples (or timeout s), stop it,
    and return them as [n_bursts, length]."""
    tb.start()
    deadline = time.monotonic() + timeout
    while len(sink.data()) < n_bursts * length and time.monotonic() < deadline:
        time.sleep(0.02)
    tb.stop()
    tb.wait()
    return np.asarray(sink.data(), dtype=np.complex64)[:n_bursts * length].reshape(-1, length)


def gr_fec_encode(info_bits: np.ndarray, budget: core.Budget) -> np.ndarray:
    """gr-fec cc_encoder on info bits [B, info_bits] -> mother-code bits [B, 2(info_bits+6)]."""
    enc = fec.async_encoder(make_cc_encoder(budget), False, False, False, core.MTU)
    msgs = run_async(enc, [pmt.cons(pmt.make_dict(), pmt.init_u8vector(len(b), b.tolist())) for b in info_bits])
    return np.stack([np.asarray(pmt.u8vector_elements(pmt.cdr(m)), np.uint8) for m in msgs])


def gr_fec_decode(llr_air: np.ndarray, budget: core.Budget) -> np.ndarray:
    """gr-fec cc_decoder on air-bit LLRs [B, coded_bits] (log P0/P1) -> info bits [B, info_bits]."""
    dec = fec.async_decoder(make_cc_decoder(budget), False, False, core.MTU)
    pdus = []
    for llr in llr_air:
        soft = llr_to_gr_soft(core.mother_llr_from_air(llr, budget))
        pdus.append(pmt.cons(pmt.make_dict(), pmt.init_f32vector(len(soft), soft.tolist())))
    msgs = run_async(dec, pdus)
    return np.stack([np.asarray(pmt.u8vector_elements(pmt.cdr(m)), np.uint8)[: budget.info_bits] for m in msgs])



# --- images / schemes through the PHY -----------------------------------------------------------

def _message_loopback(tx, rx, snr_db, channel, seed, cfo):
    """tx -> channel_sim -> rx in a new top block, an Emitter feeding tx "in" and a Collector on
    rx "out": returns (top block, emitter, collector)."""
    from gnuradio import diffsem
    tb = gr.top_block()
    chan = diffsem.channel_sim(snr_db=snr_db, channel=channel, seed=seed, cfo=cfo)
    sink, source = Collector(), Emitter()
    tb.connect(tx, chan, rx)
    tb.msg_connect(source, "out", tx, "in")
    tb.msg_connect(rx, "out", sink, "in")
    return tb, source, sink


def pixels_pdu(image, seq: int | None = None) -> pmt.pmt_t:
    x = np.asarray(image, np.float32).reshape(-1)
    meta = pmt.make_dict()
    if seq is not None:
        meta = pmt.dict_add(meta, pmt.intern("seq"), pmt.from_long(seq))
    return pmt.cons(meta, pmt.init_f32vector(len(x), x.tolist()))


def run_loopback(images, k: int, mode: str, snr_db: float, channel: str = "awgn", seed: int = 0,
                 timeout: float = 60.0, extra_pdus=(), quiet_s: float = 1.0, cfo: float = 0.0):
    """Images through digital_link_tx -> channel_sim (AWGN/Rayleigh/selective at Es/N0 = snr_db,
    carrier offset ``cfo`` in subcarrier spacings) -> digital_link_rx. Returns (images
    [N,1,28,28], metadata dicts, tx stats, rx stats), one row per image in order: frames the
    receiver never reported (lost, header included, after the last one received) are grey with
    status "lost". ``extra_pdus`` go to the TX first (tests of malformed input); valid images
    carry seq 0..N-1. A mode with no room for a frame runs too: every image is refused by the
    TX, and the RX shows grey with status "no_image" (as DigitalScheme on the library channel)."""
    from gnuradio import diffsem
    tx, rx = diffsem.digital_link_tx(k, mode), diffsem.digital_link_rx(k, mode)
    tb, source, sink = _message_loopback(tx, rx, snr_db, channel, seed, cfo)
    tb.start()
    try:
        for p in extra_pdus:
            source.post(p)
        for i, img in enumerate(images):
            source.post(pixels_pdu(img, seq=i))
        def frames_expected():
            txs = tx.stats()
            if txs["sent"] + txs["rejected"] + txs["no_room"] < len(images) + len(extra_pdus):
                return None
            return txs["sent"] + txs["no_room"]  # a no-room image goes out as an idle frame

        wait_for_link(sink, len(images) - 1, tx.phy, rx.phy, frames_expected, timeout, quiet_s)
    finally:
        tb.stop()
        tb.wait()
    by_seq = {}
    for m in sink.messages:
        s = msg_seq(m)
        if s is not None and s < len(images):
            by_seq.setdefault(s, m)
    out = np.full((len(images), 1, 28, 28), core.GREY, np.float32)
    metas = []
    for i in range(len(images)):
        m = by_seq.get(i)
        if m is None:
            metas.append({"status": "lost", "seq": i})
            continue
        out[i, 0] = np.asarray(pmt.f32vector_elements(pmt.cdr(m)), np.float32).reshape(28, 28)
        metas.append(pmt.to_python(pmt.car(m)))
    return out, metas, tx.stats(), rx.stats()


def scheme_loopback(scheme, images, snr_db: float, channel: str = "awgn", seed: int = 0, timeout: float = 60.0,
                    quiet_s: float = 1.0, cfo: float = 0.0):
    """Any Scheme (e.g. the linear baseline) through the semantic link's PHY: scheme.encode ->
    one symbol PDU per image -> ofdm_analog_tx -> channel_sim (carrier offset ``cfo`` in
    subcarrier spacings) -> ofdm_analog_rx -> scheme.decode
    with the receiver's per-symbol noise_var, and the SNR its encoder ran at where it has one
    (`encode_snr_db`, the neural codecs), else the receiver's own snr_db. Returns (images
    [N,1,28,28], received mask [N]); a frame the receiver missed is what diffusion_decoder shows
    for a lost frame: the scheme's decode of a frame with every symbol erased."""
    x = np.asarray(images, np.float32)
    symbols = np.asarray(scheme.encode(x), np.float32)
    from gnuradio import diffsem
    tx, rx = diffsem.ofdm_analog_tx(), diffsem.ofdm_analog_rx()
    tb, source, sink = _message_loopback(tx, rx, snr_db, channel, seed, cfo)
    tb.start()
    try:
        for i, s in enumerate(symbols):
            c = (s[:, 0] + 1j * s[:, 1]).astype(np.complex64)
            meta = pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(i))
            source.post(pmt.cons(meta, pmt.init_c32vector(len(c), c.tolist())))
        def frames_expected():
            txs = tx.stats()
            return txs["frames"] if sum(txs.values()) >= len(x) else None  # accepted + refused

        wait_for_link(sink, len(x) - 1, tx, rx, frames_expected, timeout, quiet_s)
    finally:
        tb.stop()
        tb.wait()
    out = np.empty(x.shape, np.float32)
    received = np.zeros(len(x), bool)
    for m in sink.messages:
        i = msg_seq(m)
        if i is None or i >= len(x) or received[i]:
            continue
        meta = pmt.car(m)
        y = np.asarray(pmt.c32vector_elements(pmt.cdr(m)), np.complex64)
        nv = pmt.dict_ref(meta, pmt.intern("noise_var"), pmt.PMT_NIL)
        snr = pmt.to_double(pmt.dict_ref(meta, pmt.intern("snr_db"), pmt.from_double(snr_db)))
        noise_var = np.asarray(pmt.f32vector_elements(nv), np.float32) if pmt.is_f32vector(nv) else \
            np.full(len(y), 10 ** (-snr / 10), np.float32)
        sym = np.stack([y.real, y.imag], -1)[None].astype(np.float32)
        told = getattr(scheme, "encode_snr_db", snr)
        out[i] = np.asarray(scheme.decode(sym, np.full(1, told, np.float32), noise_var[None]), np.float32)[0]
        received[i] = True
    lost = np.flatnonzero(~received)
    if lost.size:
        told = getattr(scheme, "encode_snr_db", snr_db)
        out[lost] = np.asarray(scheme.decode(np.zeros((lost.size,) + symbols.shape[1:], np.float32),
                                             np.full(lost.size, told, np.float32),
                                             np.full((lost.size, symbols.shape[1]), ERASED_NOISE_VAR, np.float32)),
                               np.float32)
    return out, received


def wait_for_link(sink, last_seq: int, tx_phy, rx_phy, frames_expected, timeout: float, quiet_s: float = 0.5) -> bool:
    """Block until `sink` holds frame `last_seq`, or until the receiver has read every sample the
    TX put on the air and then nothing new arrived for `quiet_s` (the rest was lost); `timeout`
    is the backstop. frames_expected() -> the number of frames the TX will send, None until it
    knows. Silence alone is no end: at low SNR a run of lost frames keeps the receiver quiet for
    seconds while the TX is still sending, and a run stopped then lost most of its frames (a
    300-image selective-fading run at 0 dB delivered 8 % or 37 % of its frames from run to run)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        n = len(sink.messages)
        if any(msg_seq(m) == last_seq for m in list(sink.messages)):
            return True
        frames = frames_expected()
        bursts, samples = tx_phy.emitted()
        if frames is not None and bursts >= frames and rx_phy.samples_read() >= samples - tx_phy.pad_back:
            if not sink.wait_for(n + 1, quiet_s):
                return True
            continue
        sink.wait_for(n + 1, 0.05)
    return False


# --- the semantic link over the simulated channel -------------------------------------------------

DEFAULT_DECODERS = ("diffusion:2",)


def parse_decoders(specs) -> list[tuple[str, int]]:
    """["diffusion:2", "deepjscc"] -> [("diffusion", 2), ("deepjscc", 0)]."""
    out = []
    for spec in specs:
        mode, _, steps = str(spec).partition(":")
        if mode not in ("diffusion", "deepjscc"):
            raise ValueError(f"decoder {spec!r}: use diffusion:<1|2|4> or deepjscc")
        out.append((mode, int(steps or 2) if mode == "diffusion" else 0))
    return out


class LoopbackSim(gr.top_block):
    """The semantic link over channel_sim, headless. Blocks are attributes (src, enc, tx, chan,
    rx, decoders[i], metrics[i], sink, taps) so callers read their counters."""

    def __init__(self, k=128, snr_db=10.0, channel="awgn", decoders=DEFAULT_DECODERS, count=16, first=0,
                 rate=0.0, models_dir="", provider="auto", seed=0, cfo=0.0, timing_offset=0.0,
                 max_queue=16, max_batch=8, drop_policy="oldest", classifier_card="", keep_images=False,
                 image_folder="", taps_address="", threads=1, source="fashion-mnist", start_delay=0.2,
                 chan_seed=None, sync_threshold=None, impairment=None, tx_kwargs=None, chan_kwargs=None,
                 loop=False):
        gr.top_block.__init__(self, "diffsem loopback_sim")
        from gnuradio import diffsem

        self._receivers = []  # every block given a message connection, the link's and a caller's

        self.src = diffsem.image_source(source, "test", first, count, loop, rate, start_delay)
        self.enc = diffsem.semantic_encoder(k, "", models_dir, provider, snr_db, max(64, max_queue), max_batch,
                                            drop_policy, threads)
        # tx_kwargs / chan_kwargs: extra options of the TX (e.g. clip_db) and channel (hardware impairments)
        self.tx = diffsem.ofdm_analog_tx(**(tx_kwargs or {}))
        self.chan = diffsem.channel_sim(snr_db, channel, cfo, timing_offset, seed if chan_seed is None else chan_seed,
                                        **(chan_kwargs or {}))
        self.rx = diffsem.ofdm_analog_rx() if sync_threshold is None else \
            diffsem.ofdm_analog_rx(sync_threshold=sync_threshold)
        self.samples = blocks.null_sink(gr.sizeof_gr_complex)  # counts the OFDM samples that went through
        self.msg_connect(self.src, "out", self.enc, "in")
        self.msg_connect(self.enc, "out", self.tx, "in")
        # `impairment`: an optional complex stream block between TX and channel (tests jam bursts with it)
        if impairment is not None:
            self.connect(self.tx, impairment, self.chan, self.rx)
        else:
            self.connect(self.tx, self.chan, self.rx)
        self.connect(self.chan, self.samples)

        self.decoders, self.metrics = [], []
        for mode, steps in parse_decoders(decoders):
            dec = diffsem.diffusion_decoder(k, mode, steps or 2, "", models_dir, provider, seed, max_queue,
                                            max_batch, drop_policy, threads, encoder_snr_db=snr_db)
            met = diffsem.link_metrics(classifier_card, models_dir, keep_images, self.rx, dec.label)
            self.msg_connect(self.rx, "out", dec, "in")
            self.msg_connect(dec, "out", met, "in")
            self.msg_connect(dec, "drops", met, "drops")
            self.msg_connect(self.enc, "drops", met, "drops")
            self.msg_connect(self.src, "out", met, "ref")
            self.decoders.append(dec)
            self.metrics.append(met)

        self.sink = None
        if image_folder:
            self.sink = diffsem.image_sink(image_folder, "rx", True, 16, 64, 8, 1)
            self.msg_connect(self.decoders[0], "out", self.sink, "in")
        self.taps = None
        if taps_address:
            self.taps = diffsem.zmq_taps(taps_address)
            self.msg_connect(self.rx, "out", self.taps, "constellation")
            self.msg_connect(self.decoders[0], "out", self.taps, "image")
            self.msg_connect(self.decoders[0], "state", self.taps, "state")
            self.msg_connect(self.src, "out", self.taps, "ref")  # labels for the image tap
            for met in self.metrics:
                self.msg_connect(met, "metrics", self.taps, "metrics")
        self.elapsed_s = None

    def msg_connect(self, *args):
        """gr.top_block.msg_connect, remembering the receiving block so that draining waits for
        its message queue too (a caller's taps or sinks included, not only the link's)."""
        self._receivers.append(args[2] if len(args) == 4 else args[1][0])
        return gr.top_block.msg_connect(self, *args)

    def _messages_queued(self) -> bool:
        for blk in self._receivers:
            base = blk.to_basic_block() if hasattr(blk, "to_basic_block") else blk
            if hasattr(base, "empty_handled_p") and not base.empty_handled_p():
                return True
        return False

    def _settled(self) -> bool:
        if not self.src.finished():
            return False
        for met in self.metrics:
            acc = met.accounting()
            if acc["sent"] != self.src.sent or acc["missing"] != 0 or not met.wait_idle(0):
                return False
        return True

    def _progress(self):
        # The receiver reading samples is progress too: at low SNR a run of lost frames decodes
        # nothing for a while, and the link is not idle until the receiver has read the TX's output.
        return tuple(met.accounting()["decoded"] for met in self.metrics) + (
            self.rx.stats().get("frames", 0), self.rx.samples_read(), self.tx.emitted()[1])

    def run_until_drained(self, timeout_s: float = 600.0, quiet_s: float = 5.0, poll_s: float = 0.05) -> bool:
        """Run until every frame is accounted for (True), or nothing moved for quiet_s after the
        source finished / timeout_s passed (False: what is still missing was lost). On True it
        stops once every block given a message connection has handled its queue."""
        t0 = time.perf_counter()
        self.start()
        ok, t_settled = False, None
        try:
            last, t_last = None, time.perf_counter()
            while time.perf_counter() - t0 < timeout_s:
                if self._settled():
                    ok, t_settled = True, time.perf_counter()
                    break
                now = self._progress()
                if now != last:
                    last, t_last = now, time.perf_counter()
                elif self.src.finished() and time.perf_counter() - t_last > quiet_s:
                    break
                time.sleep(poll_s)
            # Every frame is accounted for, but the other receivers of the same messages (taps, a
            # caller's sinks) may lag behind link_metrics on a loaded machine, and stop() drops what
            # is still queued: stop once every message queue was empty at two polls in a row.
            empty = 0
            while ok and empty < 2 and time.perf_counter() - t0 < timeout_s:
                empty = 0 if self._messages_queued() else empty + 1
                time.sleep(poll_s)
        finally:
            self.elapsed_s = (t_settled or time.perf_counter()) - t0  # the link's time, not the flush's
            self.stop()
            self.wait()
            for met in self.metrics:
                met.wait_idle(10)
        return ok

    def report(self) -> dict:
        """Accounting and quality per decoder, PHY counters, samples through the channel."""
        out = {"sent": self.src.sent, "rx": self.rx.stats(), "tx": self.tx.stats(),
               "samples": int(self.samples.nitems_read(0)), "elapsed_s": self.elapsed_s, "decoders": []}
        for dec, met in zip(self.decoders, self.metrics):
            acc = met.accounting()
            out["decoders"].append({"decoder": dec.label, "model": dec.model.name, "provider": dec.provider,
                                    **acc, "lost": acc["missing"], **met.summary(), "worker": dec.stats()})
        return out



# --- the analog OFDM PHY alone --------------------------------------------------------------------

def wait_for_frames(received, source, n_frames: int, timeout: float, idle: float, poll: float = 0.02) -> float:
    """Wait (a started flowgraph) until `received()` reaches n_frames, or `idle` s pass without a
    new frame once `source` has sent them all, or `timeout`; returns the seconds waited."""
    t0 = time.monotonic()
    last, last_change = -1, t0
    while time.monotonic() - t0 < timeout:
        time.sleep(poll)
        got = received()
        if got != last:
            last, last_change = got, time.monotonic()
        if got >= n_frames:
            break
        if source.sent >= n_frames and time.monotonic() - last_change > idle:
            break
    return time.monotonic() - t0


class PhyLoopback(gr.top_block):
    """symbol_source -> ofdm_analog_tx -> channel_sim -> ofdm_analog_rx -> symbol_checker, headless."""

    def __init__(self, snr_db=20.0, channel="awgn", cfo=0.0, timing_offset=0.0, n_frames=100,
                 n_symbols=128, seed=0, window=8, keep_symbols=False, rx_kwargs=None, channel_kwargs=None):
        gr.top_block.__init__(self, "diffsem_phy_loopback")
        from gnuradio import diffsem
        self.n_frames = n_frames
        self.source = diffsem.symbol_source(n_symbols, n_frames, 0.0, seed, window)
        self.tx = diffsem.ofdm_analog_tx()
        self.channel = diffsem.channel_sim(snr_db, channel, cfo, timing_offset, seed, **(channel_kwargs or {}))
        self.rx = diffsem.ofdm_analog_rx(**(rx_kwargs or {}))
        # the records window holds every frame of a finite run (measure phy reads them all)
        self.checker = diffsem.symbol_checker(n_symbols, seed, 0, max_records=max(int(n_frames), 16384))
        self.checker.keep_symbols = keep_symbols
        self.msg_connect(self.source, "out", self.tx, "in")
        self.connect(self.tx, self.channel, self.rx)
        self.msg_connect(self.rx, "out", self.checker, "in")
        self.msg_connect(self.checker, "ack", self.source, "ack")

    def run_until_done(self, timeout=120.0, idle=5.0):
        """Start, wait until every frame is accounted for (received or after `idle` s without
        progress once the source is done), stop. Returns the checker's stats plus counters."""
        self.start()
        elapsed = wait_for_frames(lambda: self.checker.counters.snapshot()["frames"], self.source, self.n_frames,
                                  timeout, idle)
        self.stop()
        self.wait()
        out = self.checker.stats()
        out.update(sent=self.source.sent, lost=self.source.sent - out["frames"], seconds=elapsed,
                   rx=self.rx.stats(), tx=self.tx.stats())
        return out
