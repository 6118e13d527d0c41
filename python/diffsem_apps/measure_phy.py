"""`diffsem measure phy`: the analog OFDM link's figures (loss, symbol MSE, SNR estimate, noise
variance calibration) over loopback runs (gnuradio.diffsem.harness.PhyLoopback), one JSON line
per condition; `--only interop`: how far gr-digital's stock OFDM receiver and ours read each
other's bursts (`interop`)."""
from __future__ import annotations

from diffsem.phy.ofdm import ERASED_NOISE_VAR
from gnuradio.diffsem.harness import PhyLoopback


def measure(snr_db, channel="awgn", cfo=0.0, timing_offset=0.0, n_frames=1000, n_symbols=128, seed=0):
    """One loopback condition -> dict of the figures docs/design/phy.md reports."""
    import numpy as np

    tb = PhyLoopback(snr_db, channel, cfo, timing_offset, n_frames, n_symbols, seed, window=16,
                  keep_symbols=(channel != "awgn"))
    r = tb.run_until_done(timeout=1200.0)
    records = np.array([rec[1:] for rec in tb.checker.records]) if tb.checker.records else np.zeros((0, 3))
    out = dict(snr_db=snr_db, channel=channel, cfo=cfo, timing_offset=timing_offset, frames=r["sent"],
               lost=r["lost"], loss_pct=round(100.0 * r["lost"] / max(r["sent"], 1), 3),
               header_crc_fail=r["rx"]["header_crc_fail"], false_triggers=r["rx"]["false_triggers"],
               false_triggers_per_frame=round(r["rx"]["false_triggers"] / max(r["sent"], 1), 4),
               seconds=round(r["seconds"], 1))
    if len(records):
        snr_est = records[:, 1]
        out.update(mse_db=round(r["mse_db"], 3), noise_var_db=round(r["noise_var_db"], 3),
                   mse_minus_noise_db=round(r["mse_db"] + snr_db, 3),
                   snr_est_mean_db=round(float(np.mean(snr_est)), 3),
                   snr_est_p5_p95_db=[round(float(v), 2) for v in np.percentile(snr_est, [5, 95])])
    if tb.checker.symbol_records:
        nv = np.concatenate([a for a, _ in tb.checker.symbol_records]).astype(np.float64)
        err = np.concatenate([b for _, b in tb.checker.symbol_records]).astype(np.float64)
        order = np.argsort(nv)
        bins_nv = np.array([b.mean() for b in np.array_split(nv[order], 20)])
        bins_err = np.array([b.mean() for b in np.array_split(err[order], 20)])
        out.update(noise_var_err_corr_symbol=round(float(np.corrcoef(nv, err)[0, 1]), 3),
                   noise_var_err_corr_log_binned=round(float(np.corrcoef(np.log(bins_nv), np.log(bins_err))[0, 1]), 4),
                   err_over_noise_var_db=round(float(10 * np.log10(err.mean() / nv.mean())), 3))
    return out


STOCK_PACKET_BYTES = 32  # stock bursts: 32-byte packets (+ CRC32), BPSK header and payload (ofdm_tx defaults)


def _stock_rx(tb, src):
    """gr-digital's stock `digital.ofdm_rx` (defaults) on `src`, with its internal header parser's
    `header_data` port also wired to a message_debug, so every header it tries is counted (a dict
    when the stock format and CRC-8 pass, #f when not). Returns (message_debug, payload sink)."""
    from gnuradio import blocks, digital, gr
    from gnuradio.digital import digital_python

    made, real = [], digital_python.packet_headerparser_b

    def capture(*a, **kw):  # ofdm_rx keeps the parser in a local: catch it as it is made
        made.append(real(*a, **kw))
        return made[-1]

    digital_python.packet_headerparser_b = capture
    level = gr.logging().default_level()
    gr.logging().set_default_level(gr.log_levels.warn)  # not an info line per header refused
    try:
        rx = digital.ofdm_rx()
    finally:
        digital_python.packet_headerparser_b = real
        gr.logging().set_default_level(level)
    headers, payload = blocks.message_debug(), blocks.vector_sink_b()
    tb.connect(src, rx, payload)
    tb.msg_connect(made[0], "header_data", headers, "store")
    return headers, payload


