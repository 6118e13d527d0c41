"""The digital (separation) baseline as GNU Radio hier blocks: codec -> gr-fec -> QAM -> stock OFDM.

``digital_link_tx``: image PDUs in (f32vector of 784 pixels in [0, 1], or u8vector 0..255;
meta "seq" travels in the header), complex baseband bursts out. Per image:
``diffsem.baselines.digital`` fits the codec into the mode's byte budget and builds the
CRC-protected payload; gr-fec's ``async_encoder`` runs the K=7 rate-1/2 terminated
convolutional code (``cc_encoder``, polys 109/79); the frame is punctured to the mode's rate,
padded to exactly k * bits_per_symbol bits and mapped to k Gray QAM symbols, behind the stock
OFDM header (``packet_header_ofdm`` format with bits_per_payload_sym=8, so its 12-bit length is
the symbol count; ``diffsem.phy.header_symbols``, as the analog link sends it). Then the stock
``digital.ofdm_tx`` path: Schmidl & Cox sync words, ``ofdm_carrier_allocator_cvc``,
``fft_vcc``, ``ofdm_cyclic_prefixer``, and ``burst_shaper_cc`` puts zeros around each burst so
the receiver's sync sees every frame.

``digital_link_rx``: complex baseband in, image PDUs out. A copy of ``digital.ofdm_rx`` up to
the serializer (sync with a lower threshold, header demux and parser, channel estimate) whose
payload goes through ``payload_channel_refiner`` (least-squares denoised channel estimate,
pilot-based common phase correction) and the stock static equaliser, which leaves soft symbols
(the stock ``simpledfe`` outputs hard decisions). Then max-log LLRs, de-puncturing (erasures),
gr-fec's ``async_decoder`` (``cc_decoder``, soft Viterbi), CRC-16 and the codec. A frame whose
CRC fails gives a grey image; a frame whose header was never seen (a gap in the header's
sequence number) gives a grey image when the next frame arrives. Every outcome is counted.

The library-channel path for sweeps is ``diffsem.baselines.digital.DigitalScheme`` (numpy
Viterbi equivalent to gr-fec's, checked bit-exact against it in tests/qa_digital_link.py);
``run_loopback`` here pushes images through TX -> channels.channel_model -> RX so both paths
can be compared on the same images.

SNR on the air: symbols are unit power on each data carrier and the FFTs are unnormalised, so a
per-sample complex noise variance sigma_t^2 gives Es/N0 = fft_len / sigma_t^2 per carrier:
``noise_voltage_for_snr`` turns an Es/N0 in dB into channel_model's noise_voltage.
"""
from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np
import pmt
from gnuradio import blocks, digital, fec, fft, gr, pdu, analog

from diffsem import phy
from diffsem.baselines import digital as core
from diffsem.ofdm import DEFAULT_LAYOUT

log = logging.getLogger("gnuradio.diffsem.digital_link")

LEN_TAG = "packet_len"
FRAME_TAG = "frame_len"
NUM_TAG = "packet_num"
SOFT_CLIP = 2.6    # cc_decoder quantises soft values as uint8(48 * v + 128): keep |v| <= 2.6
BURST_GAP = 400    # zeros before and after each burst (samples): S&C needs quiet between frames
SEQ_MODULO = 4096  # packet_header_default's 12-bit packet number
# Schmidl & Cox timing metric threshold. The stock 0.9 needs ~13 dB per sample: the metric of a
# clean preamble at sample SNR r is about (r/(1+r))^2, so frames below ~12 dB Es/N0 would be
# missed by the sync before the code ever sees them. Pure noise scores ~1/32 (window fft_len/2).
SYNC_THRESHOLD = 0.4

_ofdm_helpers = digital.ofdm_txrx  # the stock module: reuse its sync words and pilot sequence


def _occupied(layout=DEFAULT_LAYOUT):
    return (tuple(layout.data_carriers),)


def _pilots(layout=DEFAULT_LAYOUT):
    return (tuple(layout.pilot_carriers),)


def sync_words(layout=DEFAULT_LAYOUT):
    occ, pil = _occupied(layout), _pilots(layout)
    return (list(_ofdm_helpers._make_sync_word1(layout.fft_len, occ, pil)),
            list(_ofdm_helpers._make_sync_word2(layout.fft_len, occ, pil)))


