"""symbol_source: frames of known Gaussian symbols for the analog OFDM link (the test payload of
flowgraphs/loopback_symbols.grc, the PHY tests and `diffsem bench phy`; symbol_checker scores them)."""
from __future__ import annotations

import threading
import time

import pmt
from gnuradio import gr

from diffsem import phy
from diffsem.phy import reference_symbols

from ._pdu import guarded


class symbol_source(gr.basic_block):
    """Emits `n_frames` PDUs (0 = no end) of `n_symbols` CN(0, 1) symbols on port "out", metadata
    {"seq": i mod 4096}. Pacing: `frames_per_s` > 0 sends at that rate; with 0 it sends as fast as
    the link takes them: at most `window` frames ahead of the acknowledgements arriving on port
    "ack" (connect the checker's "ack"); if no acknowledgement comes for 0.5 s (lost frames), one
    more frame is released. After the last frame a message is published on "done".
    """

    def __init__(self, n_symbols=128, n_frames=100, frames_per_s=0.0, seed=0, window=8):
        gr.basic_block.__init__(self, name="diffsem_symbol_source", in_sig=None, out_sig=None)
        if not 0 < int(n_symbols) <= phy.MAX_SYMBOLS_PER_FRAME:
            raise ValueError(f"n_symbols must be in 1..{phy.MAX_SYMBOLS_PER_FRAME}")
        self.n_symbols = int(n_symbols)
        self.n_frames = int(n_frames)
        self.frames_per_s = float(frames_per_s)
        self.seed = int(seed)
        self.window = max(int(window), 1)
        self.sent = 0
        self._credits = threading.Semaphore(self.window)
        self._stop = threading.Event()
        self._thread = None
        self.message_port_register_out(pmt.intern("out"))
        self.message_port_register_out(pmt.intern("done"))
        self.message_port_register_in(pmt.intern("ack"))
        self.set_msg_handler(pmt.intern("ack"), self._ack)

    @guarded("ack")
    def _ack(self, msg):
        self._credits.release()

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="symbol_source", daemon=True)
        self._thread.start()
        return True

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        return True

    def _run(self):
        period = 1.0 / self.frames_per_s if self.frames_per_s > 0 else 0.0
        next_time = time.monotonic()
        while not self._stop.is_set() and (self.n_frames <= 0 or self.sent < self.n_frames):
            if period:
                next_time += period
                delay = next_time - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            else:
                self._credits.acquire(timeout=0.5)  # a timeout releases a frame anyway
            seq = self.sent % phy.SEQ_MODULO
            sym = reference_symbols(self.seed, seq, self.n_symbols)
            meta = pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(seq))
            self.message_port_pub(pmt.intern("out"), pmt.cons(meta, pmt.init_c32vector(sym.size, sym.tolist())))
            self.sent += 1
        if not self._stop.is_set():
            self.message_port_pub(pmt.intern("done"), pmt.from_long(self.sent))