def _run_recording(tb, src, n_samples, progress, quiet_s=1.0, timeout_s=300.0):
    """Run `tb` until its vector_source `src` has played its n_samples and `progress()` has stood
    still for quiet_s, then stop it (a message_debug wired into a hier block keeps tb.run() from
    returning)."""
    import time

    tb.start()
    t0 = last_change = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout_s:
        time.sleep(0.05)
        now = (src.nitems_written(0), progress())
        if now != last:
            last, last_change = now, time.monotonic()
        elif now[0] >= n_samples and time.monotonic() - last_change > quiet_s:
            break
    tb.stop()
    tb.wait()


def _stock_rx_counts(samples):
    import pmt
    from gnuradio import blocks, gr

    tb = gr.top_block("stock_ofdm_rx")
    src = blocks.vector_source_c(samples.tolist(), False)
    headers, payload = _stock_rx(tb, src)
    _run_recording(tb, src, samples.size, lambda: (headers.num_messages(), len(payload.data())))
    msgs = [headers.get_message(i) for i in range(headers.num_messages())]
    parsed = [pmt.to_python(m) for m in msgs if pmt.is_dict(m)]
    return dict(headers_tried=len(msgs), headers_parsed=len(parsed),
                packets_crc32_ok=len(payload.data()) // STOCK_PACKET_BYTES,
                first_parsed=[{k: h.get(k) for k in ("packet_length", "packet_num", "frame_length")}
                              for h in parsed[:2]])


def _our_rx_counts(samples):
    from gnuradio import blocks, gr
    from gnuradio.diffsem import ofdm_analog_rx

    tb = gr.top_block("diffsem_ofdm_rx")
    rx = ofdm_analog_rx()
    src = blocks.vector_source_c(samples.tolist(), False)
    tb.connect(src, rx)
    _run_recording(tb, src, samples.size, lambda: tuple(rx.stats().values()))
    st = rx.stats()
    return {k: st[k] for k in ("frames", "headers_ok", "header_crc_fail", "false_triggers")}


def _our_bursts(n, snr_db, seed, n_symbols=128):
    """Our TX's bursts (ofdm_analog_tx, 4 header copies) through channel_sim AWGN at snr_db, as
    recorded at the channel's output, and what our own RX made of them in the same run."""
    import numpy as np
    from gnuradio import blocks
    from gnuradio.diffsem.harness import PhyLoopback

    tb = PhyLoopback(snr_db, "awgn", 0.0, 0.0, n, n_symbols, seed, window=8)
    recorder = blocks.vector_sink_c()
    tb.connect(tb.channel, recorder)
    r = tb.run_until_done(timeout=300.0)
    return np.asarray(recorder.data(), np.complex64), dict(sent=r["sent"], frames=r["frames"])


def _stock_bursts(n, snr_db, seed, pad=320):
    """The stock `digital.ofdm_tx` (defaults: BPSK header and payload, CRC32) on n random
    32-byte packets, zero-padded like ours, AWGN at the same Es/N0 per carrier as ours (the last
    burst's trailing zeros stay in burst_shaper_cc: interop() appends zeros to every recording)."""
    import numpy as np
    from gnuradio import blocks, channels, digital, gr

    from diffsem import phy
    from diffsem_apps.bench_phy import stock_packet_source

    tb = gr.top_block("stock_ofdm_tx")
    src = stock_packet_source(n, STOCK_PACKET_BYTES, seed)
    tx = digital.ofdm_tx()
    padder = digital.burst_shaper_cc([], pad, pad, False, "packet_length")
    # the stock TX gives each active carrier unit power unscaled: scale the noise alike
    noise = phy.noise_voltage_for_snr(snr_db) * np.sqrt(phy.n_active())
    chan = channels.channel_model(noise, 0.0, 1.0, [1.0], float(seed))
    sink = blocks.vector_sink_c()
    tb.connect(src, tx, padder, chan, sink)
    tb.run()
    return np.asarray(sink.data(), np.complex64)


