"""The batched burst receiver (diffsem.phy.burst_batch.BatchReceiver, what ofdm_analog_rx runs)
gives what the reference (diffsem.phy.burst_rx.BurstReceiver) gives on the same recorded stream:
the same events in the same order (frames, false triggers, header failures, non-finite drops),
headers, sample offsets, detections, and symbols / noise variances / estimates to rounding; the
burst-end search (cut bursts), the sampling-clock drift and the 2x-rate probe included."""
import math
import os
import sys

import numpy as np
import pytest

from diffsem import phy
from diffsem.channel import selective_pdp_numpy
from diffsem.phy import burst_batch, burst_rx
from diffsem.phy.ofdm import DEFAULT_LAYOUT as LAY

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_phy_rx import awgn, cn, cut_burst, stream, trigger_of  # noqa: E402  (the numpy burst builder)

SYM = LAY.fft_len + LAY.cp_len


def recorded(lengths, snr_db, channel="awgn", cfo=0.0, delay=0.0, gap=320, seed=0):
    """Bursts as ofdm_analog_tx sends them through a channel: each burst its own fading taps
    ("rayleigh": one, "selective": the training channel's 8-tap profile), a fractional delay, a
    carrier offset over the whole stream, noise everywhere. Returns (samples, Schmidl & Cox-like
    triggers with their fine CFO: the integer part is left to the receiver)."""
    rng = np.random.default_rng(seed)
    pdp = selective_pdp_numpy()
    parts, triggers, pos = [np.zeros(gap, np.complex64)], [], gap
    for seq, k in enumerate(lengths):
        b = phy.reference_burst(cn(rng, k), seq)
        if delay:
            b = np.convolve(b, phy.fractional_delay_taps(delay))
        if channel == "selective":
            b = np.convolve(b, (rng.standard_normal(pdp.size) + 1j * rng.standard_normal(pdp.size)) * np.sqrt(pdp / 2))
        elif channel == "rayleigh":
            b = b * (rng.standard_normal() + 1j * rng.standard_normal()) / math.sqrt(2)
        triggers.append(trigger_of(pos))
        parts += [b.astype(np.complex64), np.zeros(2 * gap, np.complex64)]
        pos += b.size + 2 * gap
    x = np.concatenate(parts)
    x = (x * np.exp(2j * np.pi * cfo * np.arange(x.size) / LAY.fft_len)).astype(np.complex64)
    return awgn(x, snr_db, rng), triggers, [cfo - round(cfo)] * len(triggers)


def events_of(rx, x, triggers, cfos, chunk, per_push=None):
    """The events of pushing `x` in chunks (`per_push`, a list: gets how many each push gave)."""
    out, trig = [], np.asarray(triggers, dtype=np.int64)
    cfos = np.asarray(cfos, dtype=float)
    for i in range(0, x.size, chunk):
        sel = (trig >= i) & (trig < i + chunk)
        got = rx.push(x[i:i + chunk], trig[sel] - i, cfos[sel])
        out += got
        if per_push is not None:
            per_push.append(len(got))
    return out


