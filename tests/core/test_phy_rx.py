"""The numpy burst receiver (diffsem.phy.burst_rx), without GNU Radio: bursts built here the way
ofdm_analog_tx builds them, triggers given where the Schmidl & Cox detector puts them."""
import math

import numpy as np
import pytest

from diffsem import phy
from diffsem.phy import burst_rx
from diffsem.phy.ofdm import DEFAULT_LAYOUT as LAY, ERASED_NOISE_VAR

SYM = LAY.fft_len + LAY.cp_len
HALF = LAY.fft_len // 2


def burst(payload, seq, repeats=4):
    return phy.reference_burst(payload, seq, repeats, LAY)


def trigger_of(start):
    """Where the detector's trigger sits for a burst starting at `start` (see BurstReceiver)."""
    return start + SYM - min(3, LAY.cp_len // 4)


def awgn(x, snr_db, rng):
    sigma = phy.noise_voltage_for_snr(snr_db, LAY)
    return (x + sigma * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size)) / math.sqrt(2)).astype(np.complex64)


def stream(payloads, gap=400, cfo=0.0):
    """Bursts separated by `gap` zeros, a carrier offset of `cfo` subcarriers applied; returns the
    samples and each burst's trigger index."""
    parts, triggers, pos = [np.zeros(gap, np.complex64)], [], gap
    for seq, p in enumerate(payloads):
        b = burst(p, seq)
        triggers.append(trigger_of(pos))
        parts += [b, np.zeros(gap, np.complex64)]
        pos += b.size + gap
    x = np.concatenate(parts)
    x = x * np.exp(2j * np.pi * cfo * np.arange(x.size) / LAY.fft_len)
    return x.astype(np.complex64), triggers


def cn(rng, n):
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)


def run(rx, x, triggers, cfos, chunk=4096):
    events, trig = [], np.asarray(triggers)
    cfos = np.asarray(cfos, dtype=float)
    for i in range(0, x.size, chunk):
        sel = (trig >= i) & (trig < i + chunk)
        events += rx.push(x[i:i + chunk], trig[sel] - i, cfos[sel])
    return events


def test_parse_header_roundtrip_and_refusals():
    bits = phy.header_bits(300, 1234, LAY.n_data)
    assert burst_rx.parse_header(bits, LAY.n_data) == (300, 1234)
    flipped = bits.copy()
    flipped[5] ^= 1
    assert burst_rx.parse_header(flipped, LAY.n_data) is None
    fill = bits.copy()
    fill[-1] = 1                     # CRC fine, zero fill not: a noise header
    assert burst_rx.parse_header(fill, LAY.n_data) is None
    assert burst_rx.parse_header(np.zeros(LAY.n_data, np.uint8), LAY.n_data) is None  # length 0


@pytest.mark.parametrize("chunk", [4096, 333])
def test_frames_exact_at_high_snr_any_chunking(chunk):
    rng = np.random.default_rng(0)
    payloads = [cn(rng, n) for n in (1, 48, 128, 1000, 4095)]
    x, trig = stream(payloads)
    x = awgn(x, 40.0, rng)
    rx = burst_rx.BurstReceiver(LAY)
    events = run(rx, x, trig, [0.0] * len(trig), chunk)
    frames = [v for k, v in events if k == "frame"]
    assert [f.seq for f in frames] == list(range(len(payloads)))
    for f, p in zip(frames, payloads):
        assert f.n_symbols == p.size
        mse = float(np.mean(np.abs(f.estimate.symbols - p) ** 2))
        assert 10 * math.log10(mse) < -37.0
        assert abs(f.estimate.snr_db - 40.0) < 1.0
    assert rx.buf.size < 2 * SYM + chunk  # nothing kept once the frames are out


def test_awgn_error_matches_noise_and_noise_var():
    """Nothing in the receiver adds error of its own: equalised MSE within 0.3 dB of the channel
    noise at 5 and 20 dB, and the reported noise_var within 0.3 dB of the MSE."""
    rng = np.random.default_rng(1)
    for snr in (5.0, 20.0):
        payloads = [cn(rng, 128) for _ in range(150)]
        x, trig = stream(payloads)
        frames = [v for k, v in run(burst_rx.BurstReceiver(LAY), awgn(x, snr, rng), trig, [0.0] * len(trig)) if k == "frame"]
        assert len(frames) == len(payloads)
        err = np.concatenate([np.abs(f.estimate.symbols - payloads[f.seq]) ** 2 for f in frames])
        nv = np.concatenate([f.estimate.noise_var for f in frames])
        excess = 10 * math.log10(err.mean() * 10 ** (snr / 10))
        assert excess < 0.3, (snr, excess)
        assert abs(10 * math.log10(nv.mean() / err.mean())) < 0.3


