"""frame_receiver: the per-frame stage inside ofdm_analog_rx (not a GRC block of its own), a thin
adapter around diffsem.phy.burst_rx.BurstReceiver (plain numpy, tested without GNU Radio)."""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from diffsem.phy import burst_rx
from diffsem.phy.framing import CLOCK_TOLERANCE_PPM

from ._pdu import counters_to_pmt, publish_if_subscribed


class frame_receiver(gr.sync_block):
    """Inputs: 0 the complex samples, 1 the Schmidl & Cox fine CFO (ofdm_sync_sc_cfb output 0:
    offset times pi), 2 its trigger (output 1), all aligned as the sync outputs them. Message
    output "out": one PDU per frame (see ofdm_analog_rx); "stats": the counters after each frame
    and each dropped header."""

    def __init__(self, receiver: burst_rx.BurstReceiver, counters, samp_rate: float = 1.0):
        gr.sync_block.__init__(self, name="diffsem_frame_receiver",
                               in_sig=[np.complex64, np.float32, np.uint8], out_sig=None)
        self.receiver = receiver
        self.counters = counters
        self.samp_rate = float(samp_rate)
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.message_port_register_out(pmt.intern("out"))
        self.message_port_register_out(pmt.intern("stats"))
        self._warned = set()

    def work(self, input_items, output_items):
        samples, cfo, trigger = input_items
        n = len(samples)
        hits = np.flatnonzero(trigger[:n])
        # gr-digital's sync outputs the fine offset times pi (rad/sample = 2 * out / fft_len)
        events = self.receiver.push(samples[:n], hits, cfo[hits] / np.pi)
        for kind, value in events:
            if kind == "frame":
                self._publish(value)
            else:
                self._drop(kind, value)
        return n

    COUNTER = {"header_fail": "header_crc_fail", "false_trigger": "false_triggers", "nonfinite": "nonfinite",
               "wrong_rate": "wrong_rate"}

    def _warn_once(self, key, text):
        if key not in self._warned:
            self._warned.add(key)
            self.logger.warn(text)

    def _drop(self, kind, text):
        counter = self.COUNTER.get(kind, kind)
        self.counters.incr(counter)
        # false triggers on noise and headers lost at low SNR are routine: counted, not logged
        if kind in ("nonfinite", "wrong_rate"):
            self._warn_once(text, f"dropped frame: {text} (counted in stats()['{counter}'])")
        publish_if_subscribed(self, "stats", lambda: counters_to_pmt(self.counters))

    def _publish(self, frame: burst_rx.ReceivedFrame):
        est = frame.estimate
        items = (
            ("seq", pmt.from_long(frame.seq)),
            ("n_symbols", pmt.from_long(frame.n_symbols)),
            ("snr_db", pmt.from_double(est.snr_db)),
            ("post_eq_snr_db", pmt.from_double(est.post_eq_snr_db)),
            ("noise_var", pmt.init_f32vector(est.noise_var.size, est.noise_var.tolist())),
            ("cfo", pmt.from_double(frame.cfo)),
            ("cpe_rad_per_symbol", pmt.from_double(est.cpe_slope)),
            ("channel_taps", pmt.from_long(est.n_taps)),
            ("delay", pmt.from_double(est.delay)),
            ("sample_offset", pmt.from_uint64(max(frame.sample_offset, 0))),
            ("time", pmt.from_double(frame.sample_offset / self.samp_rate)),
        ) + ((("salvaged", pmt.PMT_T),) if frame.salvaged else ()) \
            + ((("cut", pmt.from_long(est.cut)),) if est.cut else ()) \
            + ((("interfered_carriers", pmt.from_long(est.interfered)),) if est.interfered else ()) \
            + ((("erased", pmt.from_long(est.erased)),) if est.erased else ()) \
            + ((("clock_ppm", pmt.from_double(est.clock_ppm)),) if np.isfinite(est.clock_ppm_sd) else ())
        meta = pmt.make_dict()
        for key, value in items:
            meta = pmt.dict_add(meta, pmt.intern(key), value)
        self.counters.incr("salvaged" if frame.salvaged else "headers_ok")
        self.counters.incr("frames")
        if est.cut:
            self.counters.incr("truncated")
        if est.interfered:
            self.counters.incr("interfered")
        if est.clock_mismatch:
            self.counters.incr("clock_mismatch")
            self._warn_once("clock_mismatch", f"frames show a sampling-clock offset of {est.clock_ppm:+.0f} ppm "
                            f"(beyond +-{CLOCK_TOLERANCE_PPM:g}): a recording replayed at another rate, or the wrong "
                            f"sample rate? (counted in stats()['clock_mismatch'])")
        self.message_port_pub(pmt.intern("out"),
                              pmt.cons(meta, pmt.init_c32vector(est.symbols.size, est.symbols.tolist())))
        publish_if_subscribed(self, "stats", lambda: counters_to_pmt(self.counters))
