"""Core PHY maths (python/diffsem/phy.py), no GNU Radio: header format, PDU checks, SNR scaling,
fractional delay, and the per-frame estimator on synthetic frames built with the RX's conventions."""
import math

import numpy as np
import pytest

from diffsem import phy
from diffsem.phy.ofdm import DEFAULT_LAYOUT

N = DEFAULT_LAYOUT.fft_len


def test_header_bits_match_stock_generator_vectors():
    # captured from gr-digital packet_headergenerator_bb(packet_header_ofdm(..., 1, 8)) for
    # lengths 5, 128, 4095, 1000 with header numbers 0..3 (qa_ofdm_analog checks it live too)
    expected = {
        (5, 0): "101000000000000000000000111110010000000000000000",
        (128, 1): "000000010000100000000000101011110000000000000000",
        (4095, 2): "111111111111010000000000101101100000000000000000",
        (1000, 3): "000101111100110000000000111000010000000000000000",
    }
    for (length, seq), bits in expected.items():
        assert "".join(map(str, phy.header_bits(length, seq, 48))) == bits


def test_header_rejects_bad_lengths_and_wraps_seq():
    with pytest.raises(ValueError):
        phy.header_bits(0, 0, 48)
    with pytest.raises(ValueError):
        phy.header_bits(4096, 0, 48)
    assert np.array_equal(phy.header_bits(10, 4096 + 7, 48), phy.header_bits(10, 7, 48))
    sym = phy.header_symbols(10, 3)
    assert sym.dtype == np.complex64 and set(np.unique(sym.real)) == {-1.0, 1.0}


@pytest.mark.parametrize("vector, reason", [
    (np.zeros(0, np.complex64), "empty"),
    (np.zeros(4096, np.complex64), "too_long"),
    (np.zeros(10, np.float32), "wrong_type"),
    ([1 + 1j, 2], "wrong_type"),
    (np.array([1, np.nan, 2], np.complex64), "nonfinite"),
    (np.array([1, np.inf], np.complex64), "nonfinite"),
])
def test_check_payload_refuses(vector, reason):
    problem = phy.check_payload(vector)
    assert problem is not None and problem[0] == reason and problem[1]


def test_check_payload_accepts_limits():
    assert phy.check_payload(np.ones(1, np.complex64)) is None
    assert phy.check_payload(np.ones(4095, np.complex64)) is None


def test_noise_voltage_gives_per_symbol_snr():
    """Numpy model of the TX/RX scaling (GNU Radio's FFTs are unnormalised): the error of a
    subcarrier value after FFT and division by N*g has variance 10^(-snr/10)."""
    rng = np.random.default_rng(1)
    data, pilots, _ = phy.carriers_by_role()
    active = np.array(data + pilots)
    g = phy.tx_scale()
    for snr_db in (0.0, 12.0, 25.0):
        x = np.zeros((400, N), complex)
        x[:, active % N] = (rng.standard_normal((400, active.size)) + 1j * rng.standard_normal((400, active.size))) / math.sqrt(2)
        time_domain = N * np.fft.ifft(x, axis=1) * g
        assert np.mean(np.abs(time_domain) ** 2) == pytest.approx(1.0, rel=0.03)
        v = phy.noise_voltage_for_snr(snr_db)
        noise = v * (rng.standard_normal(time_domain.shape) + 1j * rng.standard_normal(time_domain.shape)) / math.sqrt(2)
        y = np.fft.fft(time_domain + noise, axis=1) / (N * g)
        err = y[:, active % N] - x[:, active % N]
        assert 10 * np.log10(np.mean(np.abs(err) ** 2)) == pytest.approx(-snr_db, abs=0.15)


def test_fractional_delay_is_flat_and_delays():
    for delay in (0.0, 0.5, 2.25):
        taps = phy.fractional_delay_taps(delay)
        data, pilots, _ = phy.carriers_by_role()
        gain_db = 20 * np.log10(np.abs(np.fft.fft(taps, N)[np.array(data + pilots) % N]))
        assert gain_db.max() < 0.3 and gain_db.min() > -0.3  # flat over the occupied carriers
        spectrum = np.fft.fft(taps, 512)
        # group delay at low frequency = bulk (half_len - 1 = 5) + delay
        phase = np.unwrap(np.angle(spectrum[:20]))
        assert -np.polyfit(np.arange(20) * 2 * np.pi / 512, phase, 1)[0] == pytest.approx(5 + delay, abs=0.02)
    with pytest.raises(ValueError):
        phy.fractional_delay_taps(-1.0)