def test_fine_and_integer_cfo_are_removed():
    """A CFO of 1.13 subcarriers: the trigger reports the fine part (0.13, with an error of 0.02
    as the detector leaves at low SNR); the integer part comes from the preambles and the
    residual from the known header; the reported cfo is the total."""
    rng = np.random.default_rng(2)
    payloads = [cn(rng, 256) for _ in range(10)]
    x, trig = stream(payloads, cfo=1.13)
    x = awgn(x, 25.0, rng)
    frames = [v for k, v in run(burst_rx.BurstReceiver(LAY), x, trig, [0.15] * len(trig)) if k == "frame"]
    assert len(frames) == 10
    for f in frames:
        assert f.cfo == pytest.approx(1.13, abs=0.005)
        mse = float(np.mean(np.abs(f.estimate.symbols - payloads[f.seq]) ** 2))
        assert 10 * math.log10(mse) < -24.0


def test_noise_triggers_and_triggers_inside_frames():
    """Triggers on noise are header failures (counted by the block), a trigger inside an accepted
    frame is ignored, a frame straddling the buffer is still received, NaN samples are reported."""
    rng = np.random.default_rng(3)
    payloads = [cn(rng, 200) for _ in range(3)]
    x, trig = stream(payloads, gap=1500)
    x = awgn(x, 20.0, rng)
    noise_trig = [trig[0] - 1200, trig[1] - 1000]
    inside = [trig[0] + 3 * SYM, trig[2] + 5 * SYM]
    all_trig = sorted(trig + noise_trig + inside)
    events = run(burst_rx.BurstReceiver(LAY), x, all_trig, [0.0] * len(all_trig), chunk=1000)
    kinds = [k for k, _ in events]
    assert kinds.count("frame") == 3 and kinds.count("false_trigger") == 2, kinds
    bad = x.copy()
    bad[trig[1] + 2 * SYM + 40] = np.nan  # mid header copy: inside an FFT window, not a cyclic prefix
    events = run(burst_rx.BurstReceiver(LAY), bad, trig, [0.0] * 3)
    assert [k for k, _ in events].count("frame") == 2 and ("nonfinite" in [k for k, _ in events])


def cut_burst(n_claimed, n_sent, seq, rng):
    """A burst whose header claims `n_claimed` symbols and whose payload stops after the OFDM
    symbols of `n_sent` (the TX cut it, or the header lies), and the payload it claimed."""
    p = cn(rng, n_claimed)
    return phy.reference_burst(p, seq)[:(6 + LAY.n_ofdm_symbols(n_sent)) * SYM], p


def frames_and_kinds(x, chunk=4096):
    rx, events = burst_rx.BurstReceiver(LAY), []
    for i in range(0, x.size, chunk):
        events += rx.push(x[i:i + chunk])
    return [v for k, v in events if k == "frame"], [k for k, _ in events if k != "frame"]


@pytest.mark.parametrize("n_claimed,n_sent,gap", [(480, 96, 320), (4095, 128, 320), (480, 96, 0), (144, 96, 0)])
def test_a_burst_shorter_than_its_header_is_cut_not_decoded_as_garbage(n_claimed, n_sent, gap):
    """The tail lost in noise (gap 320: the TX's padding) or the next burst right behind it
    (gap 0: samples lost): the frame is delivered with what the burst held, the rest erased and
    counted in `cut`; a header claiming 4095 symbols does not swallow the frames that follow."""
    rng = np.random.default_rng(11)
    cut, claimed = cut_burst(n_claimed, n_sent, 100, rng)
    good, _ = stream([cn(rng, 128) for _ in range(4)], gap=320)
    # (the receiver waits for the samples the header claims: the stream goes on after the frames)
    frames, _ = frames_and_kinds(awgn(np.concatenate([np.zeros(320, np.complex64), cut, np.zeros(gap, np.complex64),
                                                      good[320 - gap:], np.zeros(4000, np.complex64)]), 20.0, rng))
    assert [f.seq for f in frames] == [100, 0, 1, 2, 3]
    first, rest = frames[0].estimate, frames[1:]
    kept = LAY.n_ofdm_symbols(n_sent) * LAY.n_data
    assert first.cut == n_claimed - kept and first.erased >= first.cut
    assert (first.noise_var[kept:] == ERASED_NOISE_VAR).all() and (first.symbols[kept:] == 0).all()
    assert 10 * math.log10(np.mean(np.abs(first.symbols[:n_sent] - claimed[:n_sent]) ** 2)) < -17
    assert all(f.estimate.cut == 0 and f.estimate.erased == 0 for f in rest)


