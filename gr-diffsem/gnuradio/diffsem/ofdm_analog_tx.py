"""Analog OFDM transmitter: PDUs of complex symbols in, zero-padded baseband bursts out."""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from diffsem import phy
from diffsem.phy import impairments
from diffsem.phy.ofdm import make_layout
from diffsem.phy import LEN_TAG

from diffsem.link.pdu import KindLog, validate_meta

from ._pdu import BadPdu, Counters, dict_to_pmt, guarded, pmt_to_py, rejections


class _framer(gr.sync_block):
    """Validates PDUs, frames them (stock OFDM header: length, sequence number, CRC-8) and puts
    their bursts on the output stream.

    Refused input (not a PDU, payload not a c32vector, empty, longer than 4095, NaN/Inf) is logged
    and counted, never sent. Metadata is forwarded as stream tags on the burst's first sample,
    with a LEN_TAG tag holding the burst's length (padding included), as pdu_to_tagged_stream
    tags a PDU.

    The message handler only checks and queues; work() builds every queued burst at once
    (phy.BurstBuilder: one inverse FFT for all their OFDM symbols), clips them if asked, and
    writes them back to back with their zero padding, as much as the output buffer takes.
    Nothing queued: work() returns 0 and the scheduler sleeps until the next PDU.
    """

    def __init__(self, layout, payload_scale, counters, header_repeats, pad_front, pad_back, clip_level=0.0):
        gr.sync_block.__init__(self, name="diffsem_ofdm_framer", in_sig=None, out_sig=[np.complex64])
        self.layout = layout
        self.payload_scale = np.float32(payload_scale)
        self.counters = counters
        self.next_seq = 0
        self.header_repeats = int(header_repeats)
        self.builder = phy.BurstBuilder(layout, self.header_repeats, pad_front, pad_back)
        self.clip_level = float(clip_level)  # amplitude; 0 = no clipping
        self.bursts = self.samples = 0  # written to the stream so far (a run's end: see emitted())
        self._log = None
        self._queue = []                 # (payload, seq, metadata PMT dict) not yet built
        self._out = np.zeros(0, np.complex64)
        self._out_pos = 0                # samples of _out already written
        self._starts = []                # (start in _out, length, metadata) of its bursts not yet tagged
        self._tagged = 0
        self._ends = []                  # end in _out of each burst not yet counted
        self._len_key = pmt.intern(LEN_TAG)
        self.message_port_register_in(pmt.intern("in"))
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
        meta = pmt.dict_add(meta, pmt.intern("seq"), pmt.from_long(seq))
        self.counters.incr("frames")
        self._queue.append((payload * self.payload_scale, seq, meta))

    def _build(self):
        """Every queued frame into one run of bursts (the previous run is all written)."""
        queue, self._queue = self._queue, []
        out, lengths = self.builder.build([q[0] for q in queue], [q[1] for q in queue])
        if self.clip_level > 0:
            out = impairments.clip(out, self.clip_level)  # the padding is zero: clipping leaves it so
        ends = np.cumsum(lengths).tolist()
        self._out, self._out_pos, self._tagged = out, 0, 0
        self._starts = [(end - length, length, q[2]) for end, length, q in zip(ends, lengths.tolist(), queue)]
        self._ends = ends

    def work(self, input_items, output_items):
        if self._out_pos >= self._out.size:
            if not self._queue:
                return 0
            self._build()
        out = output_items[0]
        lo = self._out_pos
        n = min(len(out), self._out.size - lo)
        out[:n] = self._out[lo:lo + n]
        base = self.nitems_written(0) - lo
        while self._tagged < len(self._starts) and self._starts[self._tagged][0] < lo + n:
            start, length, meta = self._starts[self._tagged]
            keys, values = pmt.dict_keys(meta), pmt.dict_values(meta)
            for i in range(pmt.length(keys)):
                self.add_item_tag(0, base + start, pmt.nth(i, keys), pmt.nth(i, values))
            self.add_item_tag(0, base + start, self._len_key, pmt.from_long(length))
            self._tagged += 1
        self._out_pos = lo + n
        self.samples += n
        while self._ends and self._ends[0] <= self._out_pos:
            self._ends.pop(0)
            self.bursts += 1
        return n


class ofdm_analog_tx(gr.hier_block2):
    """Analog OFDM TX (hier block). Message input "in": PDU (dict metadata, c32vector of 1..4095
    unit-power payload symbols). Output: complex baseband stream of zero-padded bursts.

    Burst: 2 Schmidl & Cox preamble symbols, `header_repeats` BPSK header symbols (stock
    packet_header_ofdm format: 12-bit symbol count, 12-bit sequence number = metadata "seq" if
    present else a counter, CRC-8), copy c cyclically shifted by c*48/repeats data carriers so
    each bit rides carriers spread over the band; the RX combines the copies (maximum-ratio), so
    the uncoded header survives at 5 dB and in selective fades), then ceil(n/48) payload OFDM
    symbols (symbol i on data carrier i % 48 of symbol i // 48, unused cells of the last symbol
    zero), pilots on every symbol, each with its cyclic prefix, then zero padding before/after
    each burst (Schmidl & Cox detection needs quiet between bursts). Built in numpy
    (diffsem.phy.BurstBuilder, the carriers and preambles of gr-digital's ofdm_carrier_allocator_cvc
    and ofdm_txrx, the unnormalised inverse FFT of fft_vcc), every queued frame in one inverse FFT:
    the stock allocator / FFT / prefixer chain cost a dozen scheduler hand-offs and two PDU-to-list
    round trips per frame.

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
        if clip_db is not None and not np.isfinite(float(clip_db)):
            raise ValueError(f"clip_db must be a number of dB above RMS or None, got {clip_db}")
        self.clip_db = None if clip_db is None else float(clip_db)
        clip_level = 0.0 if self.clip_db is None else impairments.db_to_amplitude(self.clip_db)
        self.framer = _framer(lay, payload_scale, self.counters, self.header_repeats, self.pad_front, self.pad_back,
                              clip_level)
        # room for the longest burst the header admits twice over, and for many short ones: the
        # receiver downstream processes what it finds waiting together
        self.framer.set_min_output_buffer(max(2 * self.burst_length(phy.MAX_SYMBOLS_PER_FRAME), 1 << 16))
        self.msg_connect(self, "in", self.framer, "in")
        self.connect(self.framer, self)

    def stats(self) -> dict:
        out = self.counters.snapshot()
        out.update(rejections(self.framer).snapshot())  # handler errors (none expected: counted if any)
        return out

    def emitted(self) -> tuple[int, int]:
        """(bursts, samples) written to the output stream so far: the stream holds nothing else,
        so a receiver that has read `samples` has seen every burst."""
        return self.framer.bursts, self.framer.samples

    def burst_length(self, n_symbols: int) -> int:
        """Samples per burst (padding included) for an n-symbol payload."""
        return self.framer.builder.length(n_symbols)