def assert_same(ref_events, got_events):
    assert [k for k, _ in got_events] == [k for k, _ in ref_events]
    for (kind, a), (_, b) in zip(ref_events, got_events):
        if kind != "frame":
            assert a == b
            continue
        assert (b.seq, b.n_symbols, b.sample_offset, b.salvaged) == (a.seq, a.n_symbols, a.sample_offset, a.salvaged)
        assert b.cfo == pytest.approx(a.cfo, abs=1e-9)
        ea, eb = a.estimate, b.estimate
        np.testing.assert_allclose(eb.symbols, ea.symbols, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(eb.noise_var, ea.noise_var, rtol=1e-5)
        assert (eb.n_taps, eb.interfered, eb.erased, eb.cut) == (ea.n_taps, ea.interfered, ea.erased, ea.cut)
        assert eb.clock_mismatch == ea.clock_mismatch
        for name in ("snr_db", "post_eq_snr_db", "sigma2", "cpe_slope", "delay", "clock_ppm", "clock_ppm_sd"):
            assert getattr(eb, name) == pytest.approx(getattr(ea, name), rel=1e-9, abs=1e-9), name


def compare(x, triggers=(), cfos=(), chunks=(4096, 65536), **kwargs):
    """Both receivers on the same chunks (the matched filter's float32 rounding depends on where
    a chunk ends, in both alike): a few frames per push, and dozens."""
    for chunk in chunks:
        ref_pushes, got_pushes = [], []
        ref = events_of(burst_rx.BurstReceiver(LAY, **kwargs), x, triggers, cfos, chunk, ref_pushes)
        assert any(k == "frame" for k, _ in ref)
        rx = burst_batch.BatchReceiver(LAY, **kwargs)
        assert rx.batched
        assert_same(ref, events_of(rx, x, triggers, cfos, chunk, got_pushes))
        assert got_pushes == ref_pushes  # each event in the same push
    return ref


CASES = {
    "awgn 20 dB": dict(snr_db=20.0),
    "awgn 0 dB": dict(snr_db=0.0),
    "cfo +0.3, half a sample, 5 dB": dict(snr_db=5.0, cfo=0.3, delay=0.5),
    "cfo -0.3, half a sample, 20 dB": dict(snr_db=20.0, cfo=-0.3, delay=0.5),
    "integer and fine cfo 1.13, 25 dB": dict(snr_db=25.0, cfo=1.13),
    "selective 10 dB": dict(snr_db=10.0, channel="selective"),
    "selective 25 dB": dict(snr_db=25.0, channel="selective", delay=0.3),
    "flat rayleigh 10 dB": dict(snr_db=10.0, channel="rayleigh"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_batch_equals_reference(case):
    lengths = [128] * 40 + [1, 48, 49, 500, 128]
    ref = compare(*recorded(lengths, seed=1, **CASES[case]))
    assert sum(k == "frame" for k, _ in ref) >= 30


def test_batch_equals_reference_with_salvage_at_low_snr():
    x, trig, cfos = recorded([144] * 60, -2.0, seed=2)
    ref = compare(x, trig, cfos, fixed_k=144)
    assert any(k == "frame" and f.salvaged for k, f in ref)


def test_batch_equals_reference_on_hit_truncated_and_broken_frames():
    """Off the common path (the reference's own code inside the batch): an impulse on a payload
    symbol, a narrowband interferer during a whole frame, a cut tail, NaN samples; triggers that
    point at noise or inside frames."""
    rng = np.random.default_rng(3)
    x, trig, cfos = recorded([256] * 12, 20.0, seed=3)
    start = [t - SYM + min(3, LAY.cp_len // 4) for t in trig]
    payload0 = 6 * SYM  # preambles and 4 header copies
    x[start[1] + payload0 + 2 * SYM:start[1] + payload0 + 3 * SYM] += 3 * cn(rng, SYM)       # impulse
    n = np.arange(start[3], start[4] - 100)
    x[n] += (0.5 * np.exp(2j * np.pi * 9.0 * n / LAY.fft_len)).astype(np.complex64)           # tone on carrier 9
    x[start[5] + payload0 + 4 * SYM + 40:start[5] + payload0 + 6 * SYM] = 0                 # cut tail
    x[start[7] + 2 * SYM + 20] = np.nan                                                        # header
    x[start[9] + payload0 + SYM + 20] = np.inf                                                  # payload
    # triggers on noise and inside accepted frames (the batch computes their headers, then drops them)
    extra = [trig[0] - 250, trig[2] + 3 * SYM, trig[6] + 9 * SYM, trig[11] + 2 * SYM]
    order = np.argsort(trig + extra, kind="stable")
    ref = compare(x, np.asarray(trig + extra)[order], np.asarray(cfos + [0.0] * len(extra))[order])
    kinds = [k for k, _ in ref]
    frames = [f for k, f in ref if k == "frame"]
    assert kinds.count("nonfinite") == 2
    assert any(f.estimate.erased for f in frames) and any(f.estimate.interfered for f in frames)


def test_batch_equals_reference_on_cut_bursts():
    """Bursts whose header claims more symbols than were sent: the tail lost in noise (the burst
    end found on the pilots), the next burst right behind (its header found inside the claimed
    payload), a header claiming 4095 symbols; whole frames between them; triggers on the noise
    where a cut burst's claimed payload would have been (looked at once the burst's end is
    known, in the batch as in the reference). Chunks of 1000 samples too: the next frame's
    header not all in when the cut frame's payload is."""
    rng = np.random.default_rng(7)
    parts, pos, noise = [np.zeros(320, np.complex64)], 320, []
    for seq, (claimed, sent, gap) in enumerate([(480, 96, 320), (128, 128, 320), (4095, 128, 320), (480, 96, 0),
                                                (144, 96, 0), (480, 96, 1200), (128, 128, 320), (1000, 500, 320),
                                                (960, 240, 2000), (128, 128, 320)]):
        b = cut_burst(claimed, sent, seq, rng)[0]
        if gap > 1000:  # noise triggers 2 and 5 symbols past the burst's end
            noise += [trigger_of(pos + b.size + k * SYM) for k in (2, 5)]
        parts += [b, np.zeros(gap, np.complex64)]
        pos += b.size + gap
    good, _ = stream([cn(rng, 128) for _ in range(4)], gap=320)
    x = np.concatenate(parts + [good, np.zeros(6000, np.complex64)])
    for snr_db in (20.0, 8.0):
        ref = compare(awgn(x, snr_db, rng), noise, [0.0] * len(noise), chunks=(1000, 4096, 65536))
        frames = [f for k, f in ref if k == "frame"]
        assert sum(f.estimate.cut > 0 for f in frames) >= 6 and len(frames) >= 12
        assert [k for k, _ in ref].count("false_trigger") >= 2


def test_batch_equals_reference_when_the_next_header_is_not_all_in():
    """A cut burst with the next one right behind, the stream pushed in chunks that end while the
    next frame's trigger is known but its header is not all in: both receivers wait a push
    before they estimate the cut frame."""
    rng = np.random.default_rng(10)
    cut = cut_burst(144, 96, 0, rng)[0]
    good, _ = stream([cn(rng, 128) for _ in range(3)], gap=320)
    x = awgn(np.concatenate([np.zeros(320, np.complex64), cut, good[320:], np.zeros(4000, np.complex64)]), 20.0, rng)
    ref = compare(x, chunks=(1300,))
    assert [f.seq for k, f in ref if k == "frame"] == [0, 0, 1, 2] and ref[0][1].estimate.cut > 0


@pytest.mark.parametrize("up,snr_db", [(1001, 20.0), (999, 10.0)])
def test_batch_equals_reference_on_a_resampled_stream(up, snr_db):
    """A recording resampled by 1.001 (or 0.999): the drift is measured on every frame, turned
    back in the batch as in the reference, and counted as a clock mismatch."""
    from scipy.signal import resample_poly
    rng = np.random.default_rng(8)
    x, _ = stream([cn(rng, n) for n in (128, 1000, 4095, 48) * 4], gap=320)
    y = awgn(resample_poly(np.concatenate([x, np.zeros(4000, np.complex64)]), up, 1000).astype(np.complex64),
             snr_db, rng)
    ref = compare(y)
    frames = [f for k, f in ref if k == "frame"]
    assert len(frames) >= 14 and sum(f.estimate.clock_mismatch for f in frames) >= 8


def test_batch_equals_reference_on_a_stream_oversampled_2x():
    """The 2x-rate probe (a receiver of the same class on the stream decimated by 2)."""
    from scipy.signal import resample_poly
    rng = np.random.default_rng(9)
    x, _ = stream([cn(rng, 128) for _ in range(8)], gap=320)
    y = np.concatenate([awgn(resample_poly(x, 2, 1).astype(np.complex64), 15.0, rng), awgn(x, 15.0, rng)])
    for chunk in (4096, 65536):  # (the 2x frames and the 1x ones in one push: probed all the same)
        ref = compare(y, chunks=(chunk,))
        assert [k for k, _ in ref].count("wrong_rate") == 8


def test_crc_rows_match_crc8():
    rng = np.random.default_rng(4)
    data = rng.integers(0, 256, size=(50, 4))
    assert phy.crc8_rows(data).tolist() == [phy.crc8(bytes(row.tolist())) for row in data]


def test_phase_slope_rows_match_the_scalar_fit():
    rng = np.random.default_rng(5)
    t = 1.0 + np.arange(7)
    corr = np.exp(1j * (0.7 * t[None, :] + 0.1 * rng.standard_normal((20, 7)))) * rng.uniform(0.5, 2, (20, 7))
    got = burst_batch.fit_phase_slope_rows(corr, t)
    assert got == pytest.approx([phy.fit_phase_slope(c, t) for c in corr], abs=1e-12)


def test_other_phase_tracking_runs_the_reference():
    x, trig, cfos = recorded([128] * 5, 20.0, seed=6)
    for kwargs in (dict(phase_tracking="per_symbol"), dict(data_aided=False)):
        rx = burst_batch.BatchReceiver(LAY, **kwargs)
        assert not rx.batched
        assert_same(events_of(burst_rx.BurstReceiver(LAY, **kwargs), x, trig, cfos, 65536),
                    events_of(rx, x, trig, cfos, 65536))
