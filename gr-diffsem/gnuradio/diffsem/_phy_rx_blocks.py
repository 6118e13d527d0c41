"""Private Python blocks of the analog OFDM receiver."""
from __future__ import annotations

import math

import numpy as np
import pmt
from gnuradio import gr

from diffsem import phy

from ._phy_common import FRAME_LEN_TAG, FRAME_SYNC_TAG, LEN_TAG, NUM_TAG

CHAN_TAPS_TAG = "ofdm_sync_chan_taps"
CARR_OFFSET_TAG = "ofdm_sync_carr_offset"
LS_TAPS_TAG = "diffsem_chan_ls"
CPE_TAG = "diffsem_cpe_slope"  # common phase per OFDM symbol measured on the header copies


TIME_ZERO = pmt.make_tuple(pmt.from_uint64(0), pmt.from_double(0.0))


class derotator(gr.sync_block):
    """Removes the fine CFO of each frame from its time-domain OFDM symbols (CP removed, one
    vector per symbol, as header_payload_demux outputs them), with the frame's own estimate and a
    phase that runs from the frame's trigger.

    gr-digital's ofdm_rx instead mixes the whole stream with the sync's sample-and-held estimate,
    which any later trigger overwrites: a spurious trigger inside a frame (frequent with the low
    detection threshold 5 dB needs) then changes the correction half-way through the payload.

    Input items are (sample, cfo) pairs (the sync's held CFO estimate rides with each sample).
    mode "header": groups of `group` symbols per header; the CFO at the group's first sample
    and the demux's rx_time stamp (= sample offset) become the frame's FRAME_SYNC tag, which
    travels on with the header fields to the payload. mode "payload": FRAME_SYNC
    tags (put on the first payload symbol by the demux) restart the symbol count at `first`.
    """

    def __init__(self, fft_len: int, cp_len: int, mode: str, group: int = 0, first: int = 0,
                 delay: int = 0):
        gr.sync_block.__init__(self, name=f"diffsem_derotator_{mode}",
                               in_sig=[(np.complex64, 2 * fft_len)], out_sig=[(np.complex64, fft_len)])
        if mode not in ("header", "payload"):
            raise ValueError("mode must be 'header' or 'payload'")
        self.mode = mode
        self.fft_len, self.cp_len = fft_len, cp_len
        self.group, self.first, self.delay = int(group), int(first), int(delay)
        self.sym_len = fft_len + cp_len
        self.time_key, self.frame_key = pmt.intern("rx_time"), pmt.intern(FRAME_SYNC_TAG)
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.cfo = 0.0       # subcarrier spacings
        self.index = 0       # symbol index within the frame of the next input item
        self.ramp = np.arange(fft_len, dtype=np.float64)

    def work(self, input_items, output_items):
        out = output_items[0]
        n = len(out)
        base = self.nitems_read(0)
        pairs = input_items[0][:n].reshape(n, self.fft_len, 2)
        samples = pairs[:, :, 0]
        times, starts = {}, {}
        for tag in self.get_tags_in_window(0, 0, n):
            rel = tag.offset - base
            if tag.key == self.time_key:
                times[rel] = tag.value
                continue
            if tag.key == self.frame_key and pmt.is_tuple(tag.value):
                starts[rel] = tag.value
            self.add_item_tag(0, tag.offset, tag.key, tag.value)
        index = np.empty(n)
        cfo = np.empty(n)
        for i in range(n):  # scalar bookkeeping only; the rotation below is vectorised
            if self.mode == "header":
                if (base + i) % self.group == 0:
                    self.index = 0
                    # sync output 0 is the fine offset times pi (gr-digital: rad/sample = 2*out/N)
                    self.cfo = float(pairs[i, 0, 1].real) / np.pi
                    offset = -1
                    if i in times and pmt.is_tuple(times[i]):
                        t = times[i]
                        offset = int(pmt.to_uint64(pmt.tuple_ref(t, 0)) + round(pmt.to_double(pmt.tuple_ref(t, 1))))
                        offset -= self.delay
                    value = pmt.make_tuple(pmt.from_long(offset), pmt.from_double(self.cfo))
                    self.add_item_tag(0, base + i, self.frame_key, value)
            elif i in starts:
                self.index = self.first
                self.cfo = pmt.to_double(pmt.tuple_ref(starts[i], 1))
            index[i], cfo[i] = self.index, self.cfo
            self.index += 1
        start = index * self.sym_len + self.cp_len
        phase = (-2.0 * np.pi / self.fft_len) * cfo[:, None] * (start[:, None] + self.ramp[None, :])
        out[:] = samples * np.exp(1j * phase).astype(np.complex64)
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
        prior = ref(CPE_TAG, pmt.from_double(0.0))
        prior = pmt.to_double(prior) if pmt.is_real(prior) else 0.0
        est = self.estimator.estimate(cells, taps, ls_taps, n_symbols, carr_offset, prior)
        if not (np.isfinite(est.symbols).all() and np.isfinite(est.noise_var).all()
                and math.isfinite(est.snr_db)):
            return self._drop("nonfinite", "estimation gave NaN/Inf")
        sync = ref(FRAME_SYNC_TAG)
        sample_offset, fine_cfo = -1, float("nan")
        if pmt.is_tuple(sync):
            sample_offset = int(pmt.to_long(pmt.tuple_ref(sync, 0)))
            fine_cfo = pmt.to_double(pmt.tuple_ref(sync, 1))
        out = pmt.make_dict()
        items = (
            ("seq", pmt.from_long(pmt.to_long(ref(NUM_TAG, pmt.from_long(-1))))),
            ("n_symbols", pmt.from_long(n_symbols)),
            ("snr_db", pmt.from_double(est.snr_db)),
            ("post_eq_snr_db", pmt.from_double(est.post_eq_snr_db)),
            ("noise_var", pmt.init_f32vector(est.noise_var.size, est.noise_var.tolist())),
            ("cfo", pmt.from_double(fine_cfo + carr_offset)),
            ("cpe_rad_per_symbol", pmt.from_double(est.cpe_slope)),
            ("channel_taps", pmt.from_long(est.n_taps)),
            ("delay", pmt.from_double(est.delay)),
            ("sample_offset", pmt.from_uint64(max(sample_offset, 0))),
            ("time", pmt.from_double(sample_offset / self.samp_rate if sample_offset >= 0 else float("nan"))),
        )
        for key, value in items:
            out = pmt.dict_add(out, pmt.intern(key), value)
        self.counters.incr("frames")
        self.message_port_pub(pmt.intern("out"),
                              pmt.cons(out, pmt.init_c32vector(est.symbols.size, est.symbols.tolist())))
        self.message_port_pub(pmt.intern("stats"), self.counters.to_pmt())


