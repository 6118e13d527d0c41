"""The baselines on the library channel: linear analog (SoftCast-style), digital
(separation) core, and the ideal separation bound. No GNU Radio here (see qa_digital_link.py)."""
import math

import numpy as np
import pytest
import torch

from diffsem import data
from diffsem.baselines import digital as dg
from diffsem.baselines import linear, separation
from diffsem.baselines import make_scheme
from diffsem.channel import transmit


@pytest.fixture(scope="module")
def test_images():
    images, labels = data.load("test")
    return images[:200], labels[:200]


def _psnr(rec, ref):
    rec, ref = np.asarray(rec, np.float64), np.asarray(ref, np.float64)
    mse = ((rec - ref) ** 2).reshape(len(ref), -1).mean(1)
    return 10 * np.log10(1 / np.maximum(mse, 1e-10))


def _run(scheme, images, snr_db, channel="awgn", seed=0):
    if isinstance(scheme, dg.DigitalScheme) and scheme.fixed_mode is None:
        scheme.link_snr_db = float(snr_db)     # link adaptation: both ends know the operating SNR
    g = torch.Generator().manual_seed(seed)
    s_hat, nv = transmit(scheme.encode(torch.from_numpy(images)), snr_db, channel, generator=g)
    return scheme.decode(s_hat, torch.full((len(images),), float(snr_db)), nv).numpy()


# ---------------------------------------------------------------- linear (SoftCast-style)

def test_shipped_basis_says_how_it_was_made():
    b = linear.load_basis()
    info = b["info"]
    assert info["n_images"] == 55000 and "train" in info["data"] and "made_by" in info
    comps = b["components"]
    np.testing.assert_allclose(comps[:64] @ comps[:64].T, np.eye(64), atol=1e-4)
    assert np.all(np.diff(b["eigenvalues"]) <= 0)  # strongest first


def test_fit_pca_recovers_known_axes():
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.normal(size=(50, 3)))[0].T             # 3 orthonormal axes in 50 dims
    x = rng.normal(size=(4000, 3)) * np.array([3.0, 2.0, 1.0]) @ axes + 0.5
    pca = linear.fit_pca(x, n_components=3)
    assert np.allclose(pca["eigenvalues"], [9, 4, 1], rtol=0.1)
    assert np.allclose(np.abs(pca["components"] @ axes.T), np.eye(3), atol=0.05)


@pytest.mark.parametrize("k", [32, 128])
def test_linear_power_constraint(k, test_images):
    scheme = linear.LinearScheme(k)
    s = scheme.encode(torch.from_numpy(test_images[0]))
    assert s.shape == (200, k, 2) and s.dtype == torch.float32
    # SoftCast's allocation is exact in expectation over the training distribution; held-out
    # images stay within a few percent of unit average power per complex symbol.
    assert abs(float(s.pow(2).sum((1, 2)).mean() / k) - 1.0) < 0.05
    gains, lam = scheme.gains, scheme.eigenvalues
    assert math.isclose(float((gains ** 2 * lam).sum()), k, rel_tol=1e-9)
    assert np.allclose(gains * lam ** 0.25, gains[0] * lam[0] ** 0.25)   # g_j ∝ lambda_j^(-1/4)


def test_linear_noiseless_is_projection(test_images):
    x = test_images[0][:20]
    scheme = linear.LinearScheme(128, decoder="zf")
    rec = scheme.decode(scheme.encode(x), np.full(20, 100.0), np.full((20, 128), 1e-10))
    coeffs = (x.reshape(20, -1) - scheme.mean) @ scheme.components.T
    proj = np.clip(coeffs @ scheme.components + scheme.mean, 0, 1).reshape(x.shape)
    np.testing.assert_allclose(rec, proj, atol=1e-5)
    assert _psnr(rec, x).mean() > 25


@pytest.mark.parametrize("snr_db,max_ratio", [(-5.0, 0.7), (0.0, 0.9)])
def test_lmmse_beats_naive_decoder_at_low_snr(snr_db, max_ratio, test_images):
    x = test_images[0]
    mse = {}
    for decoder in ("lmmse", "zf"):
        rec = _run(linear.LinearScheme(64, decoder=decoder), x, snr_db)
        mse[decoder] = float(((rec - x) ** 2).mean())
    assert mse["lmmse"] < max_ratio * mse["zf"], mse


