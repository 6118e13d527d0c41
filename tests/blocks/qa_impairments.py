"""Hardware impairments: the numpy maths (diffsem.phy.impairments), each impairment of channel_sim on
and off (off = the channel exactly as before), and the TX clip level."""
from __future__ import annotations

import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, channels, gr

from diffsem import phy
from diffsem.phy import impairments
from gnuradio import diffsem as grblocks
from support import run_block

channel_sim = grblocks.channel_sim
ofdm_analog_tx = grblocks.ofdm_analog_tx


# --- maths -------------------------------------------------------------------------------------

def test_quantize_levels_saturation_and_error():
    step = 2.0 / 2 ** 3  # 3 bits, full scale 1: 8 levels per rail at +-1/8, +-3/8, ...
    x = np.array([0.01 + 0.01j, -0.01 - 0.3j, 0.99 - 0.99j, 5.0 - 5.0j, 0.13 + 0.6j])
    y = impairments.quantize(x, 3, 1.0)
    assert y.dtype == np.complex64
    assert np.allclose(y, [0.125 + 0.125j, -0.125 - 0.375j, 0.875 - 0.875j, 0.875 - 0.875j, 0.125 + 0.625j])
    # inside the rails the error is at most half a step per rail and has the uniform power step^2/12
    rng = np.random.default_rng(0)
    z = (rng.uniform(-1, 1, 200000) + 1j * rng.uniform(-1, 1, 200000)) * 0.99
    err = impairments.quantize(z, 8, 1.0) - z
    assert np.max(np.abs(err.real)) <= 1.0 / 2 ** 8 + 1e-6
    assert np.mean(np.abs(err) ** 2) == pytest.approx(impairments.quantization_noise_power(8, 1.0), rel=0.02)
    assert abs(np.mean(err)) < 1e-4 * step  # mid-rise: no DC
    assert np.isnan(impairments.quantize(np.array([np.nan + 0j]), 8, 1.0)[0].real)
    for bad in ((0, 1.0), (8, 0.0), (8, float("nan"))):
        with pytest.raises(ValueError):
            impairments.quantize(x, *bad)


def test_clip_keeps_phase_and_limits_amplitude():
    x = np.array([3 + 4j, 0.3 - 0.4j, -2j, 0j])
    y = impairments.clip(x, 1.0)
    assert np.allclose(np.abs(y), [1.0, 0.5, 1.0, 0.0])
    assert np.allclose(np.angle(y[:3]), np.angle(x[:3]))
    assert np.array_equal(impairments.clip(x, 0.0), x.astype(np.complex64))  # 0 = off
    assert impairments.db_to_amplitude(6.0) == pytest.approx(1.9953, rel=1e-4)


def test_papr_and_ccdf():
    # a constant-envelope symbol has 0 dB PAPR; one impulse in N samples has 10 log10(N)
    flat = np.exp(2j * np.pi * np.arange(64) * 3 / 64)
    impulse = np.zeros(64, complex)
    impulse[5] = 1
    assert np.allclose(impairments.papr_db(np.stack([flat, impulse])), [0.0, 10 * np.log10(64)])
    # oversampling finds the peak between the samples of a two-tone symbol (Nyquist samples miss it)
    two_tone = np.exp(2j * np.pi * np.arange(64) * 0.5 / 64) + np.exp(2j * np.pi * np.arange(64) * 1.5 / 64)
    assert impairments.papr_db(np.fft.ifft(np.fft.fft(two_tone)), 8)[0] >= impairments.papr_db(two_tone)[0] - 1e-9
    body = impairments.ofdm_symbols(np.arange(160), 64, 16)
    assert body.shape == (2, 64) and body[1, 0] == 96
    assert np.allclose(impairments.ccdf([1, 2, 3, 4, np.nan], [0, 2, 4]), [1.0, 0.5, 0.0])
    # Gaussian-like OFDM: P(PAPR > 10 dB) at 64 carriers is ~1e-2..1e-3 for 52 random QPSK carriers
    rng = np.random.default_rng(1)
    spec = np.zeros((4000, 64), complex)
    spec[:, 1:27] = (rng.choice([-1, 1], (4000, 26)) + 1j * rng.choice([-1, 1], (4000, 26)))
    spec[:, 38:64] = (rng.choice([-1, 1], (4000, 26)) + 1j * rng.choice([-1, 1], (4000, 26)))
    p = impairments.ccdf(impairments.papr_db(np.fft.ifft(spec, axis=1), 4), [6.0, 12.0])
    assert p[0] > 0.2 and p[1] < 5e-3