class header_monitor(gr.basic_block):
    """Counts the header parser's verdicts: a dict is a good header, #f a CRC failure (a corrupted
    header or a false sync trigger on noise); the demux then drops the frame."""

    def __init__(self, counters):
        gr.basic_block.__init__(self, name="diffsem_header_monitor", in_sig=None, out_sig=None)
        self.counters = counters
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("stats"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def handle(self, msg):
        if pmt.is_dict(msg) or pmt.is_integer(msg):
            self.counters.incr("headers_ok")
        else:
            self.counters.incr("header_crc_fail")
            self.message_port_pub(pmt.intern("stats"), self.counters.to_pmt())


class header_combiner(gr.decim_block):
    """Header path, between ofdm_chanest_vcvc and the header equaliser: combines the `repeats`
    copies of the header OFDM symbol (maximum-ratio, on the denoised preamble channel, after
    their pilot-tracked common phase; the TX spreads each bit over `repeats` carriers) into one
    equalised symbol for the stock BPSK equaliser/decoder/parser. The raw LS estimate rides on as
    tag "diffsem_chan_ls" for the payload estimator. Without this the uncoded 32-bit header
    fails its CRC on ~1 frame in 5 at 5 dB."""

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
        self.cpe_key = pmt.intern(CPE_TAG)
        self.min_quality = 3.0

    def _combine(self, copies, taps, carr_offset):
        """Maximum-ratio combination of the header copies on the denoised channel, each copy first
        derotated by the common phase that residual CFO accumulates since the preamble (a line
        through 0 at the preamble, slope fitted on the pilots of all copies: without it later
        copies cancel earlier ones at low SNR) and un-shifted (copy c carries bit b on data
        carrier (b + shift_c) % 48). Returns (equalised header symbol, unit channel taps for the
        stock equaliser, smoothed channel, slope)."""
        est = self.estimator
        n = taps.size
        active = est.active + carr_offset + self.half
        if not (np.isfinite(taps).all() and np.isfinite(copies).all()
                and active.min() >= 0 and active.max() < n):
            return None
        fitted = est.smooth_channel(taps[active].astype(np.complex128), carr_offset)[0]
        smooth = np.zeros(n, dtype=np.complex128)
        smooth[active] = fitted
        pilots = np.asarray(est.pilots) + carr_offset + self.half
        data = np.asarray(est.data) + carr_offset + self.half
        corr = (copies[:, pilots] * np.conj(smooth[pilots] * est.pilot_values)[None, :]).sum(axis=1)
        t = 1.0 + np.arange(copies.shape[0])
        # unwrap by prediction, copy after copy: the CFO left by the sync at 5 dB (~0.05
        # subcarrier) turns the phase by ~0.4 rad per symbol, so later copies pass +-pi
        slope = phy.fit_phase_slope(corr, t)
        n_data = len(est.data)
        num = np.zeros(n_data, dtype=np.complex128)
        den = np.zeros(n_data)
        h_d = smooth[data]
        for c in range(copies.shape[0]):
            z = copies[c, data] * np.exp(-1j * slope * t[c]) * np.conj(h_d)
            num += np.roll(z, -phy.header_shift(c, copies.shape[0], est.layout))
            den += np.roll(np.abs(h_d) ** 2, -phy.header_shift(c, copies.shape[0], est.layout))
        out = np.zeros(n, dtype=np.complex64)
        unit = np.zeros(n, dtype=np.complex64)
        unit[active] = 1.0
        bits = num / np.maximum(den, 1e-30)
        # a true BPSK header is real after combining (Re^2 / Im^2 ~ 9 at 0 dB); a false trigger
        # on noise gives ~1. Refusing those here (all-zero symbols never pass the CRC) takes the
        # 1-in-256 chance of a noise header passing the 8-bit CRC down to ~1e-6, so a phantom
        # frame of random length cannot swallow the real frames that follow.
        quality = float(np.sum(bits.real ** 2) / max(np.sum(bits.imag ** 2), 1e-30))
        if quality < self.min_quality:
            return out, unit, 0.0
        out[data] = bits
        out[pilots] = est.pilot_values
        return out, unit, slope

    def work(self, input_items, output_items):
        n_out = len(output_items[0])
        r = self.repeats
        frames = input_items[0][:n_out * r].reshape(n_out, r, -1)
        base_in, base_out = self.nitems_read(0), self.nitems_written(0)
        tags = self.get_tags_in_window(0, 0, n_out * r)
        offsets, taps = {}, {}
        for tag in tags:
            if tag.key == self.offset_key:
                offsets[tag.offset] = pmt.to_long(tag.value)
            elif tag.key == self.taps_key and pmt.is_c32vector(tag.value):
                taps[tag.offset] = tag.value
        for j in range(n_out):
            start = base_in + j * r
            combined = None
            if start in taps:
                raw = np.asarray(pmt.c32vector_elements(taps[start]), dtype=np.complex64)
                combined = self._combine(frames[j], raw, offsets.get(start, 0))
            if combined is not None:
                output_items[0][j], unit, slope = combined
                # the header is already equalised: the stock equaliser divides by 1 and hands the
                # same unit state to the payload (the payload estimator knows, see eq_taps)
                self.add_item_tag(0, base_out + j, self.taps_key, pmt.init_c32vector(unit.size, unit.tolist()))
                self.add_item_tag(0, base_out + j, self.ls_key, taps[start])
                self.add_item_tag(0, base_out + j, self.cpe_key, pmt.from_double(slope))
            else:  # no usable estimate (cannot happen after ofdm_chanest_vcvc): plain average
                output_items[0][j] = frames[j].mean(axis=0)
        for tag in tags:
            if tag.key != self.taps_key:
                self.add_item_tag(0, base_out + (tag.offset - base_in) // r, tag.key, tag.value)
        return n_out
