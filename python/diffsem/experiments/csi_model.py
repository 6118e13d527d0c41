"""How good is the real receiver's channel estimate? Measures diffsem.burst_rx.BurstReceiver on
synthetic bursts (the way ofdm_analog_tx builds them, channel taps applied by convolution per
burst, AWGN at Es/N0 per payload symbol) and prints, per channel kind and SNR:

  est_err   E|H_hat - H|^2 / sigma^2 per data carrier (the effective leverage / m of
            FrameEstimator's DFT fit over m = 5 training symbols; plus channel-model error)
  nv/nv0    reported noise_var relative to sigma^2/|H|^2 (true H): median and mean
  err/nv    mean squared error of the equalised symbols / mean reported noise_var
  mean(e/nv) mean over symbols of squared error / noise_var (1 = honest noise_var; robust to fades)
  corr      correlation of log(noise_var) and log(squared error) over symbols

diffsem.channel.transmit(csi="estimated") uses the est_err values (CSI_EST_ERR_*).
Run: PYTHONPATH=python python -m diffsem.experiments.csi_model [--frames 200] [--symbols 256]
No GNU Radio, no torch.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from diffsem import phy
from diffsem.channel import selective_pdp_numpy
from diffsem.phy import burst_rx
from diffsem.phy.ofdm import DEFAULT_LAYOUT, OfdmLayout

KINDS = ("rayleigh", "selective")
SNRS = (0.0, 5.0, 10.0, 20.0)


def draw_taps(kind: str, n_frames: int, rng) -> np.ndarray:
    """[n_frames, L] complex taps, unit average power: one gain (rayleigh) or 8 exponential-PDP taps."""
    pdp = np.ones(1) if kind == "rayleigh" else selective_pdp_numpy()
    z = rng.standard_normal((n_frames, pdp.size, 2)) @ np.array([1.0, 1j])
    return z * np.sqrt(pdp / 2.0)


def carrier_gains(taps: np.ndarray, n_symbols: int, layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """Per payload symbol complex gain [n_frames, n_symbols] (the convention of channel.channel_gains)."""
    carriers = np.asarray(layout.carrier_of_symbol(n_symbols), dtype=np.float64)
    basis = np.exp(-2j * np.pi * carriers[:, None] * np.arange(taps.shape[1])[None, :] / layout.fft_len)
    return taps @ basis.T


def run_receiver(payloads, taps, snr_db: float, rng, layout: OfdmLayout = DEFAULT_LAYOUT, gap: int = 200):
    """Bursts through their taps + AWGN into BurstReceiver. Returns, per frame received
    (same order as sent; lost frames are None): (symbols, noise_var, H_hat on the data symbols in
    TX units relative to the true channel's phase reference, sigma^2 in TX units)."""
    sym = layout.fft_len + layout.cp_len
    ta = min(3, layout.cp_len // 4)
    parts, triggers, starts, pos = [np.zeros(gap, np.complex64)], [], [], gap
    for seq, (p, h) in enumerate(zip(payloads, taps)):
        b = np.convolve(phy.reference_burst(p, seq, layout=layout), h).astype(np.complex64)
        triggers.append(pos + sym - ta)
        starts.append(pos)
        parts += [b, np.zeros(gap, np.complex64)]
        pos += b.size + gap
    x = np.concatenate(parts)
    sigma = phy.noise_voltage_for_snr(snr_db, layout)
    x = (x + sigma * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size)) / math.sqrt(2)).astype(np.complex64)

    rx = burst_rx.BurstReceiver(layout)
    est = rx.estimator
    fits, store = [], {}
    smooth, estimate = est.smooth_channel, est.estimate

    def smooth_rec(*a, **k):
        store["fit"] = out = smooth(*a, **k)
        return out

    def estimate_rec(*a, **k):
        out = estimate(*a, **k)
        fits.append(store["fit"][0])
        return out

    est.smooth_channel, est.estimate = smooth_rec, estimate_rec
    events, trig = [], np.asarray(triggers)
    chunk = 8192
    for i in range(0, x.size, chunk):
        sel = (trig >= i) & (trig < i + chunk)
        events += rx.push(x[i:i + chunk], trig[sel] - i, np.zeros(int(sel.sum())))
    frames = [v for k, v in events if k == "frame"]
    assert len(frames) == len(fits)
    n = layout.fft_len
    fft_scale = n * phy.tx_scale(layout)          # FFT units per TX unit of H
    sigma2_tx = 10.0 ** (-snr_db / 10.0)
    out = [None] * len(payloads)
    for f, fit in zip(frames, fits):
        s = f.seq
        if s >= len(payloads) or out[s] is not None or f.n_symbols != payloads[s].size:
            continue
        d = f.sample_offset - starts[s]                   # FFT windows moved later by d samples
        # H_hat is the derotated second preamble's channel: the payload is derotated by the total
        # cfo from the frame start, the estimate was moved to the phase at the preamble's window middle
        phase = np.exp(-2j * np.pi * f.cfo * (sym + layout.cp_len + (n - 1) / 2.0) / n)
        carriers = np.asarray(layout.carrier_of_symbol(f.n_symbols), dtype=np.float64)
        h_true = carrier_gains(taps[s][None, :], f.n_symbols, layout)[0]
        h_true = h_true * np.exp(2j * np.pi * carriers * d / n) * phase
        data_idx = np.searchsorted(est.active, np.asarray(est.data))
        h_hat_d = fit[data_idx] / fft_scale
        col = np.arange(f.n_symbols) % len(est.data)
        out[s] = (f.estimate.symbols, f.estimate.noise_var, h_hat_d[col], h_true, sigma2_tx)
    return out