def noise_voltage_for_snr(snr_db: float, fft_len: int = DEFAULT_LAYOUT.fft_len) -> float:
    """channel_model noise_voltage (complex noise variance = voltage^2) for Es/N0 per data carrier."""
    return math.sqrt(fft_len * 10.0 ** (-snr_db / 10.0))


def mode_constellation(mode: core.Mode):
    """A GNU Radio constellation object with the core's Gray points (index = bits MSB first)."""
    pts = [complex(p) for p in core.constellation(mode.bits_per_symbol)]
    return digital.constellation_calcdist(pts, list(range(len(pts))), 1, 1).base()


def make_cc_encoder(budget: core.Budget):
    return fec.cc_encoder_make(max(budget.info_bits, 8), core.CC_K, 2, list(core.CC_POLYS), 0,
                               fec.CC_TERMINATED, False)


def make_cc_decoder(budget: core.Budget):
    return fec.cc_decoder.make(max(budget.info_bits, 8), core.CC_K, 2, list(core.CC_POLYS), 0, -1,
                               fec.CC_TERMINATED, False)


def llr_to_gr_soft(llr: np.ndarray) -> np.ndarray:
    """Core LLRs (log P0/P1) -> gr-fec soft bits (positive = 1), scaled and clipped for its uint8
    quantiser. Max-log Viterbi does not care about a common scale, only about the clipping."""
    scale = np.mean(np.abs(llr)) if llr.size else 1.0
    return np.clip(-llr / max(scale, 1e-9), -SOFT_CLIP, SOFT_CLIP).astype(np.float32)


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


def _meta(msg):
    car = pmt.car(msg)
    return car if pmt.is_dict(car) else pmt.make_dict()


class _Counters:
    def __init__(self, *names):
        self._lock = threading.Lock()
        self._c = {n: 0 for n in names}

    def add(self, name, n=1):
        with self._lock:
            self._c[name] = self._c.get(name, 0) + n

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._c)


class _tx_framer(gr.basic_block):
    """Image PDU -> payload info bits PDU (unpacked, one bit per byte) for gr-fec's encoder."""

    def __init__(self, budget: core.Budget, codecs, counters: _Counters):
        gr.basic_block.__init__(self, "diffsem_digital_tx_framer", None, None)
        self.budget, self.codecs, self.counters = budget, tuple(codecs), counters
        self.next_seq = 0
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        try:
            image = _image_from_pdu(msg)
        except ValueError as exc:
            self.counters.add("rejected")
            log.warning("digital_link_tx: dropped a malformed image PDU: %s", exc)
            return
        try:
            fit = core.fit_codec(image, self.budget.data_bytes, self.codecs)
            payload = core.build_payload(fit, self.budget)
        except Exception as exc:  # a codec failure must not take the flowgraph down
            self.counters.add("codec_error")
            log.error("digital_link_tx: codec failed on an image: %s", exc)
            return
        self.counters.add("sent")
        if fit.codec is None:
            self.counters.add("no_fit")
        meta = _meta(msg)
        seq_pmt = pmt.dict_ref(meta, pmt.intern("seq"), pmt.PMT_NIL)
        seq = (pmt.to_long(seq_pmt) if pmt.is_integer(seq_pmt) else self.next_seq) % SEQ_MODULO
        self.next_seq = (seq + 1) % SEQ_MODULO
        meta = pmt.dict_add(meta, pmt.intern("seq"), pmt.from_long(seq))
        meta = pmt.dict_add(meta, pmt.intern("codec"), pmt.intern(fit.codec or "none"))
        meta = pmt.dict_add(meta, pmt.intern("quality"), pmt.from_long(fit.quality if fit.codec else 0))
        bits = core.bytes_to_bits(payload)
        self.message_port_pub(pmt.intern("out"), pmt.cons(meta, pmt.init_u8vector(len(bits), bits.tolist())))


