"""The digital (separation) baseline's receiver: OFDM -> QAM LLRs -> gr-fec -> codec.

The receiver of the digital baseline on the semantic link's OFDM PHY (see digital_link_tx for
the frame format: the same k payload symbols per image, preamble, header, channel and estimation).

``digital_link_rx``: complex baseband in, image PDUs out. ``ofdm_analog_rx`` gives the equalised
symbols and their noise variances (sigma^2/|H|^2 per subcarrier); max-log LLRs with those
variances (so a faded subcarrier counts less), descrambling, de-interleaving, de-puncturing
(erasures), gr-fec's ``async_decoder`` (``cc_decoder``, soft Viterbi), CRC-16 and the codec.
A frame whose CRC fails gives a grey image; a frame lost before its header decoded (a gap in
the header's sequence number) gives a grey image when the next frame arrives; so does a frame
of a mode that cannot carry an image (status "no_image"). Every outcome is counted
(``stats()``).

The library-channel path for sweeps is ``diffsem.baselines.digital.DigitalScheme`` (numpy
Viterbi, checked frame by frame against gr-fec's decoder in the block tests);
``gnuradio.diffsem.harness.run_loopback`` pushes images through TX -> channel -> RX.
"""
from __future__ import annotations

import logging

import numpy as np
import pmt
from gnuradio import fec, gr

from diffsem.baselines import digital as core
from diffsem.link.pdu import KindLog, validate_meta
from diffsem.link.seq import GapTracker

from ._pdu import BadPdu, Counters, guarded, pdu_meta, pmt_seq, pmt_to_py
from .ofdm_analog_rx import ofdm_analog_rx

log = logging.getLogger("gnuradio.diffsem.digital_link_rx")

SOFT_CLIP = 2.6    # cc_decoder quantises soft values as uint8(48 * v + 128): keep |v| <= 2.6


def make_cc_decoder(budget: core.Budget):
    # end_state=0: the terminated code ends in state 0. With -1 (the default, "pick the best end
    # state") gr-fec throws away the tail's information: 3x the frame errors at 16-QAM 3/4, 11.5 dB.
    return fec.cc_decoder.make(max(budget.info_bits, 8), core.CC_K, 2, list(core.CC_POLYS), 0, 0,
                               fec.CC_TERMINATED, False)


def llr_to_gr_soft(llr: np.ndarray) -> np.ndarray:
    """Core LLRs (log P0/P1) -> gr-fec soft bits (positive = 1), scaled and clipped for its uint8
    quantiser. Max-log Viterbi does not care about a common scale, only about the clipping."""
    scale = float(np.mean(np.abs(llr))) if llr.size else 1.0
    return np.clip(-llr / max(scale, 1e-9), -SOFT_CLIP, SOFT_CLIP).astype(np.float32)


def _checked_meta(msg):
    """A frame PDU's PMT metadata once diffsem.link.pdu.validate_meta accepts it (a seq that is
    no non-negative int64, non-symbol keys, ... are refused by kind), else BadPdu."""
    meta = pdu_meta(msg)
    validate_meta(pmt_to_py(meta))
    return meta


def _grey():
    return np.full((core.SIDE, core.SIDE), core.GREY, np.float32)


