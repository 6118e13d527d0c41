"""The digital (separation) baseline as GNU Radio hier blocks: codec -> gr-fec -> QAM -> OFDM.

Both links ride the same PHY: the QAM symbols of the digital link go through exactly the OFDM
transmitter and receiver the semantic link's analog symbols use (``ofdm_analog_tx`` /
``ofdm_analog_rx``: the stock gr-digital allocator, FFT, cyclic prefix, Schmidl & Cox sync and
``packet_header_ofdm`` header format, then the per-frame burst receiver with pilot phase
tracking, a denoised channel estimate and a per-symbol noise variance), so the same k payload symbols per image, the same
preamble and header overhead, the same channel and the same estimation errors reach both. Only
source and channel coding differ.

``digital_link_tx``: image PDUs in (f32vector of 784 pixels in [0, 1], or u8vector 0..255; meta
"seq" travels in the OFDM header), complex baseband bursts out. Per image
``diffsem.baselines.digital`` fits the codec into the mode's byte budget and builds the CRC-16
payload; gr-fec's ``async_encoder`` runs the K=7 rate-1/2 terminated convolutional code
(``cc_encoder``, polys 109/79, 802.11's); the coded frame is punctured to the mode's rate,
padded to exactly k * bits_per_symbol bits, block-interleaved over the subcarriers, scrambled
(802.11's scrambler, state from the header's sequence number) and Gray-mapped to k QAM symbols
(average power 1 per symbol over frames), handed to ``ofdm_analog_tx`` as one symbol PDU. A
mode with no room for a frame refuses each image (logged, counted) and sends an idle frame.

The library-channel path for sweeps is ``diffsem.baselines.digital.DigitalScheme`` (numpy
Viterbi, checked frame by frame against gr-fec's decoder in the block tests);
``gnuradio.diffsem.harness.run_loopback`` pushes images through TX -> channel -> RX.
"""
from __future__ import annotations

import logging

import numpy as np
import pmt
from gnuradio import fec, gr

from diffsem import phy
from diffsem.baselines import digital as core
from diffsem.link.pdu import KindLog
from diffsem.link.seq import SeqCounter

from ._pdu import Counters, guarded, pdu_meta, pmt_seq
from .ofdm_analog_tx import ofdm_analog_tx

log = logging.getLogger("gnuradio.diffsem.digital_link_tx")


def make_cc_encoder(budget: core.Budget):
    return fec.cc_encoder_make(max(budget.info_bits, 8), core.CC_K, 2, list(core.CC_POLYS), 0,
                               fec.CC_TERMINATED, False)


def _image_from_pdu(msg) -> np.ndarray:
    """PDU -> [28,28] float32 in [0,1]; ValueError with the reason if it is not one image."""
    if not pmt.is_pair(msg):
        raise ValueError("not a PDU (expected a pair of metadata and vector)")
    vec = pmt.cdr(msg)
    if pmt.is_f32vector(vec):
        x = np.asarray(pmt.f32vector_elements(vec), np.float32)
    elif pmt.is_u8vector(vec):
        x = np.asarray(pmt.u8vector_elements(vec), np.float32) / 255.0
    else:
        raise ValueError("PDU vector must be f32vector (pixels in [0,1]) or u8vector (0..255)")
    if x.size != core.SIDE * core.SIDE:
        raise ValueError(f"image PDU has {x.size} values, expected {core.SIDE * core.SIDE} (28x28)")
    if not np.isfinite(x).all():
        raise ValueError("image PDU contains NaN or infinity")
    return np.clip(x, 0.0, 1.0).reshape(core.SIDE, core.SIDE)