class _tx_mapper(gr.basic_block):
    """Mother-code bits PDU (from gr-fec) -> punctured, padded, mapped to k QAM symbols, behind
    the stock OFDM header (12-bit symbol count, 12-bit seq from the image PDU, CRC-8)."""

    def __init__(self, budget: core.Budget, counters: _Counters, layout=DEFAULT_LAYOUT):
        gr.basic_block.__init__(self, "diffsem_digital_tx_mapper", None, None)
        self.budget, self.counters, self.layout = budget, counters, layout
        self.points = core.constellation(budget.mode.bits_per_symbol).astype(np.complex64)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        coded = np.asarray(pmt.u8vector_elements(pmt.cdr(msg)), np.uint8)
        want = 2 * (self.budget.info_bits + core.CC_TAIL)
        if coded.size != want:
            self.counters.add("encoder_error")
            log.error("digital_link_tx: encoder gave %d bits, expected %d", coded.size, want)
            return
        air = np.concatenate([core.puncture(coded, self.budget.mode.rate),
                              np.zeros(self.budget.pad_coded_bits, np.uint8)])
        payload = self.points[core.bits_to_indices(air, self.budget.mode.bits_per_symbol)]
        seq_pmt = pmt.dict_ref(_meta(msg), pmt.intern("seq"), pmt.PMT_NIL)
        seq = pmt.to_long(seq_pmt) if pmt.is_integer(seq_pmt) else 0
        frame = np.concatenate([phy.header_symbols(self.budget.k, seq, self.layout), payload])
        self.message_port_pub(pmt.intern("out"), pmt.cons(pmt.make_dict(), pmt.init_c32vector(len(frame), frame.tolist())))


class digital_link_tx(gr.hier_block2):
    """Digital baseline transmitter: image PDUs on message port "in" -> OFDM baseband bursts.

    k: complex channel uses per image (payload symbols), as the semantic link's k.
    mode: "qpsk-1/2", "16qam-3/4", ... (diffsem.baselines.digital.MODES).
    codecs: candidate codecs ("jpeg", "jpeg14", "webp"), best PSNR that fits wins.
    """

    def __init__(self, k: int = 128, mode: str = "qpsk-1/2", codecs=core.CODECS, burst_gap: int = BURST_GAP):
        gr.hier_block2.__init__(self, "diffsem_digital_link_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        layout = DEFAULT_LAYOUT
        self.mode = core.mode_by_name(mode)
        self.budget = core.bit_budget(int(k), self.mode)
        if self.budget.info_bits < 8 * (core.DESCRIPTOR_BYTES + self.budget.length_bytes + core.CRC_BYTES):
            raise ValueError(f"digital_link_tx: k={k} in {mode} carries {self.budget.payload_bytes} payload "
                             f"bytes, fewer than the frame's own descriptor, length and CRC")
        if int(k) > 4095:
            raise ValueError("digital_link_tx: k > 4095 does not fit the stock header's 12-bit length")
        self._counters = _Counters("sent", "rejected", "no_fit", "codec_error", "encoder_error")
        self.message_port_register_hier_in("in")

        self.framer = _tx_framer(self.budget, codecs, self._counters)
        self.encoder = fec.async_encoder(make_cc_encoder(self.budget), False, False, False, 1500)
        self.mapper = _tx_mapper(self.budget, self._counters)
        to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, LEN_TAG)
        self.msg_connect(self, "in", self.framer, "in")
        self.msg_connect(self.framer, "out", self.encoder, "in")
        self.msg_connect(self.encoder, "out", self.mapper, "in")
        self.msg_connect(self.mapper, "out", to_stream, "pdus")

        occ, pil = _occupied(layout), _pilots(layout)
        allocator = digital.ofdm_carrier_allocator_cvc(
            layout.fft_len, occupied_carriers=occ, pilot_carriers=pil,
            pilot_symbols=_ofdm_helpers._def_pilot_symbols, sync_words=list(sync_words(layout)),
            len_tag_key=LEN_TAG)
        ifft = fft.fft_vcc(layout.fft_len, False, (), True)
        prefixer = digital.ofdm_cyclic_prefixer(layout.fft_len, layout.fft_len + layout.cp_len, 0, LEN_TAG)
        shaper = digital.burst_shaper_cc([], burst_gap, burst_gap, False, LEN_TAG)
        self.connect(to_stream, allocator, ifft, prefixer, shaper, self)

    def counters(self) -> dict:
        return self._counters.snapshot()


CHAN_TAPS_TAG = "ofdm_sync_chan_taps"
DELAY_WINDOW = (-4, 12)  # samples: an 8-tap channel plus +-4 samples of sync jitter; (-2, 8) already fails


