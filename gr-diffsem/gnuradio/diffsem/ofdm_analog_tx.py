"""Analog OFDM transmitter: PDUs of complex symbols in, zero-padded baseband bursts out."""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import blocks, digital, fft, gr, pdu

from diffsem import phy
from diffsem.phy import impairments
from diffsem.phy.ofdm import make_layout
from diffsem.phy import LEN_TAG

from diffsem.link.pdu import KindLog, validate_meta

from ._pdu import BadPdu, Counters, dict_to_pmt, guarded, pmt_to_py, rejections


class _framer(gr.basic_block):
    """Validates PDUs and prepends the stock OFDM header (length, sequence number, CRC-8).

    Refused input (not a PDU, payload not a c32vector, empty, longer than 4095, NaN/Inf) is logged
    and counted, never sent. Metadata is forwarded (it becomes stream tags on the burst's first
    sample) except the internal length key.
    """

    def __init__(self, layout, payload_scale, counters, header_repeats):
        gr.basic_block.__init__(self, name="diffsem_ofdm_framer", in_sig=None, out_sig=None)
        self.layout = layout
        self.payload_scale = np.float32(payload_scale)
        self.counters = counters
        self.next_seq = 0
        self.header_repeats = int(header_repeats)
        self._log = None
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def _refuse(self, reason, text):
        self.counters.incr(f"rejected_{reason}")
        if self._log is None:
            self._log = KindLog(self.logger.warn)
        self._log(reason, f"refused PDU: {text}")  # once per kind, then rate-limited

    @guarded("in")
    def handle(self, msg):
        if not pmt.is_pair(msg):
            return self._refuse("not_pdu", "message is not a PDU (metadata . vector)")
        meta, vec = pmt.car(msg), pmt.cdr(msg)
        if not (pmt.is_dict(meta) or pmt.is_null(meta)):
            return self._refuse("not_pdu", "PDU metadata is not a dict")
        if not pmt.is_uniform_vector(vec):
            return self._refuse("wrong_type", "PDU data is not a uniform vector")
        if not pmt.is_c32vector(vec):
            return self._refuse("wrong_type", "PDU data is not a c32vector (complex64 symbols)")
        payload = np.asarray(pmt.c32vector_elements(vec), dtype=np.complex64)
        problem = phy.check_payload(payload)
        if problem is not None:
            return self._refuse(*problem)
        try:  # metadata becomes stream tags: only symbol keys and PMT-safe values may pass
            meta_py = validate_meta(pmt_to_py(meta))
        except BadPdu as exc:
            return self._refuse(exc.kind, str(exc))
        meta_py.pop(LEN_TAG, None)
        meta = dict_to_pmt(meta_py)
        seq = self.next_seq if meta_py.get("seq") is None else int(meta_py["seq"])
        seq %= phy.SEQ_MODULO
        self.next_seq = (seq + 1) % phy.SEQ_MODULO
        header = phy.header_copies(payload.size, seq, self.header_repeats, self.layout)
        frame = np.concatenate((header,
                                payload * self.payload_scale)).astype(np.complex64)
        meta = pmt.dict_add(meta, pmt.intern("seq"), pmt.from_long(seq))
        self.counters.incr("frames")
        self.message_port_pub(pmt.intern("out"), pmt.cons(meta, pmt.init_c32vector(frame.size, frame.tolist())))


class _burst_padder(gr.basic_block):
    """Clips a (scaled) burst if asked and surrounds it with zeros. (burst_shaper_cc would hold
    the last burst's trailing zeros until the next burst arrives, so the receiver could not finish
    the last frame of a message-driven run; a PDU-level padder emits each burst whole.)"""

    def __init__(self, pad_front, pad_back, clip_level=0.0):
        gr.basic_block.__init__(self, name="diffsem_burst_padder", in_sig=None, out_sig=None)
        self.front = [0j] * int(pad_front)
        self.back = [0j] * int(pad_back)
        self.clip_level = float(clip_level)  # amplitude; 0 = no clipping
        self.bursts = self.samples = 0  # handed to the stream so far (a run's end: see emitted())
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    @guarded("in")
    def handle(self, msg):
        burst = pmt.c32vector_elements(pmt.cdr(msg))  # a list: padding lists costs less than numpy round trips
        if self.clip_level > 0:
            burst = impairments.clip(np.asarray(burst, dtype=np.complex64), self.clip_level).tolist()
        out = self.front + burst + self.back
        self.bursts += 1
        self.samples += len(out)
        self.message_port_pub(pmt.intern("out"), pmt.cons(pmt.car(msg), pmt.init_c32vector(len(out), out)))