class _tx_framer(gr.basic_block):
    """Image PDU -> payload info bits PDU (unpacked, one bit per byte) for gr-fec's encoder.

    When the mode has no room for a frame (budget.carries_frame is False) the image is refused:
    counted ("no_room"), logged, and an idle frame (scrambled zeros, k symbols) goes straight to
    the PHY on port "idle", so the receiver sees one frame per image, as on the library path."""

    LOG_FIRST, LOG_EVERY = 3, 100   # refusals logged: the first few, then one in LOG_EVERY

    def __init__(self, budget: core.Budget, codecs, counters: Counters):
        gr.basic_block.__init__(self, "diffsem_digital_tx_framer", None, None)
        self.budget, self.codecs, self.counters = budget, tuple(codecs), counters
        self.seqs = SeqCounter()
        self.refused = 0
        self._log = KindLog(log.warning)
        self.points = core.constellation(budget.mode.bits_per_symbol).astype(np.complex64)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.message_port_register_out(pmt.intern("idle"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _take_seq(self, meta) -> int:
        return self.seqs.take(pmt_seq(meta))

    def _refuse(self, meta):
        """No room for the frame's own fields in k symbols of this mode: send an idle frame."""
        seq = self._take_seq(meta)
        self.refused += 1
        self.counters.incr("no_room")
        if self.refused <= self.LOG_FIRST or self.refused % self.LOG_EVERY == 0:
            b = self.budget
            log.warning("digital_link_tx: image refused (seq %d, %d so far): k=%d in %s carries %d payload "
                        "byte(s), fewer than the frame's own %d (descriptor, length, CRC); an idle frame is sent "
                        "and the receiver shows grey", seq, self.refused, b.k, b.mode.name, b.payload_bytes,
                        core.DESCRIPTOR_BYTES + b.length_bytes + core.CRC_BYTES)
        bits = core.idle_frame_bits(self.budget, seq)
        symbols = self.points[core.bits_to_indices(bits, self.budget.mode.bits_per_symbol)]
        out = pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(seq))
        self.message_port_pub(pmt.intern("idle"), pmt.cons(out, pmt.init_c32vector(len(symbols), symbols.tolist())))

    @guarded("in")
    def _handle(self, msg):
        try:
            image = _image_from_pdu(msg)
        except ValueError as exc:
            self.counters.incr("rejected")
            self._log("rejected", f"digital_link_tx: dropped a malformed image PDU: {exc}")
            return
        if not self.budget.carries_frame:
            self._refuse(pdu_meta(msg))
            return
        try:
            fit = core.fit_codec(image, self.budget.data_bytes, self.codecs)
            payload = core.build_payload(fit, self.budget)
        except Exception as exc:  # a codec failure must not take the flowgraph down
            self.counters.incr("codec_error")
            log.error("digital_link_tx: codec failed on an image: %s", exc)
            return
        self.counters.incr("sent")
        if fit.codec is None:
            self.counters.incr("no_fit")
        meta = pdu_meta(msg)
        seq = self._take_seq(meta)
        meta = pmt.dict_add(meta, pmt.intern("seq"), pmt.from_long(seq))
        meta = pmt.dict_add(meta, pmt.intern("codec"), pmt.intern(fit.codec or "none"))
        meta = pmt.dict_add(meta, pmt.intern("quality"), pmt.from_long(fit.quality if fit.codec else 0))
        bits = core.bytes_to_bits(payload)
        self.message_port_pub(pmt.intern("out"), pmt.cons(meta, pmt.init_u8vector(len(bits), bits.tolist())))


class _tx_mapper(gr.basic_block):
    """Mother-code bits PDU (from gr-fec) -> punctured, padded, interleaved, k Gray QAM symbols."""

    def __init__(self, budget: core.Budget, counters: Counters):
        gr.basic_block.__init__(self, "diffsem_digital_tx_mapper", None, None)
        self.budget, self.counters = budget, counters
        self.points = core.constellation(budget.mode.bits_per_symbol).astype(np.complex64)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    @guarded("in")
    def _handle(self, msg):
        coded = np.asarray(pmt.u8vector_elements(pmt.cdr(msg)), np.uint8)
        want = 2 * (self.budget.info_bits + core.CC_TAIL)
        if coded.size != want:
            self.counters.incr("encoder_error")
            log.error("digital_link_tx: encoder gave %d bits, expected %d", coded.size, want)
            return
        seq = pmt_seq(pdu_meta(msg), 0)
        air = core.air_bits_from_mother(coded, self.budget, seq)
        symbols = self.points[core.bits_to_indices(air, self.budget.mode.bits_per_symbol)]
        meta = pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(seq))
        self.message_port_pub(pmt.intern("out"), pmt.cons(meta, pmt.init_c32vector(len(symbols), symbols.tolist())))


class digital_link_tx(gr.hier_block2):
    """Digital baseline transmitter: image PDUs on message port "in" -> OFDM baseband bursts.

    k: complex channel uses per image (payload symbols), the semantic link's k.
    mode: "qpsk-1/2", "16qam-3/4", ... (diffsem.baselines.digital.MODES).
    codecs: candidate codecs ("jpeg", "jpeg14", "webp"): the best PSNR that fits wins.
    header_repeats: header copies (as ofdm_analog_tx; the RX must use the same number).

    A mode whose k symbols cannot hold the frame's own descriptor, length and CRC (e.g. k=32 at
    BPSK 1/2: 1 payload byte) is not an error (link adaptation picks such modes at low SNR, and
    a radio must not crash on them): each image is refused with a log line and counted
    ("no_room"), and an idle frame of k symbols takes its place on the air, so the receiver shows
    a grey image for it and counts it ("no_image"), as DigitalScheme does on the library channel.
    Counters (``stats()``): sent (images framed and encoded), no_fit (sent as "no image": no
    codec setting fits), no_room, rejected (malformed PDUs), codec_error, encoder_error.
    """

    def __init__(self, k: int = 128, mode: str = "16qam-3/4", codecs=core.CODECS, header_repeats: int = 4):
        gr.hier_block2.__init__(self, "diffsem_digital_link_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.mode = core.mode_by_name(mode)
        self.budget = core.bit_budget(int(k), self.mode)
        if int(k) > phy.MAX_SYMBOLS_PER_FRAME or self.budget.payload_bytes > core.MTU:
            raise ValueError(f"digital_link_tx: k={k} does not fit one frame (<= {phy.MAX_SYMBOLS_PER_FRAME} "
                             f"symbols, <= {core.MTU} payload bytes)")
        if not self.budget.carries_frame:
            log.warning("digital_link_tx: k=%d in %s carries %d payload byte(s), fewer than the frame's own "
                        "descriptor, length and CRC: every image will be refused (grey at the receiver)",
                        int(k), mode, self.budget.payload_bytes)
        self.counters = Counters("sent", "rejected", "no_fit", "no_room", "codec_error", "encoder_error")
        self.message_port_register_hier_in("in")
        # Python blocks are kept as attributes: a hier block does not keep them alive.
        self.framer = _tx_framer(self.budget, codecs, self.counters)
        self.encoder = fec.async_encoder(make_cc_encoder(self.budget), False, False, False, core.MTU)
        self.mapper = _tx_mapper(self.budget, self.counters)
        self.phy = ofdm_analog_tx(header_repeats=header_repeats)
        self.msg_connect(self, "in", self.framer, "in")
        self.msg_connect(self.framer, "out", self.encoder, "in")
        self.msg_connect(self.encoder, "out", self.mapper, "in")
        self.msg_connect(self.mapper, "out", self.phy, "in")
        self.msg_connect(self.framer, "idle", self.phy, "in")
        self.connect(self.phy, self)

    def stats(self) -> dict:
        return {**self.counters.snapshot(), "phy": self.phy.stats()}