def interop(n_bursts=16, snr_db=20.0, seed=0) -> dict:
    """Each receiver on each transmitter's bursts (AWGN, snr_db): stock digital.ofdm_rx on ours
    (headers parsed by its packet_headerparser_b), ours (ofdm_analog_rx) on stock ofdm_tx bursts
    (frames out, header CRC failures, triggers refused as false), and both controls."""
    import time

    import numpy as np

    t0 = time.monotonic()
    tail = np.zeros(2000, np.complex64)  # lets each receiver finish the last burst
    ours, ours_live = _our_bursts(n_bursts, snr_db, seed)
    ours = np.concatenate([ours, tail])
    stock = np.concatenate([_stock_bursts(n_bursts, snr_db, seed), tail])
    return dict(measure="interop", bursts=n_bursts, snr_db=snr_db, seed=seed,
                stock_rx_on_ours=_stock_rx_counts(ours),
                ours_rx_on_stock=_our_rx_counts(stock),
                control_ours_on_ours=dict(live=ours_live, recorded=_our_rx_counts(ours)),
                control_stock_on_stock=_stock_rx_counts(stock),
                seconds=round(time.monotonic() - t0, 1))


def measure_interference(kind="narrowband", fraction=0.125, sir_db=0.0, snr_db=10.0, channel="awgn",
                         n_frames=200, n_symbols=144, seed=0):
    """A partial-frame impairment of channel_sim (kind, fraction, SIR): what the receiver reports
    on the cells it hit vs the clean ones, against the actual squared error of its symbols.
    `*_err_over_nv`: the mean over cells of squared error / reported noise_var, 1 when each cell's
    variance is right; a cell reported ten times too clean adds 10, which a mean of the variances
    hides. (`n_symbols` 144 = 3 whole OFDM symbols, the training definition's fractions exactly.)"""
    import numpy as np

    tb = PhyLoopback(snr_db, channel, 0.0, 0.0, n_frames, n_symbols, seed, window=16, keep_symbols=True,
                     channel_kwargs=dict(impairment=kind, impairment_fraction=fraction, sir_db=sir_db,
                                         frame_k=n_symbols))
    r = tb.run_until_done(timeout=1200.0)
    out = dict(impairment=kind, fraction=fraction, sir_db=sir_db, snr_db=snr_db, channel=channel,
               frames=r["sent"], lost=r["lost"], header_crc_fail=r["rx"]["header_crc_fail"],
               interfered_frames=r["rx"]["interfered"])
    hits = np.array(tb.channel.partial_frame.hits)
    if r["lost"] or len(hits) != len(tb.checker.symbol_records):
        return out  # the hit masks are per burst sent: aligned only when every frame arrived
    nv = np.array([a for a, _ in tb.checker.symbol_records], dtype=np.float64)
    err = np.array([b for _, b in tb.checker.symbol_records], dtype=np.float64)
    erased = nv >= ERASED_NOISE_VAR

    def db(x):
        return round(float(10 * np.log10(x)), 2) if np.isfinite(x) and x > 0 else None

    for name, m in (("hit", hits), ("clean", ~hits)):
        kept = m & ~erased
        out.update({f"{name}_cells": int(m.sum()), f"{name}_erased_pct": round(100.0 * float(erased[m].mean()), 2),
                    f"{name}_noise_var_db": db(nv[kept].mean()) if kept.any() else None,
                    f"{name}_err_db": db(err[kept].mean()) if kept.any() else None,
                    f"{name}_err_over_nv": round(float((err[kept] / nv[kept]).mean()), 3) if kept.any() else None,
                    f"{name}_err_all_db": db(err[m].mean()) if m.any() else None})
    return out