def test_lmmse_uses_per_symbol_noise_after_fading(test_images):
    x = torch.from_numpy(test_images[0])
    g = torch.Generator().manual_seed(0)
    lmmse, zf = linear.LinearScheme(64), linear.LinearScheme(64, decoder="zf")
    s_hat, nv = transmit(lmmse.encode(x), 10.0, "selective", generator=g)
    snr = torch.full((len(x),), 10.0)
    mse = {"per_symbol": lmmse.decode(s_hat, snr, nv), "average_snr_only": lmmse.decode(s_hat, snr, None),
           "zf": zf.decode(s_hat, snr, nv)}
    mse = {key: float(((rec - x) ** 2).mean()) for key, rec in mse.items()}
    # ZF amplifies faded subcarriers; LMMSE with the equaliser's sigma^2/|h|^2 shrinks them.
    assert mse["per_symbol"] < 0.8 * mse["average_snr_only"] and mse["per_symbol"] < 0.7 * mse["zf"], mse


def test_linear_curve_is_graceful(test_images):
    x = test_images[0]
    snrs = [-5, 0, 5, 10, 15, 20, 25]
    psnr = [float(_psnr(_run(linear.LinearScheme(128), x, s), x).mean()) for s in snrs]
    steps = np.diff(psnr)
    assert np.all(steps > 0), psnr                  # better with every 5 dB ...
    assert np.all(steps < 4.0), psnr                # ... and no cliff anywhere
    assert psnr[0] > 12 and psnr[-1] > 25, psnr


def test_linear_decode_from_snr_only_and_bad_k(test_images):
    x = test_images[0][:8]
    scheme = make_scheme("linear", 32)
    rec = scheme.decode(scheme.encode(x), snr_db=np.full(8, 10.0))
    assert rec.shape == (8, 1, 28, 28) and np.isfinite(rec).all()
    with pytest.raises(ValueError):
        linear.LinearScheme(0)
    with pytest.raises(ValueError):
        linear.LinearScheme(1000)
    with pytest.raises(ValueError):
        scheme.decode(np.zeros((8, 31, 2)), snr_db=np.zeros(8))


# ---------------------------------------------------------------- digital core

def test_conv_code_impulse_response_is_the_polynomials():
    bits = np.zeros(10, np.uint8)
    bits[0] = 1
    out = dg.conv_encode(bits)
    assert len(out) == 2 * (10 + 6)
    for j, poly in enumerate(dg.CC_POLYS):
        assert list(out[j::2][:7]) == [(poly >> i) & 1 for i in range(7)]


@pytest.mark.parametrize("rate,error_every", [("1/2", 17), ("2/3", 25), ("3/4", 30), ("5/6", 40)])
def test_viterbi_corrects_errors_through_puncturing(rate, error_every):
    """Sparse hard errors on the punctured stream (punctured bits come back as erasures) are
    all corrected."""
    rng = np.random.default_rng(1)
    info = rng.integers(0, 2, (20, 200), dtype=np.uint8)
    clean = (1.0 - 2.0 * dg.conv_encode(info)) * 4.0
    rx = dg.puncture(clean, rate).copy()
    rx[:, ::error_every] *= -1
    assert np.array_equal(dg.viterbi_decode(dg.depuncture(rx, rate, clean.shape[1]), 200), info)


def test_puncturing_rates():
    for rate, r in (("1/2", 0.5), ("2/3", 2 / 3), ("3/4", 0.75), ("5/6", 5 / 6)):
        n_info = 600
        assert math.isclose(n_info / dg.punctured_length(2 * n_info, rate), r)


@pytest.mark.parametrize("bps", [1, 2, 4, 6])
def test_constellation_unit_power_gray_and_demapper(bps):
    pts = dg.constellation(bps)
    assert len(pts) == 2 ** bps and math.isclose(np.mean(np.abs(pts) ** 2), 1.0)
    dmin = np.min(np.abs(pts[:, None] - pts[None])[~np.eye(len(pts), dtype=bool)])
    for i in range(len(pts)):               # nearest neighbours differ in exactly one bit (Gray)
        for j in np.nonzero(np.isclose(np.abs(pts - pts[i]), dmin))[0]:
            assert bin(i ^ j).count("1") == 1
    idx = np.arange(len(pts))
    llr = dg.demap_llr(pts[None], np.full((1, len(pts)), 0.01), bps)[0].reshape(len(pts), bps)
    bits = (idx[:, None] >> np.arange(bps - 1, -1, -1)) & 1
    assert np.array_equal(llr < 0, bits.astype(bool))