@pytest.mark.parametrize("snr_db", [0.0, 5.0, 20.0])
def test_whole_frames_are_never_cut_nor_clock_mismatched(snr_db):
    rng = np.random.default_rng(12)
    payloads = [cn(rng, n) for n in (128, 1000, 4095)] * 8
    x, _ = stream(payloads, gap=320)
    frames, _ = frames_and_kinds(awgn(np.concatenate([x, np.zeros(4000, np.complex64)]), snr_db, rng))
    assert len(frames) >= (0.8 if snr_db < 3 else 1.0) * len(payloads)  # 0 dB: the uncoded header loses some
    assert not any(f.estimate.cut or f.estimate.clock_mismatch for f in frames)


def test_a_sampling_clock_offset_is_measured_counted_and_turned_back():
    """A recording resampled by 1.001 (RX 1000 ppm fast): each frame's pilots drift by 0.08
    samples per OFDM symbol; measured as +1000 ppm, flagged, and compensated (a 1000-symbol
    frame: -19 dB error at 20 dB instead of +2 dB). The header copies are not compensated: their
    spread inflates sigma^2, so the noise variance errs on the safe side (about +5 dB here)."""
    from scipy.signal import resample_poly
    rng = np.random.default_rng(13)
    payloads = [cn(rng, n) for n in (128, 1000)] * 5
    x, _ = stream(payloads, gap=320)
    for up, down, ppm in ((1001, 1000, 1000.0), (999, 1000, -1000.0)):
        frames, _ = frames_and_kinds(awgn(resample_poly(x, up, down).astype(np.complex64), 20.0, rng))
        assert len(frames) == len(payloads)
        for f in frames:
            e = f.estimate
            assert e.clock_mismatch and abs(e.clock_ppm - ppm) < 4 * e.clock_ppm_sd + 20, (e.clock_ppm, e.clock_ppm_sd)
            err = np.abs(e.symbols - payloads[f.seq]) ** 2
            assert 10 * math.log10(err.mean()) < -17 and e.cut == 0
            assert -1.0 < 10 * math.log10(e.noise_var.mean() / err.mean()) < 7.0


@pytest.mark.parametrize("chunk", [4096, 65536])
def test_a_stream_oversampled_2x_is_reported_not_decoded(chunk):
    """Probed however the stream is pushed: 64k samples (the RX block's buffers) hold the 2x
    frames and the first 1x ones in one push."""
    from scipy.signal import resample_poly
    rng = np.random.default_rng(14)
    x, _ = stream([cn(rng, 128) for _ in range(20)], gap=320)
    y = awgn(resample_poly(x, 2, 1).astype(np.complex64), 15.0, rng)
    frames, kinds = frames_and_kinds(np.concatenate([y, awgn(x, 15.0, rng)]), chunk)
    assert kinds.count("wrong_rate") == 20
    assert [f.seq for f in frames] == list(range(20))  # the 1x frames after it


@pytest.mark.parametrize("silence", [0, burst_rx.RATE_PROBE_IDLE + 5000])
def test_the_rate_probe_stops_once_frames_flow(silence):
    """The 2x probe costs about half the receiver's idle work per sample: when frames come (from
    the start, or after a silence) it finishes what lies before the first of them and stops,
    though every push then brings a later frame."""
    rng = np.random.default_rng(15)
    x, _ = stream([cn(rng, 128) for _ in range(40)], gap=320)
    x = awgn(np.concatenate([np.zeros(silence, np.complex64), x]), 20.0, rng)
    rx, alive, frames = burst_rx.BurstReceiver(LAY), [], 0
    for i in range(0, x.size, 2800):
        frames += [k for k, _ in rx.push(x[i:i + 2800])].count("frame")
        alive.append(rx._probe is not None)
    assert frames == 40 and not any(alive[silence // 2800 + 3:]), alive
