"""Private Python blocks of the analog OFDM receiver."""
from __future__ import annotations

import math

import numpy as np
import pmt
from gnuradio import gr

from diffsem import phy

from ._phy_common import FRAME_LEN_TAG, LEN_TAG, NUM_TAG, SYNC_TAG

CHAN_TAPS_TAG = "ofdm_sync_chan_taps"
CARR_OFFSET_TAG = "ofdm_sync_carr_offset"
LS_TAPS_TAG = "diffsem_chan_ls"


class sync_tagger(gr.sync_block):
    """Pass-through of the frequency-corrected samples that tags each Schmidl & Cox trigger with
    (absolute sample offset at the RX input, fine CFO in subcarrier spacings). The tag lands on
    the first header sample, so the header-payload demux hands it to the header path and the
    header parser returns it with the header fields: it reaches the payload with its frame.

    `delay` is how many samples the data path lags the RX input (the sync's symbol delay)."""

    def __init__(self, delay: int):
        gr.sync_block.__init__(self, name="diffsem_sync_tagger",
                               in_sig=[np.complex64, np.float32, np.uint8], out_sig=[np.complex64])
        self.delay = int(delay)
        self.key = pmt.intern(SYNC_TAG)

    def work(self, input_items, output_items):
        samples, fine, trigger = input_items
        n = len(output_items[0])
        output_items[0][:] = samples[:n]
        hits = np.flatnonzero(trigger[:n])
        if hits.size:
            base = self.nitems_written(0)
            for i in hits:
                # sync output 0 is the fine offset times pi (gr-digital: rad/sample = 2*out/fft_len)
                value = pmt.make_tuple(pmt.from_uint64(int(base + i - self.delay)),
                                       pmt.from_double(float(fine[i]) / math.pi))
                self.add_item_tag(0, base + int(i), self.key, value)
        return n