def _frame(est, rng, snr_db, n_symbols, delay=7.0, taps=None, cpe_slope=0.0):
    """Synthetic RX view of one frame: returns (cells, ls_taps, sent, true_gain)."""
    lay = est.layout
    n_ofdm = lay.n_ofdm_symbols(n_symbols)
    g = N * phy.tx_scale(lay)
    k_all = np.arange(-N // 2, N // 2)
    if taps is None:
        taps = np.array([1.0])
    h_time = np.exp(-2j * np.pi * np.outer(k_all, delay + np.arange(len(taps))) / N) @ taps
    H = g * h_time                                   # fft-shifted, per carrier
    sigma2 = g ** 2 * 10 ** (-snr_db / 10)           # FFT-domain noise variance

    def cn(shape, var):
        return np.sqrt(var / 2) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))

    ls = np.zeros(N, complex)
    act = est.active + N // 2
    ls[act] = H[act] + cn(act.size, sigma2)         # LS from a +-1 preamble: error var sigma^2
    sent = (cn(n_symbols, 1.0)).astype(np.complex64)
    grid = np.zeros((n_ofdm, len(est.data)), complex)
    grid.flat[:n_symbols] = sent
    t = est.t0 + np.arange(n_ofdm)
    rot = np.exp(1j * cpe_slope * t)[:, None]
    d_idx = np.array(est.data) + N // 2
    p_idx = np.array(est.pilots) + N // 2
    g_idx = np.array(est.guards) + N // 2
    y_d = grid * H[d_idx] * rot + cn(grid.shape, sigma2)
    y_p = est.pilot_values * H[p_idx] * rot + cn((n_ofdm, p_idx.size), sigma2)
    y_g = cn((n_ofdm, g_idx.size), sigma2)
    cells = np.concatenate((y_d, y_p, y_g), axis=1).astype(np.complex64)
    return cells, ls.astype(np.complex64), sent, np.abs(h_time[d_idx]) ** 2


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_estimator_awgn_mse_and_snr(snr_db):
    est = phy.FrameEstimator()
    rng = np.random.default_rng(int(snr_db) + 3)
    mse, nv, snr = [], [], []
    for _ in range(60):
        cells, ls, sent, _ = _frame(est, rng, snr_db, 128, delay=7.3, cpe_slope=0.02)
        r = est.estimate(cells, ls, 128)
        mse.append(np.mean(np.abs(r.symbols - sent) ** 2))
        nv.append(np.mean(r.noise_var))
        snr.append(r.snr_db)
        assert r.symbols.dtype == np.complex64 and r.noise_var.dtype == np.float32 and r.noise_var.size == 128
    assert 10 * np.log10(np.mean(mse)) == pytest.approx(-snr_db, abs=0.5)       # no distortion of its own
    assert np.mean(nv) == pytest.approx(np.mean(mse), rel=0.1)                 # honest noise variance
    assert np.mean(snr) == pytest.approx(snr_db, abs=0.5)


def test_estimator_tracks_residual_cfo_phase():
    est = phy.FrameEstimator()
    rng = np.random.default_rng(5)
    cells, ls, sent, _ = _frame(est, rng, 30.0, 480, cpe_slope=0.15)
    r = est.estimate(cells, ls, 480)
    assert r.cpe_slope == pytest.approx(0.15, abs=0.01)
    assert 10 * np.log10(np.mean(np.abs(r.symbols - sent) ** 2)) < -29.0
    off = phy.FrameEstimator(phase_tracking="off").estimate(cells, ls, 480)
    assert np.mean(np.abs(off.symbols - sent) ** 2) > 10 * np.mean(np.abs(r.symbols - sent) ** 2)


def test_estimator_noise_var_tracks_selective_fading():
    """Weak subcarriers get large variances: per-symbol noise_var against squared error."""
    est = phy.FrameEstimator()
    rng = np.random.default_rng(9)
    pdp = np.exp(-0.5 * np.arange(8))
    pdp /= pdp.sum()
    nv, err = [], []
    for _ in range(40):
        taps = np.sqrt(pdp / 2) * (rng.standard_normal(8) + 1j * rng.standard_normal(8))
        cells, ls, sent, _ = _frame(est, rng, 15.0, 480, delay=3.0, taps=taps)
        r = est.estimate(cells, ls, 480)
        nv.append(r.noise_var)
        err.append(np.abs(r.symbols - sent) ** 2)
    nv, err = np.concatenate(nv), np.concatenate(err)
    order = np.argsort(nv)
    bins_nv = np.array([b.mean() for b in np.array_split(nv[order], 10)])
    bins_err = np.array([b.mean() for b in np.array_split(err[order], 10)])
    assert np.corrcoef(np.log(bins_nv), np.log(bins_err))[0, 1] > 0.95
    # deep fades make ZF errors heavy-tailed: the mean is right to ~1 dB (measured 0.31 vs 0.25)
    assert np.mean(err) == pytest.approx(np.mean(nv), rel=0.35)