class payload_channel_refiner(gr.sync_block):
    """Refines what the stock static equaliser will use, on the payload's FFT vectors:

    1. Channel estimate: the stock receiver estimates each carrier from one symbol, so the
       estimate's error has the noise's variance and the equalised symbols carry about twice
       the channel noise. Any channel whose impulse response fits in the cyclic prefix is a sum
       of a few complex exponentials over the carriers, so the ``ofdm_sync_chan_taps`` tag is
       replaced by its least-squares fit on delays DELAY_WINDOW (16 of 52 dimensions kept).
    2. Common phase: nothing in the stock chain follows the phase drift a residual frequency
       offset causes across a frame; each OFDM symbol is de-rotated by the phase of its four
       pilots against the channel estimate (the pilot set cycles as the allocator's does).
    """

    def __init__(self, layout=DEFAULT_LAYOUT, pilot_symbols=None, symbols_skipped: int = 1):
        fft_len = layout.fft_len
        gr.sync_block.__init__(self, "diffsem_payload_channel_refiner", [(np.complex64, fft_len)],
                               [(np.complex64, fft_len)])
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.taps_key, self.frame_key = pmt.intern(CHAN_TAPS_TAG), pmt.intern(FRAME_TAG)
        self.fft_len, self.skipped = fft_len, symbols_skipped
        carriers = np.array(sorted(list(layout.data_carriers) + list(layout.pilot_carriers)))
        self.active = carriers + fft_len // 2                      # fft_vcc(shift=True) order
        delays = np.arange(*DELAY_WINDOW)
        basis = np.exp(-2j * np.pi * np.outer(carriers, delays) / fft_len)
        self.projector = basis @ np.linalg.pinv(basis)
        self.pilot_index = np.asarray(layout.pilot_carriers) + fft_len // 2
        self.pilot_sets = np.asarray(pilot_symbols if pilot_symbols is not None else _ofdm_helpers._def_pilot_symbols,
                                     np.complex64)
        self.taps = None
        self.symbol = 0

    def work(self, input_items, output_items):
        inp, out = input_items[0], output_items[0]
        n = len(out)
        base_in, base_out = self.nitems_read(0), self.nitems_written(0)
        tags_at: dict[int, list] = {}
        for tag in self.get_tags_in_window(0, 0, n):
            tags_at.setdefault(tag.offset - base_in, []).append(tag)
        for i in range(n):
            for tag in tags_at.get(i, ()):
                value = tag.value
                if pmt.eq(tag.key, self.frame_key):
                    self.symbol = 0
                elif pmt.eq(tag.key, self.taps_key) and pmt.is_c32vector(value):
                    taps = np.asarray(pmt.c32vector_elements(value), np.complex64)
                    if taps.size == self.fft_len and np.isfinite(taps).all():
                        taps[self.active] = self.projector @ taps[self.active]
                        value = pmt.init_c32vector(len(taps), taps.tolist())
                        self.taps = taps
                self.add_item_tag(0, base_out + i, tag.key, value)
            row = inp[i]
            if self.taps is not None:
                pilots = self.pilot_sets[(self.symbol + self.skipped) % len(self.pilot_sets)]
                ref = self.taps[self.pilot_index] * pilots
                phase = np.angle(np.sum(row[self.pilot_index] * np.conj(ref)))
                row = row * np.complex64(np.exp(-1j * phase))
            out[i] = row
            self.symbol += 1
        return n


class _rx_demapper(gr.basic_block):
    """Soft equalised symbols PDU -> gr-fec soft bits (de-punctured mother code) PDU."""

    def __init__(self, budget: core.Budget, counters: _Counters):
        gr.basic_block.__init__(self, "diffsem_digital_rx_demapper", None, None)
        self.budget, self.counters = budget, counters
        self.points = core.constellation(budget.mode.bits_per_symbol)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.message_port_register_out(pmt.intern("bad"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg):
        meta = _meta(msg)
        try:
            y = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)), np.complex128)
        except Exception:
            y = np.zeros(0, np.complex128)
        if y.size != self.budget.k or not np.isfinite(y).all():
            self.counters.add("bad_frame")
            log.warning("digital_link_rx: frame of %d symbols (expected %d) or non-finite: grey image",
                        y.size, self.budget.k)
            self.message_port_pub(pmt.intern("bad"), pmt.cons(meta, pmt.init_u8vector(0, [])))
            return
        # Decision-directed noise estimate: the reported SNR, and the LLR scale for this frame.
        nearest = self.points[np.argmin(np.abs(y[:, None] - self.points) ** 2, axis=1)]
        noise_var = max(float(np.mean(np.abs(y - nearest) ** 2)), 1e-6)
        llr = core.demap_llr(y[None], np.full((1, y.size), noise_var), self.budget.mode.bits_per_symbol)[0]
        n_mother = 2 * (self.budget.info_bits + core.CC_TAIL)
        used = core.punctured_length(n_mother, self.budget.mode.rate)
        soft = llr_to_gr_soft(core.depuncture(llr[:used], self.budget.mode.rate, n_mother))
        meta = pmt.dict_add(meta, pmt.intern("snr_db"), pmt.from_double(-10 * math.log10(noise_var)))
        self.message_port_pub(pmt.intern("out"), pmt.cons(meta, pmt.init_f32vector(len(soft), soft.tolist())))


