"""Headless loopback runs of the analog OFDM link (symbol_source -> TX -> channel_sim -> RX ->
symbol_checker), shared by the PHY tests, `diffsem bench phy` and the figures in docs/phy.md."""
from __future__ import annotations

import time

from gnuradio import gr

from ._phy_common import load_block

# through load_block: a plain `from .ofdm_analog_tx import ...` would leave the package attribute
# `ofdm_analog_tx` bound to the module instead of the block class
channel_sim = load_block("channel_sim")
ofdm_analog_rx = load_block("ofdm_analog_rx")
ofdm_analog_tx = load_block("ofdm_analog_tx")
symbol_checker = load_block("symbol_checker", "symbol_loopback")
symbol_source = load_block("symbol_source", "symbol_loopback")


class loopback(gr.top_block):
    def __init__(self, snr_db=20.0, channel="awgn", cfo=0.0, timing_offset=0.0, n_frames=100,
                 n_symbols=128, seed=0, window=8, keep_symbols=False, rx_kwargs=None):
        gr.top_block.__init__(self, "diffsem_phy_loopback")
        self.n_frames = n_frames
        self.source = symbol_source(n_symbols, n_frames, 0.0, seed, window)
        self.tx = ofdm_analog_tx()
        self.channel = channel_sim(snr_db, channel, cfo, timing_offset, seed)
        self.rx = ofdm_analog_rx(**(rx_kwargs or {}))
        self.checker = symbol_checker(n_symbols, seed, 0)
        self.checker.keep_symbols = keep_symbols
        self.msg_connect(self.source, "out", self.tx, "in")
        self.connect(self.tx, self.channel, self.rx)
        self.msg_connect(self.rx, "out", self.checker, "in")
        self.msg_connect(self.checker, "ack", self.source, "ack")

    def run_until_done(self, timeout=120.0, idle=2.0):
        """Start, wait until every frame is accounted for (received or after `idle` s without
        progress once the source is done), stop. Returns the checker's stats plus counters."""
        self.start()
        t0 = time.monotonic()
        last, last_change = -1, t0
        while time.monotonic() - t0 < timeout:
            time.sleep(0.02)
            got = self.checker.counters.snapshot()["frames"]
            if got != last:
                last, last_change = got, time.monotonic()
            if got >= self.n_frames:
                break
            if self.source.sent >= self.n_frames and time.monotonic() - last_change > idle:
                break
        elapsed = time.monotonic() - t0
        self.stop()
        self.wait()
        out = self.checker.stats()
        out.update(sent=self.source.sent, lost=self.source.sent - out["frames"], seconds=elapsed,
                   rx=self.rx.stats(), tx=self.tx.stats())
        return out