def measure(kind: str, snr_db: float, n_frames: int = 200, n_symbols: int = 256, seed: int = 0,
            layout: OfdmLayout = DEFAULT_LAYOUT) -> dict:
    """One table row (see the module docstring; frames lost to header failure are left out); also the per-symbol arrays for tests."""
    rng = np.random.default_rng(seed)
    payloads = [((rng.standard_normal(n_symbols) + 1j * rng.standard_normal(n_symbols)) / math.sqrt(2)).astype(np.complex64)
                for _ in range(n_frames)]
    taps = draw_taps(kind, n_frames, rng)
    res = run_receiver(payloads, taps, snr_db, rng, layout)
    got = [(p, r) for p, r in zip(payloads, res) if r is not None]
    sym = np.concatenate([r[0] for _, r in got])
    nv = np.concatenate([r[1] for _, r in got]).astype(np.float64)
    h_hat = np.concatenate([r[2] for _, r in got])
    h = np.concatenate([r[3] for _, r in got])
    sent = np.concatenate([p for p, _ in got])
    sigma2 = got[0][1][4]
    err = np.abs(sym - sent) ** 2
    nv0 = sigma2 / np.maximum(np.abs(h) ** 2, 1e-4)
    ratio = nv / nv0
    return dict(kind=kind, snr_db=snr_db, frames=len(got), lost=n_frames - len(got),
                est_err=float(np.mean(np.abs(h_hat - h) ** 2) / sigma2),
                nv_ratio_median=float(np.median(ratio)), nv_ratio_mean=float(np.mean(ratio)),
                err_over_nv=float(err.mean() / nv.mean()), norm_err=float(np.mean(err / nv)),
                log_corr=float(np.corrcoef(np.log(nv), np.log(np.maximum(err, 1e-30)))[0, 1]),
                sigma2=sigma2, noise_var=nv, sq_err=err, h=h, h_hat=h_hat, taps=taps, payloads=payloads,
                received=[r is not None for r in res])


def table(n_frames: int = 200, n_symbols: int = 256, kinds=KINDS, snrs=SNRS, seed: int = 0) -> list:
    rows = []
    print(f"{'channel':10s} {'SNR':>5s} {'frames':>6s} {'est_err':>8s} {'nv/nv0 med':>10s} "
          f"{'nv/nv0 mean':>11s} {'err/nv':>7s} {'mean(e/nv)':>10s} {'corr':>5s}")
    for kind in kinds:
        for snr in snrs:
            r = measure(kind, snr, n_frames, n_symbols, seed)
            rows.append(r)
            print(f"{kind:10s} {snr:5.1f} {r['frames']:6d} {r['est_err']:8.4f} {r['nv_ratio_median']:10.3f} "
                  f"{r['nv_ratio_mean']:11.3f} {r['err_over_nv']:7.3f} {r['norm_err']:10.3f} {r['log_corr']:5.2f}", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--symbols", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channel", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--snr", nargs="+", type=float, default=list(SNRS))
    a = ap.parse_args(argv)
    table(a.frames, a.symbols, a.channel, a.snr, a.seed)


if __name__ == "__main__":
    main()