# --- channel_sim impairments --------------------------------------------------------------------

def _signal(n=20000, seed=3):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


def test_impairments_off_is_bit_identical_to_the_plain_channel():
    x = _signal()
    plain = channel_sim(snr_db=15.0, seed=4)
    assert plain.stages == [plain.model]  # no extra stage connected when everything is off
    ref = run_block(plain, x)
    off = run_block(channel_sim(snr_db=15.0, seed=4, adc_bits=0, dc_offset=0j, iq_imbalance_db=0.0,
                           iq_imbalance_deg=0.0, phase_noise=0.0), x)
    assert np.array_equal(ref, off)


def test_adc_quantises_after_the_noise():
    x = _signal()
    clean = run_block(channel_sim(snr_db=20.0, seed=5), x)
    y = run_block(channel_sim(snr_db=20.0, seed=5, adc_bits=8, adc_full_scale=3.0), x)
    assert np.array_equal(y, impairments.quantize(clean, 8, 3.0))
    assert np.unique(y.real).size <= 256
    sat = run_block(channel_sim(snr_db=200.0, adc_bits=4, adc_full_scale=0.5), x)
    assert np.max(np.abs(sat.real)) == pytest.approx(0.5 - 0.5 / 16)  # top level: FS - step/2, step = FS / 8


def test_dc_offset_iq_imbalance_and_phase_noise_each_act():
    x = _signal()
    clean = run_block(channel_sim(snr_db=200.0), x)
    dc = run_block(channel_sim(snr_db=200.0, dc_offset=0.1 - 0.05j), x)
    assert np.allclose(dc - clean, 0.1 - 0.05j, atol=1e-6)
    # receiver IQ imbalance: the same as gr-channels' iqbal_gen on the clean output
    iq = run_block(channel_sim(snr_db=200.0, iq_imbalance_db=1.0, iq_imbalance_deg=5.0), x)
    assert np.allclose(iq, run_block(channels.iqbal_gen(1.0, 5.0, 1), clean), atol=1e-6)
    assert np.mean(np.abs(iq.real) ** 2) / np.mean(np.abs(iq.imag) ** 2) == pytest.approx(10 ** 0.1, rel=0.05)
    # phase noise: unit-modulus rotation, phase std = drive * sqrt(a / (2 - a))
    pn = run_block(channel_sim(snr_db=200.0, phase_noise=0.1, phase_noise_alpha=0.1), x)
    assert np.allclose(np.abs(pn), np.abs(clean), rtol=1e-4)
    phase = np.angle(pn * np.conj(clean))
    assert np.std(phase[100:]) == pytest.approx(0.1 * np.sqrt(0.1 / 1.9), rel=0.15)
    with pytest.raises(ValueError):
        channel_sim(adc_bits=30)
    with pytest.raises(ValueError):
        channel_sim(phase_noise=0.1, phase_noise_alpha=0.0)


# --- TX clipping --------------------------------------------------------------------------------

def _tx_burst(clip_db):
    rng = np.random.default_rng(0)
    sym = ((rng.standard_normal(480) + 1j * rng.standard_normal(480)) / np.sqrt(2)).astype(np.complex64)
    tb = gr.top_block()
    tx = ofdm_analog_tx(clip_db=clip_db)
    sink = blocks.vector_sink_c()
    tb.connect(tx, sink)
    tx.framer.to_basic_block()._post(pmt.intern("in"), pmt.cons(pmt.make_dict(), pmt.init_c32vector(480, sym.tolist())))
    tb.start()
    deadline = time.monotonic() + 10
    while len(sink.data()) < tx.burst_length(480) and time.monotonic() < deadline:
        time.sleep(0.01)
    tb.stop()
    tb.wait()
    return np.array(sink.data())


def test_tx_clip_level_relative_to_rms():
    linear = _tx_burst(None)
    clipped = _tx_burst(3.0)
    assert linear.size == clipped.size > 0
    level = 10 ** (3.0 / 20)
    assert np.max(np.abs(linear)) > level  # OFDM peaks go above 3 dB over the unit RMS ...
    assert np.max(np.abs(clipped)) <= level * (1 + 1e-5)  # ... and the PA model stops them there
    assert np.array_equal(clipped, impairments.clip(linear, level))
    with pytest.raises(ValueError):
        ofdm_analog_tx(clip_db=float("inf"))
