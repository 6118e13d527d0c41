"""`diffsem measure frontend [dc] [papr]`: the radio front-end figures of the runbook, one JSON
line each: decoding with a DC offset at the receiver input, with and without the HackRF RX's DC
blocker (dc), and the peak-to-average power of ofdm_analog_tx's bursts per OFDM symbol (papr)."""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pmt
from gnuradio import blocks, gr
from gnuradio import filter as gr_filter
from gnuradio.diffsem import channel_sim, ofdm_analog_rx, ofdm_analog_tx, symbol_checker, symbol_source
from gnuradio.diffsem.harness import record_bursts


def dc_offset_run(snr_db, dc, dc_blocker, n_frames=200, seed=0):
    """symbol_source -> ofdm_analog_tx -> channel_sim(AWGN) -> tag gate -> + DC -> [the HackRF RX's
    dc_blocker_cc(128, True)] -> ofdm_analog_rx -> symbol_checker; dict of frames, error, SNR estimate."""
    tb = gr.top_block()
    src = symbol_source(128, n_frames, 0.0, seed, 16)
    tx, chan, rx = ofdm_analog_tx(), channel_sim(snr_db, "awgn", 0.0, 0.0, seed), ofdm_analog_rx()
    checker = symbol_checker(128, seed, 0)
    tb.msg_connect(src, "out", tx, "in")
    tb.msg_connect(rx, "out", checker, "in")
    tb.msg_connect(checker, "ack", src, "ack")
    # a radio's samples carry no TX length tags: the gate drops them, as the air does
    chain = [tx, chan, blocks.tag_gate(gr.sizeof_gr_complex, False), blocks.add_const_cc(complex(dc, dc / 2))]
    if dc_blocker:
        chain.append(gr_filter.dc_blocker_cc(128, True))
    tb.connect(*chain, rx)
    tb.start()
    t0 = last_change = time.monotonic()
    last = -1
    while time.monotonic() - t0 < 120:
        time.sleep(0.05)
        got = checker.counters.snapshot()["frames"]
        if got != last:
            last, last_change = got, time.monotonic()
        if got >= n_frames or (src.sent >= n_frames and time.monotonic() - last_change > 3):
            break
    tb.stop()
    tb.wait()
    stats = checker.stats()
    return {"snr_db": snr_db, "dc_abs": round(abs(complex(dc, dc / 2)), 3), "dc_blocker": dc_blocker,
            "sent": src.sent, "decoded": stats["frames"], "mse_db": round(stats["mse_db"], 2),
            "snr_est_db": round(stats["snr_est_db"], 2), "header_crc_fail": rx.stats()["header_crc_fail"],
            "false_triggers": rx.stats()["false_triggers"]}


def tx_papr_by_symbol(n_bursts=300, n_symbols=128, seed=0):
    """Peak-to-average power of ofdm_analog_tx's bursts (CN(0,1) payload symbols, 1x sampling), per OFDM
    symbol role, in dB re the burst's unit average power: {role: (peak, 99.9th percentile)}, plus the
    whole burst's and the payload's CCDF points at 1e-2 / 1e-3 / 1e-4 and maxima."""
    rng = np.random.default_rng(seed)
    tb, tx, sink = gr.top_block(), ofdm_analog_tx(), blocks.vector_sink_c()
    tb.connect(tx, sink)
    for _ in range(n_bursts):
        sym = ((rng.standard_normal(n_symbols) + 1j * rng.standard_normal(n_symbols)) / np.sqrt(2)).astype(np.complex64)
        tx.framer.to_basic_block()._post(pmt.intern("in"), pmt.cons(pmt.make_dict(), pmt.init_c32vector(sym.size, sym.tolist())))
    length = tx.burst_length(n_symbols)
    bursts = record_bursts(tb, sink, n_bursts, length)
    body = bursts[:, tx.pad_front:length - tx.pad_back]
    power = (np.abs(body) ** 2).reshape(n_bursts, -1, tx.layout.fft_len + tx.layout.cp_len)
    db = lambda v: round(float(10 * np.log10(v)), 1)
    roles = ["sync1", "sync2"] + [f"header{i}" for i in range(tx.header_repeats)]
    roles += [f"payload{i}" for i in range(power.shape[1] - len(roles))]
    out = {role: (db(power[:, j].max()), db(np.quantile(power[:, j], 0.999))) for j, role in enumerate(roles)}
    for name, p in (("burst", power.ravel()), ("payload", power[:, 2 + tx.header_repeats:].ravel())):
        out[name] = {"ccdf_1e-2_1e-3_1e-4": [db(np.quantile(p, 1 - q)) for q in (1e-2, 1e-3, 1e-4)], "max": db(p.max())}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsem measure frontend", description=__doc__)
    p.add_argument("what", nargs="*", choices=("dc", "papr"), default=["dc", "papr"])
    what = p.parse_args(argv).what
    if "dc" in what:
        for snr in (10.0, 20.0):
            for dc, blocker in ((0.0, False), (0.0, True), (0.3, False), (0.3, True)):
                print(json.dumps(dc_offset_run(snr, dc, blocker)), flush=True)
    if "papr" in what:
        print(json.dumps(tx_papr_by_symbol()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
