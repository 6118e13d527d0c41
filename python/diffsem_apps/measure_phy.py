"""`diffsem measure phy`: the analog OFDM link's figures (loss, symbol MSE, SNR estimate, noise
variance calibration) over loopback runs (gnuradio.diffsem.harness.PhyLoopback), one JSON line
per condition."""
from __future__ import annotations

from diffsem.phy.ofdm import ERASED_NOISE_VAR
from gnuradio.diffsem.harness import PhyLoopback


def measure(snr_db, channel="awgn", cfo=0.0, timing_offset=0.0, n_frames=1000, n_symbols=128, seed=0):
    """One loopback condition -> dict of the figures docs/phy.md reports."""
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


def measure_interference(kind="narrowband", fraction=0.125, sir_db=0.0, snr_db=10.0, channel="awgn",
                         n_frames=200, n_symbols=144, seed=0):
    """A partial-frame impairment of channel_sim (kind, fraction, SIR): what the receiver reports
    on the cells it hit vs the clean ones, against the actual squared error of its symbols.
    (`n_symbols` 144 = 3 whole OFDM symbols, the training definition's fractions exactly.)"""
    import numpy as np

    tb = PhyLoopback(snr_db, channel, 0.0, 0.0, n_frames, n_symbols, seed, window=16, keep_symbols=True,
                     channel_kwargs=dict(impairment=kind, impairment_fraction=fraction, sir_db=sir_db,
                                         frame_k=n_symbols))
    r = tb.run_until_done(timeout=1200.0)
    out = dict(impairment=kind, fraction=fraction, sir_db=sir_db, snr_db=snr_db, channel=channel,
               frames=r["sent"], lost=r["lost"], header_crc_fail=r["rx"]["header_crc_fail"])
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
                    f"{name}_err_all_db": db(err[m].mean()) if m.any() else None})
    return out


def main(argv=None):
    """diffsem measure phy [--frames N] [--only snr,cfo,selective,rayleigh,sync]: the PHY figures
    of docs/phy.md, one JSON line per condition (seed 0); sync (not in the default set): AWGN 0,
    -3 and 20 dB, flat Rayleigh 10 and 5 dB, --frames each; interference (not in the default
    set): channel_sim's partial-frame impairments at 10 dB (a narrowband interferer at 0 dB SIR
    on 6 of the 48 data carriers, AWGN and selective; impulsive bursts on 25 % of the OFDM
    symbols; a 25 % truncated tail), --frames each: the receiver's noise_var on the hit and the
    clean cells against their actual squared error, and the share of cells it erased."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="diffsem measure phy", description=main.__doc__)
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--low-snr-frames", type=int, default=200, help="frames at 0 dB (many are not detected)")
    p.add_argument("--only", default="", help="comma list of: snr,cfo,selective,rayleigh,sync,interference")
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
    if "interference" in only:
        for cond in (dict(kind="narrowband", fraction=0.125), dict(kind="narrowband", fraction=0.125, channel="selective"),
                     dict(kind="burst", fraction=0.25), dict(kind="truncation", fraction=0.25)):
            print(json.dumps(measure_interference(n_frames=a.frames, **cond)), flush=True)


if __name__ == "__main__":
    main()