def test_sync_words_shape():
    w1, w2 = phy.sync_words()
    assert w1.shape == w2.shape == (N,)
    assert np.all(w1[N // 2::2] == 0)           # even carriers empty: two equal halves in time
    assert np.count_nonzero(w2) == phy.n_active()


def test_header_copies_are_scrambled_to_a_data_like_papr():
    """The stock header's bits are mostly equal: unscrambled, its BPSK symbol is nearly constant
    over the carriers (a time-domain impulse an ADC or PA clips). The copies are scrambled and
    the receiver's bit map inverts the cyclic shifts."""
    lay = phy.DEFAULT_LAYOUT

    def papr_db(values):
        x = np.zeros(lay.fft_len, complex)
        x[np.asarray(lay.data_carriers) % lay.fft_len] = values
        x[np.asarray(lay.pilot_carriers) % lay.fft_len] = lay.pilot_symbols
        t = np.fft.ifft(x)
        return 10 * np.log10(np.max(np.abs(t) ** 2) / np.mean(np.abs(t) ** 2))

    assert papr_db(phy.header_symbols(128, 5)) > 12.0
    for n, seq in ((1, 0), (128, 5), (4095, 4095)):
        copies = phy.header_copies(n, seq, 4).reshape(4, -1)
        assert max(papr_db(c) for c in copies) < 9.0
        pn = phy.header_scrambler(4)
        bits = phy.header_symbols(n, seq)
        gather = phy.header_bit_of_carrier(4)
        assert np.allclose(copies * pn, bits[gather])
    unshift = phy.header_unshift_index(4)
    assert all((gather[c][unshift[c]] == np.arange(lay.n_data)).all() for c in range(4))


def test_burst_builder_many_at_once_equals_one_by_one():
    """The TX's batched builder: bursts back to back, each its zero padding around the burst
    reference_burst gives for it alone (the headers of all frames built together too)."""
    rng = np.random.default_rng(7)
    lengths = (1, 48, 49, 128, 4095)
    payloads = [((rng.standard_normal(k) + 1j * rng.standard_normal(k)) / math.sqrt(2)).astype(np.complex64)
                for k in lengths]
    seqs = [0, 4095, 17, 4096 + 3, 1234]
    builder = phy.BurstBuilder(DEFAULT_LAYOUT, 4, 320, 160)
    out, sizes = builder.build(payloads, seqs)
    assert sizes.tolist() == [builder.length(k) for k in lengths] and out.size == sizes.sum()
    pos = 0
    for p, seq, size in zip(payloads, seqs, sizes.tolist()):
        burst = out[pos:pos + size]
        assert not burst[:320].any() and not burst[-160:].any()
        assert np.array_equal(burst[320:-160], phy.reference_burst(p, seq))
        pos += size
    rows = phy.header_copies_rows(list(lengths), seqs, 4)
    for k, seq, row in zip(lengths, seqs, rows):
        assert np.array_equal(row.reshape(-1), phy.header_copies(k, seq % phy.SEQ_MODULO, 4))
        assert np.array_equal(phy.header_bits_rows([k], [seq], 48)[0], phy.header_bits(k, seq, 48))


def test_header_phase_search_finds_the_slope_the_pilots_missed():
    from diffsem.phy.framing import header_phase_search
    rng = np.random.default_rng(0)
    frames, copies, n_data = 20, 4, 48
    bits = rng.integers(0, 2, size=(frames, n_data)) * 2.0 - 1.0
    t = 1.0 + np.arange(copies)
    true = rng.uniform(-0.3, 0.3, frames)
    # each copy's cells at -3 dB per cell, turned by the residual common phase true * t
    noise = (rng.standard_normal((frames, copies, n_data)) + 1j * rng.standard_normal((frames, copies, n_data)))
    z = bits[:, None, :] * np.exp(1j * true[:, None, None] * t[None, :, None]) + noise * np.sqrt(10 ** 0.3 / 2)
    pilots_slope = true + rng.choice([-0.45, 0.45], frames)  # the pilots' estimate, far off
    slope, num = header_phase_search(z, t, pilots_slope)
    assert np.max(np.abs(slope - true)) < 0.1  # from 0.45 off; the estimate's own spread is ~0.03 here
    assert np.mean(np.sign(num.real) == bits) > 0.97
    off = np.einsum("fc,fcb->fb", np.exp(-1j * pilots_slope[:, None] * t[None, :]), z)
    assert np.mean(np.sign(off.real) == bits) < 0.85  # what combining on the pilots' slope gives