def stream_faults(n_frames=100, seed=0):
    """The numpy burst receiver (diffsem.phy.burst_rx) on bursts built by phy.reference_burst, one
    dict per condition: whole frames never cut nor flagged (AWGN -2..20 dB; 128, 1000 and 4095
    symbols); how many OFDM symbols of noise after a cut burst it takes to find the burst's end;
    a recording resampled by 1.001 / 0.999 / 1.0001 with the drift removed and only reported;
    a stream oversampled 2x. The figures of docs/design/phy.md#stream-faults."""
    import numpy as np
    from scipy.signal import resample_poly

    from diffsem import phy
    from diffsem.phy import burst_rx

    rng = np.random.default_rng(seed)
    sym, pad = 80, np.zeros(320, np.complex64)

    def cn(n):
        return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)

    def bursts(payloads, keep=None):
        out = []
        for seq, p in enumerate(payloads):
            b = phy.reference_burst(p, seq)
            out += [pad, b if keep is None else b[:(6 + keep) * sym], pad]
        return np.concatenate(out + [np.zeros(4000, np.complex64)])

    def receive(x, snr_db, tracking=True):
        x = (x + phy.noise_voltage_for_snr(snr_db) * cn(x.size)).astype(np.complex64)
        rx, events = burst_rx.BurstReceiver(), []
        rx.estimator.clock_tracking = tracking
        for i in range(0, x.size, 4096):
            events += rx.push(x[i:i + 4096])
        return [v for k, v in events if k == "frame"], [k for k, _ in events if k != "frame"]

    def db(x):
        return round(float(10 * np.log10(x)), 2)

    rows = []
    for snr in (-2.0, 0.0, 3.0, 5.0, 10.0, 20.0):
        for k, n in ((128, n_frames), (1000, max(n_frames // 5, 1)), (4095, max(n_frames // 20, 1))):
            frames, _ = receive(bursts([cn(k) for _ in range(n)]), snr)
            rows.append(dict(fault="none", snr_db=snr, n_symbols=k, sent=n, received=len(frames),
                             cut=sum(1 for f in frames if f.estimate.cut),
                             clock_mismatch=sum(1 for f in frames if f.estimate.clock_mismatch)))
    for snr in (5.0, 10.0, 20.0):
        for dead in (1, 2, 4, 8):   # 480-symbol frames (10 OFDM symbols), the last `dead` lost in noise
            payloads = [cn(480) for _ in range(max(n_frames // 5, 1))]
            frames, _ = receive(bursts(payloads, keep=10 - dead), snr)
            rows.append(dict(fault="cut_tail", snr_db=snr, ofdm_symbols_lost=dead, sent=len(payloads),
                             received=len(frames), found=sum(1 for f in frames if f.estimate.cut == dead * 48),
                             found_elsewhere=sum(1 for f in frames if f.estimate.cut not in (0, dead * 48))))
    for up, down in ((1001, 1000), (999, 1000), (10001, 10000)):
        for snr in (10.0, 20.0):
            for k in (128, 1000):
                payloads = [cn(k) for _ in range(max(n_frames // (5 if k > 128 else 2), 1))]
                x = resample_poly(bursts(payloads), up, down).astype(np.complex64)
                for tracking in (True, False):
                    frames, _ = receive(x, snr, tracking)
                    err = np.concatenate([np.abs(f.estimate.symbols - payloads[f.seq]) ** 2 for f in frames])
                    nv = np.concatenate([f.estimate.noise_var for f in frames])
                    rows.append(dict(fault=f"resampled {up}/{down}", snr_db=snr, n_symbols=k, drift_removed=tracking,
                                     sent=len(payloads), received=len(frames),
                                     clock_ppm_median=round(float(np.median([f.estimate.clock_ppm for f in frames])), 1),
                                     clock_ppm_sd_median=round(float(np.median([f.estimate.clock_ppm_sd for f in frames])), 1),
                                     clock_mismatch=sum(1 for f in frames if f.estimate.clock_mismatch),
                                     err_db=db(err.mean()), noise_var_over_err_db=db(nv.mean() / err.mean())))
    payloads = [cn(128) for _ in range(n_frames)]
    frames, kinds = receive(resample_poly(bursts(payloads), 2, 1).astype(np.complex64), 15.0)
    rows.append(dict(fault="oversampled 2x", snr_db=15.0, sent=n_frames, received=len(frames),
                     wrong_rate=kinds.count("wrong_rate")))
    return rows


def salvage(n_frames=200, snrs=(-3.0, -4.0, -5.0), seed=2) -> list[dict]:
    """ofdm_analog_rx with the link's k fixed, against without: PhyLoopback at each SNR (all frames
    sent at once), the receiver's CRC failures, salvaged frames and frames lost, for no salvage,
    salvage over all 4096 seqs alike (burst_rx.SALVAGE_WINDOW = 0) and the shipped salvage (the
    seqs after the last good header first). wrong_seq: delivered frames whose squared error is
    above 1.4 times their noise variance (a wrong seq compares with another frame's symbols:
    about (noise + 2) / noise, 1.8 at -4 dB; a right one 1 +- 0.09 over 128 symbols)."""
    from diffsem.phy import burst_rx
    from gnuradio.diffsem.harness import PhyLoopback

    rows = []
    for snr in snrs:
        for mode, fixed_k, window in (("off", 0, burst_rx.SALVAGE_WINDOW), ("all seqs alike", 128, 0),
                                      ("after the last good header", 128, burst_rx.SALVAGE_WINDOW)):
            shipped, burst_rx.SALVAGE_WINDOW = burst_rx.SALVAGE_WINDOW, window
            try:
                tb = PhyLoopback(snr, "awgn", n_frames=n_frames, n_symbols=128, seed=seed, window=n_frames,
                                 rx_kwargs=dict(fixed_k=fixed_k))
                r = tb.run_until_done(timeout=300, idle=1.5)
            finally:
                burst_rx.SALVAGE_WINDOW = shipped
            wrong = sum(mse > 1.4 * nv for _, mse, _, nv in tb.checker.records)
            rows.append(dict(what="salvage", snr_db=snr, mode=mode, frames=n_frames, received=r["frames"],
                             header_crc_fail=r["rx"]["header_crc_fail"], salvaged=r["rx"]["salvaged"],
                             lost=r["lost"], wrong_seq=int(wrong)))
    return rows


def main(argv=None):
    """diffsem measure phy [--frames N] [--only snr,cfo,selective,rayleigh,sync]: the PHY figures
    of docs/design/phy.md, one JSON line per condition (seed 0); sync (not in the default set):
    AWGN 0, -3 and 20 dB, flat Rayleigh 10 and 5 dB, --frames each; interop (not in the default
    set): stock digital.ofdm_rx on our bursts and ours on stock ofdm_tx bursts, --frames bursts at
    --snr-db (interop()); interference (not in the default set): channel_sim's partial-frame
    impairments at 10 dB (a narrowband interferer at 0 dB SIR on 6 of the 48 data carriers, AWGN
    and selective; impulsive bursts on 25 % of the OFDM symbols; a 25 % truncated tail), --frames
    each: the receiver's noise_var on the hit and the clean cells against their actual squared
    error, and the share of cells it erased; faults (not in the default set): the numpy receiver
    on truncated bursts, resampled and 2x oversampled streams, and whole frames (stream_faults(),
    --frames 128-symbol frames per condition, fewer of the longer ones); salvage (not in the
    default set): headers whose CRC failed, decoded with the link's k known (salvage(), --frames
    each at -3, -4 and -5 dB)."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="diffsem measure phy", description=main.__doc__)
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--low-snr-frames", type=int, default=200, help="frames at 0 dB (many are not detected)")
    p.add_argument("--only", default="",
                   help="comma list of: snr,cfo,selective,rayleigh,sync,interop,interference,faults,salvage")
    p.add_argument("--snr-db", type=float, default=20.0, help="interop: AWGN Es/N0 (default 20)")
    a = p.parse_args(argv)
    only = set(filter(None, a.only.split(",")))
    conditions = []
    if not only or "snr" in only:
        conditions += [dict(snr_db=0.0, n_frames=a.low_snr_frames)]
        conditions += [dict(snr_db=s, n_frames=a.frames) for s in (5.0, 10.0, 15.0, 20.0, 25.0)]
    if not only or "cfo" in only:
        conditions += [dict(snr_db=s, cfo=c, timing_offset=0.5, n_frames=a.frames)
                       for s in (5.0, 20.0) for c in (0.3, -0.3)]
    if not only or "selective" in only:
        conditions += [dict(snr_db=s, channel="selective", n_frames=a.frames // 2) for s in (10.0, 20.0)]
    if not only or "rayleigh" in only:
        conditions += [dict(snr_db=20.0, channel="rayleigh", n_frames=a.frames // 2)]
    if "sync" in only:  # detection and header at low SNR: loss, header failures, false triggers
        conditions += [dict(snr_db=s, n_frames=a.frames) for s in (0.0, -3.0, 20.0)]
        conditions += [dict(snr_db=s, channel="rayleigh", n_frames=a.frames) for s in (10.0, 5.0)]
    for cond in conditions:
        print(json.dumps(measure(**cond)), flush=True)
    if "interop" in only:
        print(json.dumps(interop(a.frames, a.snr_db)), flush=True)
    if "interference" in only:
        for cond in (dict(kind="narrowband", fraction=0.125), dict(kind="narrowband", fraction=0.125, channel="selective"),
                     dict(kind="burst", fraction=0.25), dict(kind="truncation", fraction=0.25)):
            print(json.dumps(measure_interference(n_frames=a.frames, **cond)), flush=True)
    if "faults" in only:
        for row in stream_faults(a.frames):
            print(json.dumps(row), flush=True)
    if "salvage" in only:
        for row in salvage(a.frames):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
