"""symbol_checker: symbol MSE / SNR estimate / frame counts of the analog OFDM link against the
symbols symbol_source sent (diffsem.phy.reference_symbols regenerates them from seed and seq)."""
from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np
import pmt
from gnuradio import gr

from diffsem.link.pdu import KindLog
from diffsem.link.seq import GapTracker
from diffsem.phy import reference_symbols

from ._pdu import Counters, guarded, publish_if_subscribed


class symbol_checker(gr.basic_block):
    """Compares received symbol PDUs (from ofdm_analog_rx) with the source's reference symbols.

    Per frame it measures the symbol MSE, and accumulates: frames received, frames missing
    (gaps in the 12-bit sequence numbers), malformed PDUs (refused, counted, logged), mean MSE,
    mean estimated SNR and mean reported noise variance (all in dB, averaged linearly), and the
    correlation between reported noise_var and squared error per symbol. Every `report_every`
    frames (0 = never) it logs a summary; "stats" publishes the summary dict after each frame and
    "ack" a message per frame (for symbol_source's flow control).

    max_records: per-frame entries kept in `records` (and in `symbol_records` when
    `keep_symbols`): the latest, a bounded window, so a long run's memory stays flat. The
    summary (`stats()`) is running totals over the whole run.
    """

    def __init__(self, n_symbols=128, seed=0, report_every=100, max_records=16384):
        gr.basic_block.__init__(self, name="diffsem_symbol_checker", in_sig=None, out_sig=None)
        self.n_symbols = int(n_symbols)
        self.seed = int(seed)
        self.report_every = int(report_every)
        self.counters = Counters("frames", "missing", "malformed")
        self._lock = threading.Lock()
        self._gaps = GapTracker()
        self._sums = dict(mse=0.0, noise_var=0.0, snr_lin=0.0, snr_db=0.0)
        self._corr = np.zeros(5)  # sums of x, y, xx, yy, xy for the noise_var / error correlation
        self._n_corr = 0
        window = max(1, int(max_records))
        self.records: deque = deque(maxlen=window)  # per frame: (seq, mse, snr_db, mean noise_var)
        self.keep_records = True
        self.keep_symbols = False  # also keep per-symbol (noise_var, squared error) arrays
        self.symbol_records: deque = deque(maxlen=window)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("stats"))
        self.message_port_register_out(pmt.intern("ack"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def _refuse(self, text):
        self.counters.incr("malformed")
        if self.__dict__.get("_log") is None:
            self._log = KindLog(self.logger.warn)
        self._log("malformed", f"refused PDU: {text}")  # once, then rate-limited

    @guarded("in")
    def handle(self, msg):
        self.message_port_pub(pmt.intern("ack"), pmt.PMT_T)
        if not pmt.is_pair(msg) or not pmt.is_dict(pmt.car(msg)) or not pmt.is_c32vector(pmt.cdr(msg)):
            return self._refuse("not a (dict, c32vector) PDU")
        meta = pmt.car(msg)
        seq_p = pmt.dict_ref(meta, pmt.intern("seq"), pmt.PMT_NIL)
        nv_p = pmt.dict_ref(meta, pmt.intern("noise_var"), pmt.PMT_NIL)
        snr_p = pmt.dict_ref(meta, pmt.intern("snr_db"), pmt.PMT_NIL)
        got = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)), dtype=np.complex64)
        if not pmt.is_integer(seq_p) or not pmt.is_f32vector(nv_p) or not pmt.is_real(snr_p):
            return self._refuse("metadata lacks seq / noise_var / snr_db")
        noise_var = np.asarray(pmt.f32vector_elements(nv_p), dtype=np.float64)
        if got.size != self.n_symbols or noise_var.size != got.size:
            return self._refuse(f"{got.size} symbols / {noise_var.size} noise variances, expected {self.n_symbols}")
        seq = pmt.to_long(seq_p)
        err2 = np.abs(got - reference_symbols(self.seed, seq, self.n_symbols)) ** 2
        mse = float(err2.mean())
        snr_db = pmt.to_double(snr_p)
        with self._lock:
            self.counters.incr("missing", len(self._gaps.received(seq)))
            self.counters.incr("frames")
            s = self._sums
            s["mse"] += mse
            s["noise_var"] += float(noise_var.mean())
            s["snr_lin"] += 10.0 ** (snr_db / 10.0)
            s["snr_db"] += snr_db
            self._corr += np.array([noise_var.sum(), err2.sum(), (noise_var ** 2).sum(),
                                    (err2 ** 2).sum(), (noise_var * err2).sum()])
            self._n_corr += noise_var.size
            if self.keep_records:
                self.records.append((seq, mse, snr_db, float(noise_var.mean())))
            if self.keep_symbols:
                self.symbol_records.append((noise_var.astype(np.float32), err2.astype(np.float32)))
        publish_if_subscribed(self, "stats", lambda: pmt.to_pmt(self.stats()))
        if self.report_every > 0 and self.counters.snapshot()["frames"] % self.report_every == 0:
            summary = self.stats()
            self.logger.info(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in summary.items()))

    def stats(self) -> dict:
        counts = self.counters.snapshot()
        with self._lock:
            n = counts["frames"]
            out = dict(counts)
            if n:
                s = self._sums
                out["mse_db"] = 10.0 * math.log10(max(s["mse"] / n, 1e-30))
                out["noise_var_db"] = 10.0 * math.log10(max(s["noise_var"] / n, 1e-30))
                out["snr_est_db"] = s["snr_db"] / n
                sx, sy, sxx, syy, sxy = self._corr
                m = self._n_corr
                cov = sxy / m - sx * sy / m ** 2
                den = math.sqrt(max(sxx / m - (sx / m) ** 2, 0.0) * max(syy / m - (sy / m) ** 2, 0.0))
                out["noise_var_error_corr"] = cov / den if den > 0 else float("nan")
            return out