@pytest.mark.parametrize("k", [32, 128, 500])
def test_bit_budget_fills_exactly_k_channel_uses(k):
    for mode in dg.MODES:
        b = dg.bit_budget(k, mode)
        used = dg.punctured_length(2 * (b.info_bits + dg.CC_TAIL), mode.rate)
        assert used + b.pad_coded_bits == k * mode.bits_per_symbol
        assert dg.punctured_length(2 * (b.info_bits + 8 + dg.CC_TAIL), mode.rate) > k * mode.bits_per_symbol
        assert b.data_bytes == max(0, b.payload_bytes - 1 - b.length_bytes - 2)


def test_codec_fit_respects_budget(test_images):
    x = test_images[0][:10]
    for budget in (6, 10, 20, 40, 80, 160):
        for img in x:
            fit = dg.fit_codec(img[0], budget)
            if fit.codec is None:   # then even the lowest quality of every codec is too big
                assert all(len(dg.encode_image(dg.to_u8(img[0]), c, 0)) > budget for c in dg.CODECS)
                assert np.all(fit.image == dg.GREY)
                continue
            assert len(fit.data) <= budget
            rec = dg.decode_image(fit.data, fit.codec, fit.quality_index)
            np.testing.assert_array_equal(rec, fit.image)      # the receiver sees what TX predicted


def test_codec_fit_improves_with_budget(test_images):
    x = test_images[0][:20]
    means = [np.mean([dg.fit_codec(img[0], b).psnr for img in x]) for b in (12, 25, 50, 100, 200)]
    assert np.all(np.diff(means) > 0), means


def test_jpeg_header_does_not_depend_on_pixels(test_images):
    a, b = (dg.to_u8(test_images[0][i, 0]) for i in (0, 1))
    for q in (1, 50, 95):
        assert dg.codec._jpeg_split(dg.codec._jpeg_bytes(a, q))[0] == dg.codec._jpeg_split(dg.codec._jpeg_bytes(b, q))[0]


def test_payload_roundtrip_and_crc(test_images):
    budget = dg.bit_budget(128, dg.mode_by_name("16qam-3/4"))
    fit = dg.fit_codec(test_images[0][0, 0], budget.data_bytes)
    payload = dg.build_payload(fit, budget)
    assert len(payload) == budget.payload_bytes
    rec = dg.parse_payload(payload, budget)
    assert rec.status == "ok" and np.array_equal(rec.image, fit.image)
    bad = bytearray(payload)
    bad[3] ^= 0x10
    rec = dg.parse_payload(bytes(bad), budget)
    assert rec.status == "crc_fail" and np.all(rec.image == dg.GREY)
    assert dg.parse_payload(payload[:-1], budget).status == "bad_payload"


def test_digital_scheme_high_snr_exact_low_snr_grey(test_images):
    x = test_images[0][:40]
    scheme = dg.DigitalScheme(128, mode="16qam-3/4")
    tx = scheme.encode(x)
    # QAM frames have unit power on average over the constellation, not frame by frame
    assert tx.shape == (40, 128, 2) and abs(float((tx ** 2).sum((1, 2)).mean() / 128) - 1) < 0.05
    fits = scheme.last_fits
    rec = scheme.decode(tx, np.full(40, 30.0), np.full((40, 128), 1e-3))
    assert scheme.last_stats["ok"] == 40
    for r, f in zip(rec, fits):
        np.testing.assert_array_equal(r[0], f.image)
    rec = _run(scheme, x, 5.0)        # far below the mode's threshold: every frame fails CRC
    assert scheme.last_stats["crc_fail"] == 40 and np.all(rec == dg.GREY)


def test_digital_scheme_link_adaptation_and_bad_symbols(test_images):
    x = test_images[0][:10]
    scheme = make_scheme("digital", 128)
    assert scheme.mode_for(30.0).name == "64qam-5/6"
    assert scheme.mode_for(-10.0) == dg.MODES[0]
    scheme.link_snr_db = 20.0
    tx = scheme.encode(x)
    bad = tx.copy()
    bad[0, 3, 0] = np.nan
    rec = scheme.decode(bad, np.full(10, 20.0), np.full((10, 128), 0.01))
    assert scheme.last_stats["bad_payload"] >= 1 and np.all(rec[0] == dg.GREY) and np.isfinite(rec).all()