class _rx_demapper(gr.basic_block):
    """Equalised symbols PDU (+ per-symbol noise_var) -> gr-fec soft bits of the mother code."""

    def __init__(self, budget: core.Budget, counters: Counters):
        gr.basic_block.__init__(self, "diffsem_digital_rx_demapper", None, None)
        self.budget, self.counters = budget, counters
        self._log = KindLog(log.warning)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.message_port_register_out(pmt.intern("bad"))
        self.message_port_register_out(pmt.intern("idle"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _noise_var(self, meta, n: int) -> np.ndarray:
        nv = pmt.dict_ref(meta, pmt.intern("noise_var"), pmt.PMT_NIL)
        if pmt.is_f32vector(nv) and pmt.length(nv) == n:
            out = np.asarray(pmt.f32vector_elements(nv), np.float64)
            if np.isfinite(out).all() and (out > 0).all():
                return out
        snr = pmt.dict_ref(meta, pmt.intern("snr_db"), pmt.PMT_NIL)
        if pmt.is_number(snr) and not pmt.is_complex(snr) and -100.0 <= pmt.to_double(snr) <= 100.0:  # 10^(-snr/10) stays finite
            return np.full(n, 10.0 ** (-pmt.to_double(snr) / 10.0))
        return np.ones(n)  # scale-free for the max-log Viterbi on a flat channel

    @guarded("in")
    def _handle(self, msg):
        meta = _checked_meta(msg)
        vec = pmt.cdr(msg) if pmt.is_pair(msg) else pmt.PMT_NIL
        y = np.asarray(pmt.c32vector_elements(vec), np.complex128) if pmt.is_c32vector(vec) else np.zeros(0)
        if y.size != self.budget.k or not np.isfinite(y).all():
            self.counters.incr("bad_frame")
            self._log("bad_frame", f"digital_link_rx: frame of {y.size} symbols (expected {self.budget.k}) "
                                   "or non-finite: grey image")
            self.message_port_pub(pmt.intern("bad"), pmt.cons(meta, pmt.init_u8vector(0, [])))
            return
        if not self.budget.carries_frame:  # this link configuration cannot carry an image: idle frame
            meta = pmt.dict_delete(meta, pmt.intern("noise_var"))
            self.message_port_pub(pmt.intern("idle"), pmt.cons(meta, pmt.init_u8vector(0, [])))
            return
        nv = self._noise_var(meta, y.size)
        llr = core.demap_llr(y[None], nv[None], self.budget.mode.bits_per_symbol)[0]
        soft = llr_to_gr_soft(core.mother_llr_from_air(llr, self.budget, pmt_seq(meta, 0)))
        meta = pmt.dict_delete(meta, pmt.intern("noise_var"))  # 4 bytes per symbol: not needed downstream
        self.message_port_pub(pmt.intern("out"), pmt.cons(meta, pmt.init_f32vector(len(soft), soft.tolist())))


class _rx_imager(gr.basic_block):
    """Decoded info bits PDU -> image PDU (f32vector 784) with status; grey on any failure.

    Follows the header's sequence number: frames missing between two received ones were lost
    before their header decoded; each is shown (grey, status "lost") and counted on the gap.
    A gap longer than diffsem.link.seq.MAX_GAP_SHOWN (a TX restart, a wrap after a long outage)
    is counted ("seq_jumps", its numbers under "gap_not_shown") and logged, and no image is made
    for it."""

    def __init__(self, budget: core.Budget, counters: Counters):
        gr.basic_block.__init__(self, "diffsem_digital_rx_imager", None, None)
        self.budget, self.counters = budget, counters
        self.gaps = GapTracker()
        self._log = KindLog(log.warning)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_in(pmt.intern("bad"))
        self.message_port_register_in(pmt.intern("idle"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self._handle)
        self.set_msg_handler(pmt.intern("bad"), self._handle_bad)  # bound methods only: GR's gateway rejects lambdas
        self.set_msg_handler(pmt.intern("idle"), self._handle_idle)

    @guarded("bad")
    def _handle_bad(self, msg):
        self._emit(_checked_meta(msg), core.Received("bad_frame", _grey()))

    @guarded("idle")
    def _handle_idle(self, msg):
        """A frame of a mode with no room for an image (the TX refused it): grey, "no_image"."""
        self._emit(_checked_meta(msg), core.Received("no_image", _grey()))

    def _emit(self, meta, rec: core.Received):
        seq = pmt_seq(meta)
        if seq is not None:
            gap, not_shown = self.gaps.lost_before(seq)
            if not_shown:
                self.counters.incr("seq_jumps")
                self.counters.incr("gap_not_shown", not_shown)
                self._log("seq_jump", f"digital_link_rx: sequence jumped by {not_shown} to {seq} (TX restart or "
                                      "long outage): counted, no images made for the gap")
            for missing in gap:
                lost = pmt.dict_add(pmt.make_dict(), pmt.intern("status"), pmt.intern("lost"))
                lost = pmt.dict_add(lost, pmt.intern("seq"), pmt.from_long(missing))
                self.counters.incr("lost")
                self._publish(lost, _grey())
        if rec.status != "bad_frame":  # the demapper counted those
            self.counters.incr(rec.status)
        meta = pmt.dict_add(meta, pmt.intern("status"), pmt.intern(rec.status))
        if rec.codec:
            meta = pmt.dict_add(meta, pmt.intern("codec"), pmt.intern(rec.codec))
            meta = pmt.dict_add(meta, pmt.intern("quality"), pmt.from_long(core.quality_of(rec.quality_index)))
        self._publish(meta, rec.image)

    def _publish(self, meta, image):
        self.counters.incr("frames_out")
        pixels = np.asarray(image, np.float32).reshape(-1)
        self.message_port_pub(pmt.intern("out"), pmt.cons(meta, pmt.init_f32vector(len(pixels), pixels.tolist())))

    @guarded("in")
    def _handle(self, msg):
        if not pmt.is_pair(msg) or not pmt.is_u8vector(pmt.cdr(msg)):
            raise BadPdu("decoded frame is not a PDU of a u8vector", "payload_type")
        meta = _checked_meta(msg)
        bits = np.asarray(pmt.u8vector_elements(pmt.cdr(msg)), np.uint8)
        if bits.size < self.budget.info_bits:
            rec = core.Received("bad_payload", _grey())
        else:
            rec = core.parse_payload(core.bits_to_bytes(bits[: self.budget.info_bits]), self.budget)
        if rec.status == "crc_fail":
            log.info("digital_link_rx: CRC failed (seq %s): grey image", pmt_seq(meta))
        self._emit(meta, rec)


class digital_link_rx(gr.hier_block2):
    """Digital baseline receiver: complex baseband in -> image PDUs on message port "out".

    Each PDU is an f32vector of 784 pixels in [0,1] with the OFDM RX's metadata (seq, snr_db,
    cfo, ...) and: status (ok, crc_fail, no_image, bad_payload, bad_frame, lost), codec and
    quality when decoded. ``stats()`` returns the tallies, the PHY's under "phy".
    """

    def __init__(self, k: int = 128, mode: str = "16qam-3/4", sync_threshold: float = 0.3, header_repeats: int = 4):
        gr.hier_block2.__init__(self, "diffsem_digital_link_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        self.mode = core.mode_by_name(mode)
        self.budget = core.bit_budget(int(k), self.mode)
        self.counters = Counters("frames_out", "ok", "crc_fail", "no_image", "bad_payload", "bad_frame", "lost",
                                 "seq_jumps", "gap_not_shown")
        self.message_port_register_hier_out("out")
        self.phy = ofdm_analog_rx(sync_threshold=sync_threshold, header_repeats=header_repeats)
        self.demapper = _rx_demapper(self.budget, self.counters)
        self.decoder = fec.async_decoder(make_cc_decoder(self.budget), False, False, core.MTU)
        self.imager = _rx_imager(self.budget, self.counters)
        self.connect(self, self.phy)
        self.msg_connect(self.phy, "out", self.demapper, "in")
        self.msg_connect(self.demapper, "out", self.decoder, "in")
        self.msg_connect(self.demapper, "bad", self.imager, "bad")
        self.msg_connect(self.demapper, "idle", self.imager, "idle")
        self.msg_connect(self.decoder, "out", self.imager, "in")
        self.msg_connect(self.imager, "out", self, "out")

    def stats(self) -> dict:
        return {**self.counters.snapshot(), "phy": self.phy.stats()}