class frame_assembler(gr.basic_block):
    """Serialized payload cells + stock tags in, one symbol PDU per frame out (see ofdm_analog_rx)."""

    def __init__(self, estimator: phy.FrameEstimator, samp_rate: float, counters, cells_per_symbol: int):
        gr.basic_block.__init__(self, name="diffsem_frame_assembler", in_sig=None, out_sig=None)
        self.estimator = estimator
        self.samp_rate = float(samp_rate)
        self.counters = counters
        self.cells_per_symbol = cells_per_symbol
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.message_port_register_out(pmt.intern("stats"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def _drop(self, reason, text):
        self.counters.incr(reason)
        self.logger.warn(f"dropped frame: {text}")
        self.message_port_pub(pmt.intern("stats"), self.counters.to_pmt())

    def handle(self, msg):
        if not pmt.is_pair(msg) or not pmt.is_c32vector(pmt.cdr(msg)):
            return self._drop("malformed", "internal frame message is not a c32 PDU")
        meta = pmt.car(msg)
        cells = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)), dtype=np.complex64)

        def ref(key, default=pmt.PMT_NIL):
            return pmt.dict_ref(meta, pmt.intern(key), default)

        n_symbols = pmt.to_long(ref(LEN_TAG, pmt.from_long(-1)))
        taps_pmt, ls_pmt = ref(CHAN_TAPS_TAG), ref(LS_TAPS_TAG)
        if not (pmt.is_c32vector(taps_pmt) and pmt.is_c32vector(ls_pmt)):
            return self._drop("malformed", "no channel estimate on the frame")
        n_ofdm = cells.size // self.cells_per_symbol
        if (cells.size % self.cells_per_symbol or n_symbols <= 0
                or n_ofdm != -(-n_symbols // len(self.estimator.data))):
            return self._drop("malformed", f"{cells.size} cells do not match {n_symbols} symbols")
        taps = np.asarray(pmt.c32vector_elements(taps_pmt), dtype=np.complex64)
        ls_taps = np.asarray(pmt.c32vector_elements(ls_pmt), dtype=np.complex64)
        if not (np.isfinite(cells).all() and np.isfinite(taps).all() and np.isfinite(ls_taps).all()):
            return self._drop("nonfinite", "NaN/Inf in the received frame or channel estimate")
        carr_offset = pmt.to_long(ref(CARR_OFFSET_TAG, pmt.from_long(0)))
        est = self.estimator.estimate(cells, taps, ls_taps, n_symbols, carr_offset)
        if not (np.isfinite(est.symbols).all() and np.isfinite(est.noise_var).all()
                and math.isfinite(est.snr_db)):
            return self._drop("nonfinite", "estimation gave NaN/Inf")
        sync = ref(SYNC_TAG)
        sample_offset, fine_cfo = -1, float("nan")
        if pmt.is_tuple(sync):
            sample_offset = int(pmt.to_uint64(pmt.tuple_ref(sync, 0)))
            fine_cfo = pmt.to_double(pmt.tuple_ref(sync, 1))
        out = pmt.make_dict()
        items = (
            ("seq", pmt.from_long(pmt.to_long(ref(NUM_TAG, pmt.from_long(-1))))),
            ("n_symbols", pmt.from_long(n_symbols)),
            ("snr_db", pmt.from_double(est.snr_db)),
            ("post_eq_snr_db", pmt.from_double(est.post_eq_snr_db)),
            ("noise_var", pmt.init_f32vector(est.noise_var.size, est.noise_var)),
            ("cfo", pmt.from_double(fine_cfo + carr_offset)),
            ("cpe_rad_per_symbol", pmt.from_double(est.cpe_slope)),
            ("channel_taps", pmt.from_long(est.n_taps)),
            ("sample_offset", pmt.from_uint64(max(sample_offset, 0))),
            ("time", pmt.from_double(sample_offset / self.samp_rate if sample_offset >= 0 else float("nan"))),
        )
        for key, value in items:
            out = pmt.dict_add(out, pmt.intern(key), value)
        self.counters.incr("frames")
        self.message_port_pub(pmt.intern("out"),
                              pmt.cons(out, pmt.init_c32vector(est.symbols.size, est.symbols)))
        self.message_port_pub(pmt.intern("stats"), self.counters.to_pmt())


class header_monitor(gr.basic_block):
    """Counts the header parser's verdicts: a dict is a good header, #f a CRC failure (a corrupted
    header or a false sync trigger on noise); the demux then drops the frame."""

    def __init__(self, counters):
        gr.basic_block.__init__(self, name="diffsem_header_monitor", in_sig=None, out_sig=None)
        self.counters = counters
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def handle(self, msg):
        if pmt.is_dict(msg) or pmt.is_integer(msg):
            self.counters.incr("headers_ok")
        else:
            self.counters.incr("header_crc_fail")


class header_combiner(gr.decim_block):
    """Header path, between ofdm_chanest_vcvc and the header equaliser: sums the `repeats` copies
    of the header OFDM symbol (same carriers, same channel: an R-fold SNR gain for the BPSK
    header) and replaces the preamble's raw LS channel estimate by its denoised fit
    (FrameEstimator.smooth_channel), which both equalisers then use. The raw estimate rides on as
    tag "diffsem_chan_ls" for the payload estimator's noise bookkeeping. Without both the
    uncoded 32-bit header fails its CRC on ~1 frame in 5 at 5 dB."""

    def __init__(self, estimator: phy.FrameEstimator, repeats: int):
        fft_len = estimator.layout.fft_len
        gr.decim_block.__init__(self, name="diffsem_header_combiner",
                                in_sig=[(np.complex64, fft_len)], out_sig=[(np.complex64, fft_len)],
                                decim=int(repeats))
        self.estimator = estimator
        self.repeats = int(repeats)
        self.half = fft_len // 2
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.taps_key = pmt.intern(CHAN_TAPS_TAG)
        self.offset_key = pmt.intern(CARR_OFFSET_TAG)
        self.ls_key = pmt.intern(LS_TAPS_TAG)

    def work(self, input_items, output_items):
        n_out = len(output_items[0])
        r = self.repeats
        frames = input_items[0][:n_out * r].reshape(n_out, r, -1)
        output_items[0][:] = frames.sum(axis=1) / r
        base_in, base_out = self.nitems_read(0), self.nitems_written(0)
        tags = self.get_tags_in_window(0, 0, n_out * r)
        offsets = {}
        for tag in tags:
            if tag.key == self.offset_key:
                offsets[tag.offset] = pmt.to_long(tag.value)
        for tag in tags:
            out_offset = base_out + (tag.offset - base_in) // r
            if tag.key == self.taps_key and pmt.is_c32vector(tag.value):
                raw = np.asarray(pmt.c32vector_elements(tag.value), dtype=np.complex64)
                smooth = raw
                carr_offset = offsets.get(tag.offset, 0)
                active = self.estimator.active + carr_offset + self.half
                if np.isfinite(raw).all() and active.min() >= 0 and active.max() < raw.size:
                    fitted = self.estimator.smooth_channel(raw[active].astype(np.complex128), carr_offset)[0]
                    smooth = np.zeros_like(raw)
                    smooth[active] = fitted
                self.add_item_tag(0, out_offset, self.taps_key, pmt.init_c32vector(smooth.size, smooth))
                self.add_item_tag(0, out_offset, self.ls_key, tag.value)
            else:
                self.add_item_tag(0, out_offset, tag.key, tag.value)
        return n_out