def test_digital_cliff_on_library_channel(test_images):
    x = test_images[0][:30]
    scheme = dg.DigitalScheme(128)
    high = float(_psnr(_run(scheme, x, 25.0), x).mean())
    assert scheme.last_stats["ok"] == len(x)
    assert math.isclose(high, np.mean([f.psnr for f in scheme.last_fits]), abs_tol=1e-3)  # codec-limited
    fixed = dg.DigitalScheme(128, mode="64qam-5/6")       # the same mode 12 dB lower: all lost
    low = float(_psnr(_run(fixed, x, 10.0), x).mean())
    assert fixed.last_stats["crc_fail"] == len(x)
    assert high > 20 and low < 10           # above threshold: codec quality; below: grey


# ---------------------------------------------------------------- separation bound

def test_capacity_and_threshold_are_inverse():
    assert math.isclose(separation.capacity_bits(128, 0.0), 128.0)
    for n in (5, 30, 100):
        snr = separation.threshold_snr_db(128, n)
        assert math.isclose(separation.capacity_bits(128, snr), 8 * (n + 1), rel_tol=1e-9)


def test_separation_bound_monotone_in_snr(test_images):
    x = test_images[0][:20]
    means = []
    for snr in (-5, 0, 5, 10, 15, 20, 25, 30):
        rec, fits = separation.reconstruct(x, 128, float(snr))
        budget = separation.codec_budget_bytes(128, float(snr))
        assert all(f is None or f.codec is None or len(f.data) <= budget for f in fits)
        means.append(float(_psnr(rec, x).mean()))
    assert np.all(np.diff(means) >= 0), means
    assert means[0] < 10 < 25 < means[-1]


def test_digital_mode_without_room_for_a_frame_shows_grey(test_images):
    x = test_images[0][:4]
    scheme = dg.DigitalScheme(32, mode="bpsk-1/2")        # 1 payload byte: not even the CRC fits
    assert not dg.bit_budget(32, scheme.fixed_mode).carries_frame
    rec = scheme.decode(scheme.encode(x), np.full(4, 30.0), np.full((4, 32), 1e-3))
    assert scheme.last_stats["no_image"] == 4 and np.all(rec == dg.GREY)
    with pytest.raises(ValueError):
        dg.build_payload(scheme.last_fits[0], dg.bit_budget(32, scheme.fixed_mode))


def test_baselines_plug_into_evaluate_point(test_images):
    """The sweep's unit of work runs the baselines like any Scheme (digital: link adaptation
    from link_snr_db) and scores what the schemes themselves reconstruct."""
    from diffsem.experiments import evaluate

    x, y = test_images[0][:32], test_images[1][:32]
    linear_scheme, digital_scheme = make_scheme("linear", 128), make_scheme("digital", 128)
    digital_scheme.link_snr_db = 14.0
    for scheme in (linear_scheme, digital_scheme):
        row = evaluate.evaluate_point(scheme, x, y, "awgn", 14.0, seed=0)
        assert row["scheme"] == scheme.name and row["k"] == 128 and row["n"] == 32
        rec, _ = evaluate.transmit_and_decode(scheme, x, "awgn", 14.0, seed=0)
        assert abs(row["psnr"] - float(_psnr(rec, x).mean())) < 1e-3
    assert digital_scheme.last_stats["ok"] == 32      # 16-QAM 3/4, 2 dB above its threshold


@pytest.mark.parametrize("n_bits", [32, 512, 770])
def test_interleaver_is_a_permutation_that_spreads_neighbours(n_bits):
    perm = dg.interleaver(n_bits)
    assert np.array_equal(np.sort(perm), np.arange(n_bits))
    where = np.argsort(perm)                     # air position of each coded bit
    gaps = np.abs(np.diff(where))
    assert gaps.min() >= n_bits // dg.INTERLEAVER_COLUMNS - 1
    budget = dg.bit_budget(128, dg.mode_by_name("16qam-3/4"))
    mother = np.random.default_rng(0).integers(0, 2, 2 * (budget.info_bits + dg.CC_TAIL), dtype=np.uint8)
    air = dg.air_bits_from_mother(mother, budget)
    back = dg.mother_llr_from_air(1.0 - 2.0 * air, budget)      # noiseless LLRs, erasures where punctured
    kept = back != 0
    assert np.array_equal(back[kept] < 0, mother[kept].astype(bool))
    assert kept.sum() == dg.punctured_length(len(mother), "3/4")