class ofdm_analog_tx(gr.hier_block2):
    """Analog OFDM TX (hier block). Message input "in": PDU (dict metadata, c32vector of 1..4095
    unit-power payload symbols). Output: complex baseband stream of zero-padded bursts.

    Burst: 2 Schmidl & Cox preamble symbols, `header_repeats` BPSK header symbols (stock
    packet_header_ofdm format: 12-bit symbol count, 12-bit sequence number = metadata "seq" if
    present else a counter, CRC-8), copy c cyclically shifted by c*48/repeats data carriers so
    each bit rides carriers spread over the band; the RX combines the copies (maximum-ratio), so
    the uncoded header survives at 5 dB and in selective fades), then ceil(n/48) payload OFDM symbols (symbol i on data carrier i % 48 of symbol i // 48,
    unused cells of the last symbol zero), built by ofdm_carrier_allocator_cvc, fft_vcc,
    ofdm_cyclic_prefixer, then zero padding before/after each burst (Schmidl & Cox detection needs
    quiet between bursts).

    Power: samples are scaled by 1/sqrt(n_active) (n_active = data + pilot carriers), so with
    unit-power payload symbols every OFDM symbol (preambles and header included) has unit average
    power per sample; the padding is zero. `payload_scale` multiplies payload symbols only (the
    RX must be given the same value to undo it).

    clip_db: power-amplifier back-off. None (default) = linear TX. A number clips the burst's
    amplitude at clip_db dB above its RMS (the unit-power RMS above, i.e. amplitude
    10**(clip_db/20)), phase kept (soft limiter, diffsem.phy.impairments.clip): OFDM's PAPR is ~10 dB
    at 1e-3, so a few dB of back-off clips often. The clipped burst's power drops a little; the
    clipping distortion falls on all carriers, preamble and header included, as from a real PA.

    `stats()` -> dict of counters (frames sent, PDUs refused by reason).
    """

    def __init__(self, fft_len=64, cp_len=16, occupied_carriers=None, pilot_carriers=None,
                 pilot_symbols=None, pad_front=None, pad_back=None, payload_scale=1.0,
                 header_repeats=4, clip_db=None):
        gr.hier_block2.__init__(self, "ofdm_analog_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.layout = make_layout(fft_len, cp_len, occupied_carriers, pilot_carriers, pilot_symbols)
        lay = self.layout
        sym_len = lay.fft_len + lay.cp_len
        # the RX sync needs ~2 symbols of quiet before a burst (and the stock ofdm_rx, which the
        # benchmark compares against, some samples after it); defaults are comfortably above both.
        self.pad_front = 4 * sym_len if pad_front is None else int(pad_front)
        self.pad_back = 4 * sym_len if pad_back is None else int(pad_back)
        self.counters = Counters("frames", "rejected_not_pdu", "rejected_wrong_type",
                                 "rejected_empty", "rejected_too_long", "rejected_nonfinite")
        self.message_port_register_hier_in("in")
        if not 1 <= int(header_repeats) <= 16:
            raise ValueError("header_repeats must be in 1..16")
        self.header_repeats = int(header_repeats)
        self.framer = _framer(lay, payload_scale, self.counters, self.header_repeats)
        to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, LEN_TAG)
        sync1, sync2 = phy.sync_words(lay)
        allocator = digital.ofdm_carrier_allocator_cvc(
            lay.fft_len, occupied_carriers=[list(lay.data_carriers)],
            pilot_carriers=[list(lay.pilot_carriers)], pilot_symbols=[list(lay.pilot_symbols)],
            sync_words=[list(sync1), list(sync2)], len_tag_key=LEN_TAG)
        ifft = fft.fft_vcc(lay.fft_len, False, (), True)
        prefixer = digital.ofdm_cyclic_prefixer(lay.fft_len, sym_len, 0, LEN_TAG)
        to_burst = pdu.tagged_stream_to_pdu(gr.types.complex_t, LEN_TAG)
        if clip_db is not None and not np.isfinite(float(clip_db)):
            raise ValueError(f"clip_db must be a number of dB above RMS or None, got {clip_db}")
        self.clip_db = None if clip_db is None else float(clip_db)
        clip_level = 0.0 if self.clip_db is None else impairments.db_to_amplitude(self.clip_db)
        self.padder = _burst_padder(self.pad_front, self.pad_back, clip_level)
        out_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, LEN_TAG)
        scale = blocks.multiply_const_cc(phy.tx_scale(lay))
        # Tagged-stream blocks need a whole frame in one output buffer: GNU Radio's default (32 kB)
        # holds ~1 776 payload symbols, and a longer frame ended the block's thread for good
        # ("Buffer too small for min_noutput_items"). Size every buffer for the longest frame the
        # header admits, so each admitted length goes on air whole.
        max_samples = self.burst_length(phy.MAX_SYMBOLS_PER_FRAME)
        max_vectors = max_samples // sym_len + 1
        for block, items in ((to_stream, max_samples), (allocator, max_vectors), (ifft, max_vectors),
                             (prefixer, max_samples), (scale, max_samples), (out_stream, max_samples)):
            block.set_min_output_buffer(2 * int(items))  # a scheduler hands out at most half a buffer
        self.msg_connect(self, "in", self.framer, "in")
        self.msg_connect(self.framer, "out", to_stream, "pdus")
        self.connect(to_stream, allocator, ifft, prefixer, scale, to_burst)
        self.msg_connect(to_burst, "pdus", self.padder, "in")
        self.msg_connect(self.padder, "out", out_stream, "pdus")
        self.connect(out_stream, self)

    def stats(self) -> dict:
        out = self.counters.snapshot()
        for block in (self.framer, self.padder):  # handler errors (none expected: counted if any)
            out.update(rejections(block).snapshot())
        return out

    def emitted(self) -> tuple[int, int]:
        """(bursts, samples) handed to the output stream so far: the stream holds nothing else,
        so a receiver that has read `samples` has seen every burst."""
        return self.padder.bursts, self.padder.samples

    def burst_length(self, n_symbols: int) -> int:
        """Samples per burst (padding included) for an n-symbol payload."""
        lay = self.layout
        return (2 + self.header_repeats + lay.n_ofdm_symbols(n_symbols)) * (lay.fft_len + lay.cp_len) + self.pad_front + self.pad_back