class _rx_imager(gr.basic_block):
    """Decoded info bits PDU -> image PDU (f32vector 784) with status; grey on any failure.

    Tracks the header's packet number: frames missing between two received ones were lost
    before their header decoded, and are shown (grey) and counted when the gap is seen."""

    def __init__(self, budget: core.Budget, counters: _Counters):
        gr.basic_block.__init__(self, "diffsem_digital_rx_imager", None, None)
        self.budget, self.counters = budget, counters
        self.next_seq = None
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_in(pmt.intern("bad"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self._handle)
        self.set_msg_handler(pmt.intern("bad"), lambda msg: self._emit(_meta(msg), core.Received(
            "bad_frame", np.full((core.SIDE, core.SIDE), core.GREY, np.float32)), counted=True))

    def _seq(self, meta):
        seq = pmt.dict_ref(meta, pmt.intern(NUM_TAG), pmt.PMT_NIL)
        return pmt.to_long(seq) if pmt.is_integer(seq) else None

    def _emit(self, meta, rec: core.Received, counted=False):
        seq = self._seq(meta)
        if seq is not None:
            meta = pmt.dict_add(meta, pmt.intern("seq"), pmt.from_long(seq))
        if seq is not None:
            if self.next_seq is not None:
                for missing in range((seq - self.next_seq) % SEQ_MODULO):
                    self.counters.add("lost")
                    self.counters.add("frames_out")
                    lost = pmt.dict_add(pmt.make_dict(), pmt.intern("status"), pmt.intern("lost"))
                    lost_seq = pmt.from_long((self.next_seq + missing) % SEQ_MODULO)
                    lost = pmt.dict_add(pmt.dict_add(lost, pmt.intern(NUM_TAG), lost_seq), pmt.intern("seq"), lost_seq)
                    self._publish(lost, np.full(core.SIDE * core.SIDE, core.GREY, np.float32))
            self.next_seq = (seq + 1) % SEQ_MODULO
        if not counted:
            self.counters.add(rec.status)
        self.counters.add("frames_out")
        meta = pmt.dict_add(meta, pmt.intern("status"), pmt.intern(rec.status))
        if rec.codec:
            meta = pmt.dict_add(meta, pmt.intern("codec"), pmt.intern(rec.codec))
            meta = pmt.dict_add(meta, pmt.intern("quality"), pmt.from_long(core.quality_of(rec.quality_index)))
        self._publish(meta, rec.image.reshape(-1).astype(np.float32))

    def _publish(self, meta, pixels):
        self.message_port_pub(pmt.intern("out"), pmt.cons(meta, pmt.init_f32vector(len(pixels), pixels.tolist())))

    def _handle(self, msg):
        meta = _meta(msg)
        bits = np.asarray(pmt.u8vector_elements(pmt.cdr(msg)), np.uint8)
        if bits.size < self.budget.info_bits:
            rec = core.Received("bad_payload", np.full((core.SIDE, core.SIDE), core.GREY, np.float32))
        else:
            rec = core.parse_payload(core.bits_to_bytes(bits[: self.budget.info_bits]), self.budget)
        if rec.status == "crc_fail":
            log.info("digital_link_rx: CRC failed (packet %s): grey image", self._seq(meta))
        self._emit(meta, rec)


class digital_link_rx(gr.hier_block2):
    """Digital baseline receiver: complex baseband in -> image PDUs on message port "out".

    Each PDU is an f32vector of 784 pixels in [0,1] with metadata: status (ok, crc_fail,
    no_image, bad_payload, bad_frame, lost), seq (= packet_num, the header's 12-bit number),
    snr_db (decision-directed Es/N0 estimate),
    codec and quality when decoded. ``counters()`` returns the tallies.
    """

    def __init__(self, k: int = 128, mode: str = "qpsk-1/2", sync_threshold: float = SYNC_THRESHOLD):
        gr.hier_block2.__init__(self, "diffsem_digital_link_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        layout = DEFAULT_LAYOUT
        self.mode = core.mode_by_name(mode)
        self.budget = core.bit_budget(int(k), self.mode)
        self._counters = _Counters("frames_out", "ok", "crc_fail", "no_image", "bad_payload", "bad_frame", "lost")
        self.message_port_register_hier_out("out")
        fft_len, cp_len = layout.fft_len, layout.cp_len
        occ, pil = _occupied(layout), _pilots(layout)
        sw1, sw2 = sync_words(layout)
        pilot_symbols = _ofdm_helpers._def_pilot_symbols

        sync = digital.ofdm_sync_sc_cfb(fft_len, cp_len, False, float(sync_threshold))
        delay = blocks.delay(gr.sizeof_gr_complex, fft_len + cp_len)
        oscillator = analog.frequency_modulator_fc(-2.0 / fft_len)
        mixer = blocks.multiply_cc()
        hpd = digital.header_payload_demux(3, fft_len, cp_len, FRAME_TAG, "", True)
        self.connect(self, sync)
        self.connect(self, delay, (mixer, 0), (hpd, 0))
        self.connect((sync, 0), oscillator, (mixer, 1))
        self.connect((sync, 1), (hpd, 1))

        bpsk = digital.constellation_bpsk()
        header_eq = digital.ofdm_frame_equalizer_vcvc(
            digital.ofdm_equalizer_simpledfe(fft_len, bpsk.base(), occ, pil, pilot_symbols, 0).base(),
            cp_len, FRAME_TAG, True, 1)
        header_formatter = digital.packet_header_ofdm(occ, 1, LEN_TAG, FRAME_TAG, NUM_TAG, 1, 8)
        header_parser = digital.packet_headerparser_b(header_formatter.formatter())
        self.connect((hpd, 0), fft.fft_vcc(fft_len, True, (), True), digital.ofdm_chanest_vcvc(sw1, sw2, 1),
                     header_eq, digital.ofdm_serializer_vcc(fft_len, occ, FRAME_TAG),
                     digital.constellation_decoder_cb(bpsk.base()), header_parser)
        self.msg_connect(header_parser, "header_data", hpd, "header_data")

        payload_eq = digital.ofdm_frame_equalizer_vcvc(
            digital.ofdm_equalizer_static(fft_len, occ, pil, pilot_symbols, 1, True).base(), cp_len, FRAME_TAG)
        serializer = digital.ofdm_serializer_vcc(fft_len, occ, FRAME_TAG, LEN_TAG, 1)
        to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, LEN_TAG)
        self.refiner = payload_channel_refiner(layout, pilot_symbols, 1)  # Python block: keep a reference
        self.connect((hpd, 1), fft.fft_vcc(fft_len, True, (), True), self.refiner, payload_eq, serializer, to_pdu)

        self.demapper = _rx_demapper(self.budget, self._counters)
        self.decoder = fec.async_decoder(make_cc_decoder(self.budget), False, False, 1500)
        self.imager = _rx_imager(self.budget, self._counters)
        self.msg_connect(to_pdu, "pdus", self.demapper, "in")
        self.msg_connect(self.demapper, "out", self.decoder, "in")
        self.msg_connect(self.demapper, "bad", self.imager, "bad")
        self.msg_connect(self.decoder, "out", self.imager, "in")
        self.msg_connect(self.imager, "out", self, "out")

    def counters(self) -> dict:
        return self._counters.snapshot()

    stats = counters  # the name link_metrics and the analog RX use


# --------------------------------------------------------------------------------------------
# Helpers: gr-fec on frames (for the equivalence check), and a whole loopback run
# --------------------------------------------------------------------------------------------

class _collector(gr.basic_block):
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


def _run_async(block, pdus, timeout: float = 30.0):
    tb = gr.top_block()
    sink = _collector()
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


def gr_fec_encode(info_bits: np.ndarray, budget: core.Budget) -> np.ndarray:
    """gr-fec cc_encoder on info bits [B, info_bits] -> mother-code bits [B, 2(info_bits+6)]."""
    enc = fec.async_encoder(make_cc_encoder(budget), False, False, False, 1500)
    msgs = _run_async(enc, [pmt.cons(pmt.make_dict(), pmt.init_u8vector(len(b), b.tolist())) for b in info_bits])
    return np.stack([np.asarray(pmt.u8vector_elements(pmt.cdr(m)), np.uint8) for m in msgs])


def gr_fec_decode(llr_air: np.ndarray, budget: core.Budget) -> np.ndarray:
    """gr-fec cc_decoder on air-bit LLRs [B, coded_bits] (log P0/P1) -> info bits [B, info_bits]."""
    n_mother = 2 * (budget.info_bits + core.CC_TAIL)
    used = core.punctured_length(n_mother, budget.mode.rate)
    dec = fec.async_decoder(make_cc_decoder(budget), False, False, 1500)
    pdus = []
    for llr in llr_air:
        soft = llr_to_gr_soft(core.depuncture(llr[:used], budget.mode.rate, n_mother))
        pdus.append(pmt.cons(pmt.make_dict(), pmt.init_f32vector(len(soft), soft.tolist())))
    msgs = _run_async(dec, pdus)
    return np.stack([np.asarray(pmt.u8vector_elements(pmt.cdr(m)), np.uint8)[: budget.info_bits] for m in msgs])


def image_pdu(image) -> pmt.pmt_t:
    x = np.asarray(image, np.float32).reshape(-1)
    return pmt.cons(pmt.make_dict(), pmt.init_f32vector(len(x), x.tolist()))


def run_loopback(images, k: int, mode: str, snr_db: float, seed: int = 0, timeout: float = 60.0,
                 extra_pdus=()):
    """Push images through digital_link_tx -> channels.channel_model (AWGN) -> digital_link_rx.

    Returns (received images [N,1,28,28], metadata dicts, tx counters, rx counters), N = len(images):
    frames the receiver never reported (lost with their header after the last received one)
    are filled in grey with status "lost". A grey flush frame follows the images so the last
    burst is pushed through the receiver's sync and demux delays; it is not part of the result.
    ``extra_pdus`` are posted to the TX before the images (malformed-input tests)."""
    from gnuradio import channels
    tb = gr.top_block()
    tx = digital_link_tx(k, mode)
    rx = digital_link_rx(k, mode)
    chan = channels.channel_model(noise_voltage=noise_voltage_for_snr(snr_db), frequency_offset=0.0,
                                  epsilon=1.0, taps=[1.0], noise_seed=seed, block_tags=False)
    sink = _collector()
    tb.connect(tx, chan, rx)
    tb.msg_connect(rx, "out", sink, "in")
    flush = image_pdu(np.full(784, core.GREY, np.float32))
    tb.start()
    try:
        port, framer = pmt.intern("in"), tx.framer.to_basic_block()
        for p in extra_pdus:
            framer._post(port, p)
        for img in images:
            framer._post(port, image_pdu(img))
        end = time.monotonic() + timeout
        # Keep flushing until every image frame (seq 0..N-1) is accounted for or time runs out.
        while time.monotonic() < end:
            framer._post(port, flush)
            seqs = [_seq_of(m) for m in list(sink.messages)]
            if any(s is not None and s >= len(images) for s in seqs):
                break
            sink.wait_for(len(sink.messages) + 1, 0.2)
    finally:
        tb.stop()
        tb.wait()
    by_seq = {}
    for m in sink.messages:
        s = _seq_of(m)
        if s is not None and s < len(images) and s not in by_seq:
            by_seq[s] = m
    out = np.full((len(images), 1, 28, 28), core.GREY, np.float32)
    metas = []
    for i in range(len(images)):
        m = by_seq.get(i)
        if m is None:
            metas.append({"status": "lost", NUM_TAG: i})
            continue
        out[i, 0] = np.asarray(pmt.f32vector_elements(pmt.cdr(m)), np.float32).reshape(28, 28)
        metas.append(pmt.to_python(pmt.car(m)))
    return out, metas, tx.counters(), rx.counters()


def _seq_of(msg):
    v = pmt.dict_ref(pmt.car(msg), pmt.intern(NUM_TAG), pmt.PMT_NIL)
    return pmt.to_long(v) if pmt.is_integer(v) else None