# ---------------------------------------------------------------- digital: scrambler and power

def test_scrambler_is_80211s_and_follows_the_sequence_number():
    seq = dg.scrambler_sequence(2 * dg.SCRAMBLER_PERIOD)
    assert "".join(map(str, seq[:16])) == "0000111011110010"   # 802.11-2016 17.3.5.5, all-ones state
    assert np.array_equal(seq[:127], seq[127:]) and seq[:127].sum() == 64   # m-sequence, period 127
    assert np.array_equal(dg.frame_scrambler(300, 0), dg.scrambler_sequence(300))
    rows = dg.frame_scrambler(300, np.arange(130))
    assert rows.shape == (130, 300) and np.array_equal(rows[129], dg.frame_scrambler(300, 2))
    assert len({r.tobytes() for r in rows[:127]}) == 127          # a different state for each seq mod 127


@pytest.mark.parametrize("k", [128, 32])
def test_digital_average_power_is_one_per_channel_use(k, test_images):
    """Padding, tail and "no image" frames are scrambled like the rest: over the test images the
    average power per complex channel use is 1 in every mode (unscrambled: up to 1.43 at k=32)."""
    x = test_images[0][:120] if k == 128 else test_images[0]    # frame power std ~0.05 (k=128), ~0.1 (k=32)
    for mode in dg.MODES:
        if mode.bits_per_symbol <= 2:
            continue          # every BPSK/QPSK point has power 1 (test_constellation_unit_power_gray_and_demapper)
        sym = dg.DigitalScheme(k, mode=mode.name).encode(x).astype(np.float64)
        frame_power = (sym ** 2).sum(-1).mean(1)
        assert abs(frame_power.mean() - 1.0) < 0.02, (k, mode.name, frame_power.mean())
        assert frame_power.max() < 1.5, (k, mode.name, frame_power.max())


def test_evaluate_does_not_warn_about_digital_power(test_images, caplog):
    from diffsem.experiments import evaluate
    x = test_images[0][:64]
    with caplog.at_level("WARNING", logger="diffsem.experiments.evaluate"):
        for k, mode in ((32, "16qam-1/2"), (32, "64qam-2/3"), (128, "64qam-2/3")):
            evaluate.transmit_and_decode(dg.DigitalScheme(k, mode=mode), x, "awgn", 25.0, seed=0)
    assert "average power" not in caplog.text


def test_digital_frames_decode_only_with_their_sequence_number(test_images):
    x = test_images[0][:6]
    scheme = dg.DigitalScheme(128, mode="16qam-3/4")
    seq = np.array([5, 6, 7, 300, 301, 4095])
    sym = scheme.encode(x, seq=seq)
    nv = np.full((6, 128), 1e-4)
    scheme.decode(sym, np.full(6, 40.0), nv, seq=seq)
    assert scheme.last_stats["ok"] == 6
    scheme.decode(sym, np.full(6, 40.0), nv)                   # default seq 0..5: other scrambler states
    assert scheme.last_stats["ok"] == 0 and scheme.last_stats["crc_fail"] == 6


def test_idle_frame_of_a_mode_without_room_has_unit_power():
    for k, mode in ((32, "qpsk-1/2"), (8, "16qam-1/2"), (6, "64qam-3/4")):
        budget = dg.bit_budget(k, dg.mode_by_name(mode))
        assert not budget.carries_frame
        power = [np.mean(np.abs(dg.constellation(budget.mode.bits_per_symbol)[
            dg.bits_to_indices(dg.idle_frame_bits(budget, s), budget.mode.bits_per_symbol)]) ** 2) for s in range(127)]
        assert abs(np.mean(power) - 1.0) < 0.03, (k, mode, np.mean(power))


def test_power_warning_tells_a_few_images_from_a_wrong_codec():
    """Power is unit on average over images: six images 10 % high are a sample, not a fault,
    while a codec 6 % high over 10 000 images or 2x high over six is one."""
    from diffsem.experiments.evaluate import power_off
    rng = np.random.default_rng(0)
    few = rng.normal(1.0, 0.3, 6)
    few = few - few.mean() + 1.10                        # a mosaic's six images, 10 % above 1
    assert not power_off(few)
    assert power_off(2.0 * few)                          # an encoder twice too strong
    many = rng.normal(1.06, 0.3, 10000)
    assert power_off(many) and not power_off(many - 0.06)
    assert not power_off(np.array([1.3])) and power_off(np.array([2.5]))
