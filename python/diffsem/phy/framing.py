"""Analog OFDM PHY maths, plain numpy (no GNU Radio): what the GNU Radio blocks in
gr-diffsem/gnuradio/diffsem/ofdm_analog_{tx,rx}.py and channel_sim.py delegate to.

Units. The TX scales its output by 1/sqrt(n_active) (n_active = data + pilot carriers), so a
fully loaded OFDM symbol of unit-power subcarrier values has unit average power per sample.
GNU Radio's FFTs are unnormalised, so on the RX side a subcarrier carries N*g*X_k
(N = fft_len, g = TX scale) plus noise of variance N*sigma_t^2 (sigma_t^2 = time-domain noise
variance per sample). Es/N0 per payload symbol is therefore N*g^2/sigma_t^2 = N/(n_active*sigma_t^2),
which is what `noise_voltage_for_snr` inverts. After equalisation, symbol i is in TX units
(unit average power) with error variance noise_var_i = sigma^2/|H_i|^2 * (1 + estimation terms),
the convention of diffsem.channel.

Receiver estimates (`FrameEstimator`), per frame, without any hard decision on the payload:
* channel: the least-squares estimate from the second Schmidl & Cox preamble (averaged with the
  decoded header copies by diffsem.phy.burst_rx) is denoised by projecting it onto a short impulse response whose significant
  taps are selected against the noise floor (DFT-based estimation with tap selection). On AWGN
  this cuts the estimation noise from sigma^2 (one training symbol) to ~2/52 of it, so the
  equalised error stays within a fraction of a dB of the channel's noise.
* common phase: residual CFO rotates every subcarrier by the same angle that grows linearly from
  the preamble (where the channel estimate fixed the phase); the slope is fitted on all pilots of
  the frame ("linear"), or each OFDM symbol gets its own pilot estimate ("per_symbol").
* noise: sigma^2 pooled from three places that carry noise only: the guard (null) subcarriers of
  every payload OFDM symbol, the pilot residuals after phase correction, and the preamble's
  residual around the fitted channel. Each symbol's noise variance adds the known variance of
  the channel-estimate and phase-estimate errors, so it is the variance of the equalised error.
"""
from __future__ import annotations

import cmath
import functools
import math
from dataclasses import dataclass

import numpy as np

from diffsem.phy.ofdm import ERASED_NOISE_VAR, DEFAULT_LAYOUT, MAX_SYMBOLS_PER_FRAME, OfdmLayout

HEADER_BITS_LEN = 12   # stock packet_header_default: 12-bit length, 12-bit number, CRC-8
HEADER_BITS_SEQ = 12
SEQ_MODULO = 1 << HEADER_BITS_SEQ
SYNC_SEED = 42         # the seed gr-digital's ofdm_txrx uses for its preambles
PHASE_TRACKING = ("linear", "per_symbol", "off")
LEN_TAG = "packet_len"  # tagged-stream length key inside the TX (symbols per burst)


# ----------------------------------------------------------------------------- layout helpers
# the receiver's "could not trust" thresholds (FrameEstimator.estimate): a carrier whose training
# spread (4 dof at 4 header copies: P(Gamma(4)/4 > 4) ~ 4e-4 on a clean carrier) exceeds
# CARRIER_FLAG times the clean mean is interfered; an OFDM symbol whose guard energy (11 carriers:
# P(Gamma(11)/11 > 4) ~ 1e-8) exceeds SYMBOL_FLAG times sigma^2 was hit by an impulse; one whose
# guards and pilots hold less than DEAD_SYMBOL of their expected energy received nothing; a tail
# of DEAD_TAIL_CELLS+ cells of the last live symbol below DEAD_TAIL * sigma^2 was cut. (A per-cell
# rule, |y|^2 < 1e-3 sigma^2, erased ~1e-4 of the cells of clean frames at 10 dB: not used.)
CARRIER_FLAG = 4.0
# An interferer covers adjacent carriers: a carrier within CARRIER_REACH places (in frequency, so a
# pilot or the DC gap between two hit data carriers does not break the run) of a flagged one is
# flagged too when its spread exceeds CARRIER_GROW times the clean mean. One CARRIER_FLAG alone
# misses a hit carrier whose 4-dof spread came out low: 6 % of them at 0 dB SIR and 10 dB SNR
# (P(Gamma(4)/4 * 11 < 4)), each then handed over with a tenth of its noise.
CARRIER_GROW, CARRIER_REACH = 2.0, 2
# ...and only above CARRIER_FLOOR times the mean channel gain (40 dB below the signal): on a
# noiseless recording the clean spread is rounding error and 9 % of frames flagged a carrier by
# its 4-dof chance; interference that far down costs no decoder anything.
CARRIER_FLOOR = 1e-4
# A flagged carrier's noise is its run's pooled spread (FrameEstimator._interferer_noise) unless its
# own exceeds RUN_OUTLIER times that (P(Gamma(4)/4 > 2) ~ 4 % under an even interferer).
RUN_OUTLIER = 2.0
# An interferer far above the signal on a few carriers makes their header copies worthless and
# their LS estimates pull the preamble's channel fit. A carrier is interfered at the preamble when
# its residual around the fit exceeds PREAMBLE_FLAG times the median residual (noise alone:
# P(Exp > 30 ln 2) ~ 1e-9 a carrier) and PREAMBLE_FLAG_GAIN times the mean fitted gain (not the
# edge carriers of an imperfect fit at high SNR, not an interferer below the signal, which the
# payload's training spread finds): preamble_interference.
PREAMBLE_FLAG, PREAMBLE_FLAG_GAIN = 30.0, 2.0
SYMBOL_FLAG = 4.0
DEAD_SYMBOL = 0.05
DEAD_TAIL, DEAD_TAIL_CELLS = 0.3, 6
# Where the burst ends (FrameEstimator._burst_end): a CUSUM over the payload's OFDM symbols of the
# log-likelihood ratio "no pilots of this frame here" (pilot magnitude |sum_p y_p conj(H_p p_p)| /
# sum_p |H_p|^2: Rayleigh on noise) against "its pilots, at LIVE_PILOT_FLOOR or more of the
# preamble's amplitude" (Rice; the floor leaves room for a channel that drifts within the frame);
# the burst ends where the CUSUM that passes BURST_END_LLR left zero. A dead symbol adds about
# 0.5 sum|H_p|^2 / sigma^2 (2 at 0 dB, 20 at 10 dB, 200 at 20 dB): two OFDM symbols at 10 dB,
# about ten at 0 dB. A sampling-clock drift measured on the pilots is removed (from the pilot
# products here, from the payload in FrameEstimator.estimate) when it stands out of its noise by
# CLOCK_SIGNIFICANT standard deviations; a frame whose clock offset exceeds CLOCK_TOLERANCE_PPM
# by CLOCK_CONFIDENCE standard deviations is a clock mismatch (crystals of the supported radios
# are within +-20 ppm each; a recording replayed at another rate, 1.001 x, is 1000 ppm).
LIVE_PILOT_FLOOR = 0.7
BURST_END_LLR = 20.0
CLOCK_SIGNIFICANT = 5.0
CLOCK_TOLERANCE_PPM = 200.0
CLOCK_CONFIDENCE = 3.0
MAX_DRIFT_PHASE_VAR = 0.035  # rad^2 per OFDM symbol (pilots at 5 dB on a flat channel): noisier, the drift is not measured


def carriers_by_role(layout: OfdmLayout = DEFAULT_LAYOUT):
    """(data, pilots, guards): signed subcarrier indices. Guards are the unused carriers except DC,
    in ascending order; they carry noise only and serve the noise estimate."""
    used = set(layout.data_carriers) | set(layout.pilot_carriers) | {0}
    half = layout.fft_len // 2
    guards = tuple(k for k in range(-half, half) if k not in used)
    return tuple(layout.data_carriers), tuple(layout.pilot_carriers), guards


def n_active(layout: OfdmLayout = DEFAULT_LAYOUT) -> int:
    return len(layout.data_carriers) + len(layout.pilot_carriers)


def tx_scale(layout: OfdmLayout = DEFAULT_LAYOUT) -> float:
    """Time-domain gain that gives unit average power per sample for unit-power subcarriers."""
    return 1.0 / math.sqrt(n_active(layout))


def noise_voltage_for_snr(snr_db: float, layout: OfdmLayout = DEFAULT_LAYOUT) -> float:
    """Time-domain complex noise std (gr-channels' noise_voltage, variance = voltage^2) giving
    Es/N0 = snr_db per payload symbol for the TX's power scaling (see module docstring)."""
    sigma_t2 = layout.fft_len / (n_active(layout) * 10.0 ** (snr_db / 10.0))
    return math.sqrt(sigma_t2)


def sync_words(layout: OfdmLayout = DEFAULT_LAYOUT):
    """Schmidl & Cox preambles (frequency domain, fft-shifted), identical to gr-digital ofdm_txrx
    defaults: word 1 = +-sqrt(2) BPSK on odd active carriers (two equal halves in time), word 2 =
    +-1 BPSK on all active carriers (channel estimate)."""
    n = layout.fft_len
    active = {(k + n) % n for k in tuple(layout.data_carriers) + tuple(layout.pilot_carriers)}
    rng = np.random.RandomState(SYNC_SEED)
    w1 = [(math.sqrt(2) if rng.randint(2) == 0 else -math.sqrt(2)) if (x in active and x % 2) else 0
          for x in range(n)]
    rng = np.random.RandomState(SYNC_SEED)
    w2 = [(1.0 if rng.randint(2) == 0 else -1.0) if x in active else 0 for x in range(n)]
    w2[0] = 0.0
    return (np.fft.fftshift(np.asarray(w1, dtype=np.complex64)),
            np.fft.fftshift(np.asarray(w2, dtype=np.complex64)))


# ----------------------------------------------------------------------------- header
def crc8(data: bytes, poly: int = 0x07, init: int = 0xFF) -> int:
    """CRC-8 as gr-digital's packet_header_default computes it (poly 0x07, init 0xFF, no reflection)."""
    crc = init
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@functools.lru_cache(maxsize=4)
def _crc8_table(poly: int) -> np.ndarray:
    return np.array([crc8(bytes((b,)), poly, 0) for b in range(256)], dtype=np.int64)


def crc8_rows(data, poly: int = 0x07, init: int = 0xFF) -> np.ndarray:
    """crc8 of each row of `data` (byte values, [F, n_bytes]), table-driven over all rows at once."""
    data = np.asarray(data, dtype=np.int64)
    table = _crc8_table(poly)
    crc = np.full(data.shape[0], init, np.int64)
    for j in range(data.shape[1]):
        crc = table[crc ^ data[:, j]]
    return crc


def header_bits(n_symbols: int, seq: int, header_len_bits: int) -> np.ndarray:
    """Bits of the stock OFDM header (packet_header_ofdm with bits_per_payload_sym=8, so the length
    field counts payload symbols): 12-bit length, 12-bit sequence number, CRC-8 over both (LSB
    first), zero-filled to one OFDM symbol. The stock packet_headerparser_b checks it on RX."""
    if not 0 < n_symbols <= MAX_SYMBOLS_PER_FRAME:
        raise ValueError(f"frame length {n_symbols} outside 1..{MAX_SYMBOLS_PER_FRAME}")
    return header_bits_rows([n_symbols], [seq], header_len_bits)[0]


def header_bits_rows(n_symbols, seq, header_len_bits: int) -> np.ndarray:
    """header_bits of many frames at once: uint8 [F, header_len_bits] (lengths not checked)."""
    n = np.asarray(n_symbols, dtype=np.int64)
    s = np.asarray(seq, dtype=np.int64) % SEQ_MODULO
    crc = crc8_rows(np.stack((n & 0xFF, n >> 8, s & 0xFF, s >> 8), axis=1))
    fields = n | (s << HEADER_BITS_LEN) | (crc << (HEADER_BITS_LEN + HEADER_BITS_SEQ))  # LSB first, in order
    width = HEADER_BITS_LEN + HEADER_BITS_SEQ + 8
    bits = np.zeros((n.size, header_len_bits), dtype=np.uint8)
    bits[:, :width] = (fields[:, None] >> np.arange(width)[None, :]) & 1
    return bits


def header_symbols(n_symbols: int, seq: int, layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """BPSK header (gr-digital constellation_bpsk: bit 0 -> -1, bit 1 -> +1), one OFDM symbol."""
    bits = header_bits(n_symbols, seq, layout.n_data)
    return (2.0 * bits - 1.0).astype(np.complex64)


def header_shift(copy: int, repeats: int, layout: OfdmLayout = DEFAULT_LAYOUT) -> int:
    """Cyclic shift (in data carriers) of header copy `copy`: the copies put each header bit on
    `repeats` carriers spread over the band (frequency diversity against selective fades)."""
    return (copy * layout.n_data) // max(repeats, 1)


@functools.lru_cache(maxsize=64)
def header_unshift_index(repeats: int, layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """[repeats, n_data]: entry [c, b] is the data carrier (position among the data carriers)
    that carries header bit b in copy c, i.e. (b + header_shift(c)) % n_data."""
    n = layout.n_data
    return np.stack([(np.arange(n) + header_shift(c, repeats, layout)) % n for c in range(repeats)])


@functools.lru_cache(maxsize=64)
def header_bit_of_carrier(repeats: int, layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """[repeats, n_data]: entry [c, j] is the header bit that data carrier j of copy c carries,
    (j - header_shift(c)) % n_data (the inverse of header_unshift_index)."""
    n = layout.n_data
    return np.stack([(np.arange(n) - header_shift(c, repeats, layout)) % n for c in range(repeats)])


@functools.lru_cache(maxsize=64)
def header_scrambler(repeats: int, layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """[repeats, n_data] of fixed +-1 (seeded), multiplied onto the header copies' data carriers.
    The header's bits are mostly the same value (16 bits of zero fill, small lengths and
    sequence numbers), so unscrambled its BPSK symbol is nearly constant across carriers: a
    time-domain impulse with ~14 dB of PAPR that an 8-bit ADC or a PA clips. Scrambled, the
    header has the PAPR of a data symbol. The bits (and the stock format and CRC) are unchanged."""
    rng = np.random.RandomState(SYNC_SEED + 1)
    return np.where(rng.randint(2, size=(repeats, layout.n_data)) == 0, 1.0, -1.0)


@functools.lru_cache(maxsize=4 * SEQ_MODULO)
def header_copies(n_symbols: int, seq: int, repeats: int, layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """The `repeats` header OFDM symbols (data carriers only), copy c cyclically shifted by
    header_shift(c) (bit b rides data carrier (b + shift) % n_data) and multiplied by
    header_scrambler()[c]. Cached (read-only)."""
    if not 0 < n_symbols <= MAX_SYMBOLS_PER_FRAME:
        raise ValueError(f"frame length {n_symbols} outside 1..{MAX_SYMBOLS_PER_FRAME}")
    out = header_copies_rows([n_symbols], [seq], repeats, layout)[0].reshape(-1)
    out.flags.writeable = False
    return out


def header_copies_rows(n_symbols, seq, repeats: int, layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """header_copies of many frames at once: complex64 [F, repeats, n_data]."""
    base = 2.0 * header_bits_rows(n_symbols, seq, layout.n_data) - 1.0   # BPSK, as header_symbols
    rolled = base[:, header_bit_of_carrier(repeats, layout)]                # copy c: np.roll by its shift
    return (rolled * header_scrambler(repeats, layout)[None]).astype(np.complex64)


# ----------------------------------------------------------------------------- PDU validation
def check_payload(vector, max_symbols: int = MAX_SYMBOLS_PER_FRAME):
    """Why a PDU payload cannot be sent, or None. `vector` is what pmt.to_python gave for the
    PDU's data (a numpy array for uniform vectors)."""
    if not isinstance(vector, np.ndarray) or vector.ndim != 1:
        return "wrong_type", f"payload is {type(vector).__name__}, expected a c32vector"
    if vector.dtype != np.complex64:
        return "wrong_type", f"payload vector is {vector.dtype}, expected complex64 (c32vector)"
    if vector.size == 0:
        return "empty", "payload is empty"
    if vector.size > max_symbols:
        return "too_long", f"payload has {vector.size} symbols, at most {max_symbols} fit the header"
    if not np.isfinite(vector).all():
        bad = int((~np.isfinite(vector)).sum())
        return "nonfinite", f"payload has {bad} NaN/Inf symbol(s)"
    return None


# ----------------------------------------------------------------------------- channel helpers
def fractional_delay_taps(delay: float, half_len: int = 6) -> np.ndarray:
    """FIR that delays by `delay` samples (any real >= 0) relative to a bulk delay of
    half_len - 1 samples: the fraction by a Kaiser(beta=3)-windowed sinc of 2*half_len taps (unit
    DC gain, within -0.14/+0.22 dB over the 802.11a-like occupied band at half a sample), the
    integer part as leading zeros. The bulk delay is invisible to a burst receiver; the fraction
    puts the sampling instants between the TX's samples. Kept short: with the receiver's FFT
    window in the middle of the cyclic prefix, a long FIR's tails would spill past it."""
    if delay < 0:
        raise ValueError("timing offset must be >= 0 samples")
    whole = int(math.floor(delay))
    frac = delay - whole
    n = np.arange(2 * half_len)
    taps = np.sinc(n - (half_len - 1) - frac) * np.kaiser(2 * half_len, 3.0)
    taps /= taps.sum()
    return np.concatenate((np.zeros(whole), taps)).astype(np.complex64)


# ----------------------------------------------------------------------------- RX estimation
def _matvec(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """a @ x for the receiver's small per-frame products, without BLAS: OpenBLAS runs a 52x52
    complex gemv on two threads whose spin-wait then holds a second core (see also
    diffsem.phy.burst_rx._single_threaded_blas)."""
    return np.einsum("ij,j->i", a, x)



def fit_phase_slope(corr: np.ndarray, t: np.ndarray) -> float:
    """Slope b of a common phase b*t (a line through 0 at the channel-estimate symbol, t in OFDM
    symbols) from per-symbol pilot correlations `corr`, weighted by |corr|. Unwrapped by
    prediction, symbol after symbol: a residual CFO of a few hundredths of a subcarrier turns the
    phase past +-pi within a few symbols, and a plain unwrap from 0 or a fit on wrapped angles
    then rotates whole frames (measured: ~1 % of frames lost at 5 dB)."""
    # scalar loop on Python floats: it is sequential by nature and short (one step per symbol)
    slope = num = den = 0.0
    for c, tk in zip(np.asarray(corr, dtype=np.complex128).tolist(), np.asarray(t, dtype=np.float64).tolist()):
        w = abs(c)
        predicted = slope * tk
        phase = predicted + cmath.phase(c * cmath.exp(-1j * predicted))
        num += w * tk * phase
        den += w * tk * tk
        slope = num / max(den, 1e-30)
    return slope


# Offsets (rad per OFDM symbol) tried around the pilots' common-phase slope when the header copies
# are combined. The pilots are 4 cells per copy; the 48 data cells of each copy, whose combination
# must come out real (BPSK), hold twelve times the energy. Below ~0 dB the pilots' slope is off by
# enough that later copies cancel earlier ones (a third of the header failures at -3 dB AWGN).
HEADER_SLOPE_SEARCH = np.linspace(-0.8, 0.8, 33)


@functools.lru_cache(maxsize=8)
def _slope_search_tables(t: tuple):
    """For header_phase_search: the distinct sums m = t_c + t_c', the [copies^2, sums] 0/1 map of
    copy pairs to their sum, and the phasors e^{-j m offset} [sums, offsets]."""
    t = np.asarray(t)
    pair_t = (t[:, None] + t[None, :]).ravel()
    sums, index = np.unique(pair_t, return_inverse=True)
    pairs = np.zeros((pair_t.size, sums.size))
    pairs[np.arange(pair_t.size), index] = 1.0
    return sums, pairs, np.exp(-1j * sums[:, None] * HEADER_SLOPE_SEARCH[None, :])


def header_phase_search(z: np.ndarray, t: np.ndarray, slope: np.ndarray):
    """The common-phase slope of the header copies that makes their combination most BPSK-like.
    z [F, copies, n_data]: each copy's data cells times conj(channel), unscrambled and unshifted
    (cell b carries header bit b), not yet turned by the common phase; t [copies]: their times;
    slope [F]: the pilots' estimate. Tries slope + HEADER_SLOPE_SEARCH, keeps the one that
    maximises Re sum_b num_b^2 (num_b: bit b's combination; |num|^2 cos 2(phase error), largest
    where the combination is real), refined between grid points by a parabola.
    Returns (slope [F], num [F, n_data])."""
    # Re sum_b num_b^2 = Re sum_m H_m e^{-j s m}, with H_m = sum over copy pairs (c, c') with
    # t_c + t_c' = m of sum_b z_cb z_c'b: a copies x copies Gram product, then a few phasors per slope
    sums, pairs, phasors = _slope_search_tables(tuple(np.asarray(t, dtype=np.float64).tolist()))
    gram = np.matmul(z, z.transpose(0, 2, 1)).reshape(z.shape[0], -1)
    h = (gram @ pairs) * np.exp(-1j * slope[:, None] * sums[None, :])
    metric = np.real(h @ phasors)
    best = np.clip(np.argmax(metric, axis=1), 1, HEADER_SLOPE_SEARCH.size - 2)
    rows = np.arange(z.shape[0])
    lo, mid, hi = metric[rows, best - 1], metric[rows, best], metric[rows, best + 1]
    curve = lo - 2.0 * mid + hi
    step = np.where(curve < 0, 0.5 * (lo - hi) / np.where(curve < 0, curve, -1.0), 0.0)
    slope = slope + HEADER_SLOPE_SEARCH[best] + np.clip(step, -0.5, 0.5) * (HEADER_SLOPE_SEARCH[1] - HEADER_SLOPE_SEARCH[0])
    num = np.matmul(np.exp(-1j * slope[:, None, None] * t[None, None, :]), z)[:, 0, :]
    return slope, num


def preamble_interference(h_ls: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """Boolean [..., n_active]: the carriers whose LS estimate stands out of the channel fit (see
    PREAMBLE_FLAG); rows of frames at once, each judged on its own. A row with more than half its
    carriers out holds no narrowband interferer (no preamble, or a wideband one): none flagged."""
    resid = np.abs(h_ls - fitted) ** 2
    floor = np.maximum(PREAMBLE_FLAG * np.median(resid, axis=-1),
                       PREAMBLE_FLAG_GAIN * np.mean(np.abs(fitted) ** 2, axis=-1))
    hit = resid > floor[..., None]
    return hit & (np.sum(hit, axis=-1) <= hit.shape[-1] // 2)[..., None]


def combine_header(est: "FrameEstimator", copies: np.ndarray, smooth: np.ndarray, carr_offset: int):
    """Maximum-ratio combination of the header copies (fft-shifted spectra, one row per copy) on
    the denoised channel `smooth` (fft-shifted), each copy first derotated by the common phase that
    residual CFO accumulates since the preamble (a line through 0 at the preamble, slope fitted on
    the pilots of all copies: without it later copies cancel earlier ones at low SNR) and
    un-shifted (copy c carries bit b on data carrier (b + shift_c) % n_data); the pilots' slope is
    then refined on the data cells (header_phase_search).
    Returns (soft header symbols [n_data], slope rad/OFDM symbol, quality) or None when the
    inputs are unusable. quality = sum Re^2 / sum Im^2 of the combined symbols: a true BPSK
    header is real after combining (~9 at 0 dB), a trigger on noise gives ~1. A carrier where
    `smooth` is zero (left out for interference, preamble_interference) weighs nothing."""
    half = est.layout.fft_len // 2
    n = smooth.size
    active = est.active + carr_offset + half
    if not (np.isfinite(smooth).all() and np.isfinite(copies).all()
            and active.min() >= 0 and active.max() < n):
        return None
    pilots = np.asarray(est.pilots) + carr_offset + half
    data = np.asarray(est.data) + carr_offset + half
    corr = (copies[:, pilots] * np.conj(smooth[pilots] * est.pilot_values)[None, :]).sum(axis=1)
    t = 1.0 + np.arange(copies.shape[0])
    # unwrap by prediction, copy after copy: the CFO left by the sync at 5 dB (~0.05
    # subcarrier) turns the phase by ~0.4 rad per symbol, so later copies pass +-pi
    slope = fit_phase_slope(corr, t)
    h_d = smooth[data]
    gain = np.abs(h_d) ** 2
    z = copies[:, data] * header_scrambler(copies.shape[0], est.layout) * np.conj(h_d)[None, :]
    unshift = header_unshift_index(copies.shape[0], est.layout)  # [copies, n_data]
    rows = np.arange(copies.shape[0])[:, None]
    slope, num = header_phase_search(z[rows, unshift][None], t, np.array([slope]))
    slope, num = slope[0], num[0]
    den = gain[unshift].sum(axis=0)
    bits = num / np.maximum(den, 1e-30)
    quality = float(np.sum(bits.real ** 2) / max(np.sum(bits.imag ** 2), 1e-30))
    return bits, float(slope), quality


@dataclass
class FrameEstimate:
    symbols: np.ndarray     # complex64 [n_symbols], equalised, TX units
    noise_var: np.ndarray   # float32 [n_symbols], variance of each symbol's error
    snr_db: float           # average Es/N0 estimate: 10 log10(mean |H_i|^2 / sigma^2)
    post_eq_snr_db: float   # -10 log10(mean noise_var)
    sigma2: float           # pre-equalisation noise variance per subcarrier (FFT units)
    cpe_slope: float        # residual common phase per OFDM symbol (rad), 0 if tracking is off
    n_taps: int             # significant channel taps kept
    delay: float            # mean channel delay in the FFT window (samples; ISI-free in [0, cp_len])
    interfered: int = 0     # data carriers flagged as interfered (their noise measured apart)
    erased: int = 0         # payload symbols handed over as erased (noise_var ERASED_NOISE_VAR)
    cut: int = 0            # of those, the payload symbols after the burst's end (a cut tail, a
                            # header claiming more than was sent); 0 when the burst held them all
    clock_ppm: float = 0.0  # sampling-clock offset RX vs TX from the pilots' timing drift (+: the
                            # RX takes more samples per TX sample, as a recording resampled by 1.001)
    clock_ppm_sd: float = math.inf  # its standard deviation (inf: not measured)

    @property
    def clock_mismatch(self) -> bool:
        """The frame's sampling clock is off by more than CLOCK_TOLERANCE_PPM, measurably so."""
        return abs(self.clock_ppm) - CLOCK_TOLERANCE_PPM > CLOCK_CONFIDENCE * self.clock_ppm_sd


class FrameEstimator:
    """Turns one received frame (the payload's FFT over data, pilot and guard carriers, plus the
    least-squares channel estimate of its training) into symbols + honest noise figures.

    Inputs to `estimate`:
      cells: complex [n_ofdm, n_data + n_pilot + n_guard]: the payload OFDM symbols' FFT values
             (unequalised), one row per symbol, carriers in the order of `serializer_carriers`.
      ls_taps: complex [fft_len], fft-shifted: the LS channel estimate (the second preamble,
             averaged with the decoded header copies by diffsem.phy.burst_rx), shifted by `carr_offset`.
    """

    max_tables = 4096  # least-squares tables kept (_fit_tables / _trial_tables), one per tap subset
    max_masked_tables = 512  # the same for fits without interfered carriers, one per subset and mask

    def __init__(self, layout: OfdmLayout = DEFAULT_LAYOUT, phase_tracking: str = "linear",
                 payload_scale: float = 1.0, taps_before: int | None = None,
                 taps_after: int | None = None, tap_threshold: float = 8.0,
                 symbols_before_payload: int = 2, min_gain: float = 1e-4):
        if phase_tracking not in PHASE_TRACKING:
            raise ValueError(f"phase_tracking must be one of {PHASE_TRACKING}")
        self.layout = layout
        self.phase_tracking = phase_tracking
        self.payload_scale = float(payload_scale)
        self.data, self.pilots, self.guards = carriers_by_role(layout)
        self.serializer_carriers = self.data + self.pilots + self.guards
        self.active = np.array(sorted(self.data + self.pilots))
        self.pilot_values = self._pilot_values(layout)
        pos = {k: i for i, k in enumerate(self.active)}
        self._idx_d = np.array([pos[k] for k in self.data])     # data / pilot carriers among the active ones
        self._idx_p = np.array([pos[k] for k in self.pilots], dtype=np.int64)
        self.sync2 = sync_words(layout)[1]
        # candidate taps (samples around the strongest path's delay): the greedy selection in
        # smooth_channel only ever fits the taps it picked, so a window as long as the CP stays
        # well-conditioned; the strongest path of a multipath channel need not be the first.
        self.taps_before = 7 if taps_before is None else int(taps_before)
        self.taps_after = 8 if taps_after is None else int(taps_after)
        self.tap_threshold = tap_threshold
        self.t0 = symbols_before_payload  # OFDM symbols from the channel-estimate symbol to payload 0
        self.clock_tracking = True  # remove a measured sampling-clock drift from the payload (False: report it only)
        # pilot pairs at the smallest spacing: their product's phase turns with the timing drift
        k = np.asarray(self.pilots)
        gaps = [int(k[a] - k[b]) for a in range(k.size) for b in range(k.size) if k[a] > k[b]]
        self._pair_spacing = min(gaps) if gaps else 0
        self._pairs = np.array([(a, b) for a in range(k.size) for b in range(k.size)
                                if k[a] - k[b] == self._pair_spacing], dtype=np.int64).reshape(-1, 2)
        self._pilot_omega = 2.0 * np.pi * k.astype(np.float64) / layout.fft_len
        self.min_gain = min_gain
        self._oversample = 4
        self._omega = {}
        self._tables = {}
        self._masked = {}
        self._fits = {}

    @staticmethod
    def _pilot_values(layout):
        return np.asarray(layout.pilot_symbols, dtype=np.complex64)

    def _basis(self, carriers, delays, carr_offset):
        k = np.asarray(carriers, dtype=np.float64)[:, None] + carr_offset
        return np.exp(-2j * np.pi * k * np.asarray(delays, dtype=np.float64)[None, :] / self.layout.fft_len)

    def _fit_tables(self, carr_offset: int, keep: tuple, good=None):
        """Least-squares tables for a tap subset of the fixed window (taps_before .. taps_after
        around the frame's delay): (pseudo-inverse, fitted-value map, leverage, tap noise).
        `good`: fit on those active carriers only (a boolean mask); the pseudo-inverse then takes
        their values, the map gives every active carrier from them [n_active, n_good] and the
        leverage is its rows' energy (the noise gain of a fitted or an interpolated carrier).

        Cached per subset without the fitted-value map: that is basis @ pinv, an [n_active,
        n_active] complex128 matrix (43 kB) of rank len(keep), rebuilt from the two thin factors
        at each call (the same product as the one that was kept; no measurable CPU). A cached
        entry is then ~2 kB + 1.7 kB a tap instead of ~45 kB. Measured: a selective channel at
        5 dB reached 1258 tables in 2000 frames, 34 MB with the maps kept, 11 MB without; an
        AWGN soak's ~30 tables took ~1 MB with the maps kept, ~0.3 MB without. Masked tables
        (frames with interfered carriers) are kept apart, up to max_masked_tables: an interferer
        that stays on the same carriers repeats its mask, and must not crowd out the clean path."""
        key = (carr_offset, keep) if good is None else (carr_offset, keep, good.tobytes())
        store = self._tables if good is None else self._masked
        tables = store.get(key)
        if tables is None:
            delays = np.arange(-self.taps_before, self.taps_after + 1)[list(keep)]
            basis = self._basis(self.active, delays, carr_offset)
            if good is None:
                pinv = np.linalg.pinv(basis)
                tap_noise = np.real(np.diag(np.linalg.pinv(basis.conj().T @ basis)))
                leverage = np.real(np.diag(basis @ pinv)).copy()
            else:
                pinv = np.linalg.pinv(basis[good])
                tap_noise = np.sum(np.abs(pinv) ** 2, axis=1)   # diag((B^H B)^-1) = row energy of pinv(B)
                leverage = np.sum(np.abs(basis @ pinv) ** 2, axis=1)
            tables = (pinv, basis, leverage, tap_noise)
            self._keep(store, key, tables)
        pinv, basis, leverage, tap_noise = tables
        return pinv, basis @ pinv, leverage, tap_noise

    def _trial_tables(self, carr_offset: int, chosen: tuple, good=None):
        """The candidate subsets chosen + one more tap, and one row per candidate: the conjugate of
        its basis column orthogonalised against the chosen taps, normalised (zero if it adds
        nothing), so one small matrix product scores every candidate of a greedy step. `good`:
        on those carriers only (as _fit_tables)."""
        key = ("trials", carr_offset, chosen) if good is None else ("trials", carr_offset, chosen, good.tobytes())
        store = self._tables if good is None else self._masked
        tables = store.get(key)
        if tables is None:
            n_win = self.taps_before + self.taps_after + 1
            others = [j for j in range(n_win) if j not in chosen]
            trials = [tuple(sorted(chosen + (j,))) for j in others]
            hat = self._fit_tables(carr_offset, chosen, good)[1]
            cols = self._basis(self.active, np.arange(-self.taps_before, self.taps_after + 1)[others], carr_offset)
            if good is not None:
                hat, cols = hat[good], cols[good]
            q = cols - hat @ cols
            norm = np.sqrt(np.sum(np.abs(q) ** 2, axis=0))
            proj = np.where(norm[:, None] > 1e-9, np.conj(q.T) / np.maximum(norm, 1e-30)[:, None], 0.0)
            tables = (trials, proj)
            self._keep(store, key, tables)
        return tables

    def _keep(self, store: dict, key, tables):
        """Cache least-squares tables: the clean path's up to max_tables (then no more), the masked
        ones up to max_masked_tables (then the masked cache starts over)."""
        if store is self._tables:
            if len(store) < self.max_tables:
                store[key] = tables
            return
        if len(store) >= self.max_masked_tables:
            store.clear()
        store[key] = tables

    def delay_of(self, h_ls_active: np.ndarray, carr_offset: int = 0) -> float:
        """ML delay (samples) of a single path: the peak of |S(tau)|, S(tau) = sum_k H_k
        e^{+j2pi k tau/N}, over tau in [-cp_len, 2 cp_len] (where the FFT window can put the
        channel): coarse peak of a 4x oversampled inverse FFT, then Newton steps on |S|^2. It uses
        the coherent sum over all carriers (17 dB of gain over the per-carrier SNR), so it holds
        at 0 dB where the pairwise phase slope does not; a centre off by a fraction of a sample
        would need extra taps that the selection then drops (and shows as excess error on the
        band-edge carriers)."""
        n = self.layout.fft_len
        over = self._oversample
        grid = np.zeros(n * over, dtype=np.complex128)
        grid[(self.active + carr_offset) % (n * over)] = h_ls_active
        spectrum = np.abs(np.fft.ifft(grid))
        cp = max(self.layout.cp_len, 1)
        idx = np.arange(-cp * over, 2 * cp * over + 1)
        tau = float(idx[int(np.argmax(spectrum[idx % (n * over)]))]) / over
        return self.refine_delay(h_ls_active, carr_offset, tau, 0.5 / over)

    def refine_delay(self, h_ls_active: np.ndarray, carr_offset: int, tau: float, max_step: float,
                     steps: int = 2) -> float:
        """Newton steps on |S(tau)|^2 from `tau` (see delay_of), each step at most `max_step`."""
        w = self._omega.get(carr_offset)
        if w is None:
            w = self._omega[carr_offset] = 2.0 * np.pi * (self.active + carr_offset) / self.layout.fft_len
        w2 = w * w
        for _ in range(steps):
            e = h_ls_active * np.exp(1j * w * tau)
            s0, s1, s2 = complex(e.sum()), 1j * complex(np.dot(w, e)), -complex(np.dot(w2, e))
            d1 = 2.0 * (s0.conjugate() * s1).real
            d2 = 2.0 * (abs(s1) ** 2 + (s0.conjugate() * s2).real)
            if d2 >= 0:      # not at a maximum: keep the estimate
                break
            tau += max(min(-d1 / d2, max_step), -max_step)
        return tau

    def smooth_channel(self, h_ls_active: np.ndarray, carr_offset: int, start=None, good=None):
        """Fit the LS estimate on the active carriers with a short impulse response around the
        frame's delay, keeping only the taps that stand out of the noise.
        `start`: the `selection` of an earlier fit of the same frame (a noisier LS estimate):
        its delay is kept and its taps are the starting set, so a refit costs one greedy step.
        `good`: fit on those active carriers only (a mask: interfered carriers left out), with
        `start`'s delay as it is and the taps selected afresh from the strongest; the fit still
        gives every carrier, and the residual and its dof are the good carriers'.
        Returns (fitted H on the active carriers, leverage per active carrier, residual energy,
        residual degrees of freedom, taps kept, delay, selection). Cached per LS estimate."""
        cache_key = (h_ls_active.tobytes(), carr_offset, start, None if good is None else good.tobytes())
        hit = self._fits.get(cache_key)
        if hit is not None:
            return hit
        if good is not None:
            centre = start[0]
        elif start is None:
            centre = self.delay_of(h_ls_active, carr_offset)
        else:
            centre = self.refine_delay(h_ls_active, carr_offset, start[0], 0.25, steps=1)
        # move the delay to 0 so one fixed (cached) basis serves every frame; fractional, so
        # a timing offset between samples is one tap, not a spread-out sinc
        rot = np.exp(2j * np.pi * (self.active + carr_offset) * centre / self.layout.fft_len)
        h_all = h_ls_active * rot
        h = h_all if good is None else h_all[good]

        def hat_of(taps):  # the fitted-value map on the fitted carriers
            hat = self._fit_tables(carr_offset, taps, good)[1]
            return hat if good is None else hat[good]

        # greedy selection (orthogonal matching pursuit) from the ML path: a tap joins while it
        # removes more than `tap_threshold` times the noise left per degree of freedom. Fitting the
        # whole window at once is ill-conditioned (52 of 64 carriers): at low SNR its noisy
        # coefficients would hide the true taps.
        n_win = self.taps_before + self.taps_after + 1
        n_fit = h.size
        chosen = (self.taps_before,) if start is None or good is not None else start[1]
        resid = h - _matvec(hat_of(chosen), h)
        energy = float(np.sum(np.abs(resid) ** 2))
        while len(chosen) < n_win:
            trials, proj = self._trial_tables(carr_offset, chosen, good)
            # adding tap j removes |<q_j, r>|^2 / |q_j|^2 (q_j: its basis column orthogonalised
            # against the chosen taps, r: the current residual), i.e. orthogonal matching pursuit
            energies = energy - np.abs(_matvec(proj, resid)) ** 2
            j = int(np.argmin(energies))
            best, best_energy = (trials[j], float(energies[j])) if energies[j] < energy else (None, energy)
            noise_per_dof = best_energy / max(n_fit - len(chosen) - 1, 1)
            if best is None or energy - best_energy < self.tap_threshold * noise_per_dof:
                break
            chosen, energy = best, best_energy
            resid = h - _matvec(hat_of(chosen), h)
        _, hat, leverage, _ = self._fit_tables(carr_offset, chosen, good)
        fitted = _matvec(hat, h) * np.conj(rot)
        resid_e = float(np.sum(np.abs(h_ls_active - fitted)[slice(None) if good is None else good] ** 2))
        dof = n_fit - len(chosen)
        out = (fitted, leverage, resid_e, dof, len(chosen), float(centre), (float(centre), chosen))
        if len(self._fits) > 256:
            self._fits.clear()
        self._fits[cache_key] = out
        return out

    def estimate(self, cells: np.ndarray, ls_taps: np.ndarray, n_symbols: int, carr_offset: int = 0,
                 training_symbols: int = 1, channel_start=None, phase_anchors=None, training_spread=None,
                 max_live: int | None = None):
        """`training_symbols`: how many known unit-power OFDM symbols were averaged into `ls_taps`
        (its noise is sigma^2 / training_symbols). `channel_start`: see smooth_channel.
        `phase_anchors`: (t, corr) of known symbols before the payload (the decoded header
        copies: t in OFDM symbols from the channel-estimate symbol, corr = sum over carriers of
        y conj(H x), phase already corrected like the payload's). The linear phase fit then uses
        them with the payload pilots: with 52 known carriers each they pin the slope far better
        than 4 pilots per payload symbol (a one-symbol payload has nothing else).
        `training_spread`: (energy, dof) of the training symbols' LS estimates around their mean
        (per carrier, each has the noise's own variance sigma^2); energy either a total (dof in
        all) or one value per active carrier (dof per carrier), which lets the estimate find
        interfered carriers (see below). With it, sigma^2 comes from
        noise only (guards, pilots, spread), and the fit residual beyond the noise it should hold
        (sigma^2 / training_symbols per carrier) is channel-model error: added to each symbol's
        noise_var as error/|H|^2 instead of being counted as noise (which, scaled by
        training_symbols, would overstate sigma^2 wherever the channel fit is imperfect).

        What the receiver could not trust, measured on the frame itself (not told by a simulator):
        * interfered carriers: with a per-carrier training spread, a carrier whose spread exceeds
          CARRIER_FLAG times the clean carriers' mean (re-estimated without the flagged ones) is
          interfered, and so is one next to it above CARRIER_GROW times (_interfered_carriers);
          the channel is fitted again without them (smooth_channel's `good`: their LS estimates
          hold the interference), sigma^2 comes from the other carriers, and the flagged ones get their
          run's pooled spread as their noise (_interferer_noise; an interferer present during the
          header, e.g. a narrowband one);
        * impulse-hit OFDM symbols: guard energy above SYMBOL_FLAG times sigma^2; left out of the
          phase fit and the noise estimate, their cells get the measured guard power as noise,
          and are erased when it exceeds the mean channel gain (SINR < 0 dB);
        * dead cells: a payload OFDM symbol with no guard and no pilot energy, and the cut tail of
          the last live one (a truncated frame, `_dead_tail`), are erased;
        * the burst's end: the OFDM symbols from where the frame's pilots stop (`_burst_end`: a
          tail lost in noise, a header that claims more symbols than were sent), and those from
          `max_live` on (the receiver found the next frame's preamble there), are erased and
          counted in `cut`.
        Erased cells are handed over as symbol 0 with noise_var ERASED_NOISE_VAR.
        The sampling-clock offset (`clock_ppm`) comes from the pilots' timing drift."""
        lay = self.layout
        n_d, n_p = len(self.data), len(self.pilots)
        half = lay.fft_len // 2
        cells = np.asarray(cells, dtype=np.complex128).reshape(-1, len(self.serializer_carriers))
        n_ofdm = cells.shape[0]
        h_ls = np.asarray(ls_taps, dtype=np.complex128)[self.active + carr_offset + half]
        # preamble symbol values on those carriers (training power); the LS estimate's noise is
        # sigma^2/|x|^2 = sigma^2 for BPSK
        fitted, leverage, resid_e, dof_pre, n_taps, delay, selection = self.smooth_channel(h_ls, carr_offset,
                                                                                          channel_start)
        good_c, spread_c, ref = self._interfered_carriers(training_spread, float(np.mean(np.abs(fitted) ** 2)))
        if not good_c.all():  # the interfered carriers' LS estimates hold the interference: fit without them
            fitted, leverage, resid_e, dof_pre, n_taps, _, _ = self.smooth_channel(h_ls, carr_offset, selection, good_c)
        m = max(int(training_symbols), 1)
        leverage, resid_e = leverage / m, resid_e * m
        idx_d, idx_p = self._idx_d, self._idx_p
        h_d, h_p = fitted[idx_d], fitted[idx_p]
        mean_gain = float(np.mean(np.abs(fitted) ** 2))
        floor = self.min_gain * max(mean_gain, 1e-30)
        h_d = np.where(np.abs(h_d) ** 2 < floor, np.sqrt(floor), h_d)
        h_p = np.where(np.abs(h_p) ** 2 < floor, np.sqrt(floor), h_p)
        guards = cells[:, n_d + n_p:]
        g_sym = np.mean(np.abs(guards) ** 2, axis=1) if guards.shape[1] else np.zeros(n_ofdm)
        if ref is None:  # no per-carrier training spread: the frame's own guards
            ref = float(np.median(g_sym)) if guards.shape[1] else 0.0
        hot = g_sym > SYMBOL_FLAG * ref
        pilot_e = np.mean(np.abs(cells[:, n_d:n_d + n_p]) ** 2, axis=1) if n_p else np.zeros(n_ofdm)
        dead = (g_sym < DEAD_SYMBOL * ref) & (pilot_e < DEAD_SYMBOL * float(np.mean(np.abs(h_p) ** 2)))
        tau = self.t0 + np.arange(n_ofdm, dtype=np.float64) - (max(int(training_symbols), 1) - 1) / 2.0
        live, drift, drift_sd = self._burst_end(cells[:, n_d:n_d + n_p], h_p, good_c[idx_p], ref, hot, tau, max_live)
        cut = np.arange(n_ofdm) >= live
        dead = dead | cut
        bad = hot | dead
        drift_var = np.zeros((n_ofdm, n_d))
        if self.clock_tracking and abs(drift) > CLOCK_SIGNIFICANT * drift_sd:
            # a sampling-clock offset: symbol j sits drift * tau_j samples off the channel
            # estimate's timing, a phase ramp over the carriers; turned back, the drift's own
            # error left as phase noise of each cell
            omega = 2.0 * np.pi * np.asarray(self.serializer_carriers, dtype=np.float64) / lay.fft_len
            cells = cells * np.exp(-1j * np.outer(tau * drift, omega))
            drift_var = np.outer(tau * tau, omega[:n_d] ** 2) * drift_sd ** 2
        # zero-forcing on the floored fit
        data = cells[:, :n_d] / h_d[None, :]
        pil = cells[:, n_d:n_d + n_p] / h_p[None, :]

        # common phase from the pilots, weighted by pilot SNR (|H|^2)
        t = self.t0 + np.arange(n_ofdm, dtype=np.float64)
        w_p = np.abs(h_p) ** 2
        corr = (pil * np.conj(self.pilot_values)[None, :] * w_p[None, :]).sum(axis=1)
        corr = np.where(bad, 0.0, corr)  # a wiped symbol's pilots say nothing about the phase
        if self.phase_tracking == "off":
            phase = np.zeros(n_ofdm)
            phase_var = np.zeros(n_ofdm)
            slope = 0.0
            n_phase_params = 0
        else:
            raw = np.angle(corr)
            if self.phase_tracking == "linear":
                if phase_anchors is not None:
                    t_fit = np.concatenate((np.asarray(phase_anchors[0], dtype=np.float64), t))
                    slope = fit_phase_slope(np.concatenate((np.asarray(phase_anchors[1]), corr)), t_fit)
                else:
                    slope = fit_phase_slope(corr, t)
                phase = slope * t
                n_phase_params = 1
            else:
                phase = raw
                slope = float(np.mean(np.diff(np.concatenate(([0.0], raw)))))
                n_phase_params = n_ofdm
        rot = np.exp(-1j * phase)[:, None]
        data = data * rot
        pil = pil * rot

        # noise: guards (raw), pilot residuals scaled back by |H|^2, preamble fit residual
        lev_p = leverage[idx_p]
        pil_res = np.abs(pil - self.pilot_values[None, :]) ** 2 * w_p[None, :] / (1.0 + lev_p[None, :])
        pil_res = pil_res[~bad][:, good_c[idx_p]]   # neither wiped symbols nor interfered pilots
        energy = float(np.sum(np.abs(guards[~bad]) ** 2) + np.sum(pil_res))
        dof = guards[~bad].size + max(pil_res.size - n_phase_params, 0)
        model_err = 0.0
        if training_spread is None:
            energy += resid_e
            dof += dof_pre
            sigma2 = energy / max(dof, 1)
        else:
            if spread_c is None:
                energy += float(training_spread[0])
                dof += int(training_spread[1])
            else:
                energy += float(np.sum(spread_c[good_c])) * int(training_spread[1])
                dof += int(training_spread[1]) * int(good_c.sum())
            sigma2 = energy / max(dof, 1)
            # resid_e was scaled by m above: per carrier it holds m (model error) + sigma^2
            model_err = max(resid_e / max(dof_pre, 1) - sigma2, 0.0) / m
        if self.phase_tracking == "linear":
            # slope variance sigma^2 / (2 sum_k W_k t_k^2), W_k = sum |H|^2 over the known carriers
            info = float(w_p.sum()) * float(np.sum(t * t))
            if phase_anchors is not None:
                t_a = np.asarray(phase_anchors[0], dtype=np.float64)
                info += float(np.sum(np.abs(phase_anchors[1]) * t_a * t_a))
            phase_var = t * t * sigma2 / (2.0 * max(info, 1e-30))
        elif self.phase_tracking == "per_symbol":
            phase_var = np.full(n_ofdm, sigma2 / (2.0 * max(float(w_p.sum()), 1e-30)))

        # per symbol: symbol i on OFDM symbol i // n_d, data carrier i % n_d
        sym_row = np.arange(n_symbols) // n_d
        sym_col = np.arange(n_symbols) % n_d
        gain = np.abs(h_d) ** 2
        lev_d = leverage[idx_d]
        scale2 = self.payload_scale ** 2
        symbols = data[sym_row, sym_col] / self.payload_scale
        # pre-equalisation noise per cell: sigma^2, an interfered carrier's own, a hit symbol's guards'
        noise_c = np.full(n_d, sigma2)
        if spread_c is not None:
            noise_c = np.maximum(self._interferer_noise(spread_c, good_c), sigma2)[idx_d]
        noise_cell = np.maximum(noise_c[sym_col], np.where(hot, g_sym, 0.0)[sym_row])
        noise_var = ((noise_cell * (1.0 + lev_d[sym_col]) + model_err) / gain[sym_col] + phase_var[sym_row]
                     + drift_var[sym_row, sym_col]) / scale2
        erased = dead[sym_row] | (hot & (g_sym > mean_gain))[sym_row]
        erased |= self._dead_tail(cells, dead, n_symbols, sigma2)[sym_row, sym_col]
        n_cut = int(cut[sym_row].sum())
        symbols = np.where(erased, 0.0, symbols)
        noise_var = np.where(erased, ERASED_NOISE_VAR, noise_var)
        sym_gain = gain[sym_col] * scale2
        snr_db = 10.0 * math.log10(max(float(np.mean(sym_gain)) / max(sigma2, 1e-30), 1e-30))
        post_eq = -10.0 * math.log10(max(float(np.mean(noise_var)), 1e-30))
        to_ppm = -1e6 / (lay.fft_len + lay.cp_len)  # later windows = fewer RX samples per TX sample
        return FrameEstimate(symbols.astype(np.complex64), noise_var.astype(np.float32), snr_db,
                             post_eq, sigma2, slope, n_taps, delay,
                             int((~good_c[idx_d]).sum()), int(erased.sum()), n_cut,
                             drift * to_ppm, drift_sd * abs(to_ppm))

    def _burst_end(self, pilots, h_p, good_p, sigma2, skip, tau, max_live):
        """(payload OFDM symbols that belong to the burst, timing drift in samples per OFDM symbol,
        its standard deviation) from the pilot cells `pilots` [n_ofdm, n_pilot] on the fitted
        channel `h_p`; `good_p`: the pilots not interfered, `skip`: impulse-hit symbols (no
        evidence either way), `tau`: each symbol's time from the channel estimate's (OFDM
        symbols), `max_live`: symbols from there on are not the frame's."""
        n = pilots.shape[0]
        live = n if max_live is None else max(0, min(n, int(max_live)))
        if not sigma2 > 0 or not good_p.any():
            return live, 0.0, math.inf
        z = pilots * np.conj(h_p * self.pilot_values)  # |H|^2 e^{j(phase + 2 pi k delay / N)}
        w = np.abs(h_p) ** 2
        if not good_p.all():
            w, z = np.where(good_p, w, 0.0), np.where(good_p, z, 0.0)
        w_sum = float(w.sum())
        end = self._cusum_end(np.abs(z.sum(axis=1)), w_sum, sigma2, skip, live)
        drift, drift_sd = self._timing_drift(z[:end], w, sigma2, tau[:end], skip[:end])
        if abs(drift) > CLOCK_SIGNIFICANT * drift_sd:
            turn = np.exp(-1j * np.outer(tau * drift, self._pilot_omega))
            end = self._cusum_end(np.abs((z * turn).sum(axis=1)), w_sum, sigma2, skip, live)
        return end, drift, drift_sd

    @staticmethod
    def _cusum_end(mag, w_sum, sigma2, skip, live):
        """First OFDM symbol after the burst's end (`live` if none is found before it): CUSUM of
        the log-likelihood ratio dead vs live per symbol (see BURST_END_LLR)."""
        from scipy.special import i0e  # numpy's i0 is a slow piecewise; imported here, not with the package

        snr = w_sum / sigma2
        nu = LIVE_PILOT_FLOOR
        x = 2.0 * snr * nu * mag / max(w_sum, 1e-300)
        llr = np.where(skip, 0.0, nu * nu * snr - (np.log(i0e(x)) + x))  # log I0(x) = log i0e(x) + x
        g, start = 0.0, 0
        for j, v in enumerate(llr[:live].tolist()):
            if g <= 0.0:
                start = j
            g = max(g + v, 0.0)
            if g > BURST_END_LLR:
                return start
        return live

    def _timing_drift(self, z, w, sigma2, tau, skip):
        """Timing drift (samples per OFDM symbol) and its standard deviation: the phase of the
        pilot pairs at the smallest spacing turns by 2 pi spacing drift / N per symbol; fitted as
        a line through the channel estimate's time, unwrapped by prediction."""
        if not self._pairs.size or z.shape[0] == 0:
            return 0.0, math.inf
        a, b = self._pairs[:, 0], self._pairs[:, 1]
        m = w[a] * w[b]
        m_sum = float(m.sum())
        if not m_sum > 0:
            return 0.0, math.inf
        # phase variance of the pair sum per symbol, linearised: arg d = sum_i m_i (phi_a_i -
        # phi_b_i) / sum m, a pilot's phase phi_p has variance sigma^2 / (2 w_p) (w = |H|^2);
        # pairs sharing a pilot cancel its phase (adjacent pairs telescope)
        coef = (np.bincount(a, m, w.size) - np.bincount(b, m, w.size)) / m_sum
        var = float(np.sum(coef ** 2 * sigma2 / (2.0 * np.maximum(w, 1e-300))))
        info = float(np.sum(np.where(skip, 0.0, tau * tau))) / max(var, 1e-300)
        if var > MAX_DRIFT_PHASE_VAR or info <= 0:  # too noisy to unwrap symbol after symbol
            return 0.0, math.inf
        d = np.where(skip, 0.0, (z[:, a] * np.conj(z[:, b])).sum(axis=1))
        scale = self.layout.fft_len / (2.0 * math.pi * self._pair_spacing)
        return fit_phase_slope(d, tau) * scale, scale / math.sqrt(info)

    def _dead_tail(self, cells, dead, n_symbols, sigma2):
        """Boolean [n_ofdm, n_data]: the cut tail of a truncated frame's last live OFDM symbol
        (data carriers c.. with mean power below DEAD_TAIL * sigma^2 over at least DEAD_TAIL_CELLS
        cells: the receiver's window mixes a little noise from the CP back in, so a cut cell is not
        exactly 0; P(false) ~ 1e-4 at 0 dB, far less above)."""
        n_d = len(self.data)
        out = np.zeros((cells.shape[0], n_d), bool)
        live = np.flatnonzero(~dead)
        if not live.size:
            return out
        row = int(live[-1])
        end = n_d if (row + 1) * n_d <= n_symbols else n_symbols - row * n_d
        p = np.abs(cells[row, :end]) ** 2
        suffix = np.cumsum(p[::-1])[::-1] / np.arange(end, 0, -1)
        ok = (suffix < DEAD_TAIL * sigma2) & (np.arange(end, 0, -1) >= DEAD_TAIL_CELLS)
        if ok.any():
            c = int(np.argmax(ok))
            while c < end and p[c] >= DEAD_TAIL * sigma2:  # the long tail's mean can hide a few live cells
                c += 1
            out[row, c:end] = True
        return out

    def _interfered_carriers(self, training_spread, gain: float = 0.0):
        """(clean-carrier mask over the active carriers, per-carrier spread or None, the clean
        carriers' mean spread or None) from a per-carrier training spread: flag, re-estimate the
        reference without the flagged carriers, flag again (an interferer inflates a mean taken
        over all carriers). `gain`: the mean channel gain |h|^2; nothing below CARRIER_FLOOR
        times it is flagged."""
        floor = CARRIER_FLOOR * gain
        n_act = len(self.active)
        if training_spread is None or np.ndim(training_spread[0]) == 0:
            return np.ones(n_act, bool), None, None
        s_c = np.asarray(training_spread[0], dtype=np.float64) / max(int(training_spread[1]), 1)
        good = np.ones(n_act, bool)
        for _ in range(3):
            ref = float(np.mean(s_c[good]))
            new = s_c <= max(CARRIER_FLAG * ref, floor)
            if new.sum() < n_act // 2 or (new == good).all():  # at most half the band is "interference"
                good = new if new.sum() >= n_act // 2 else good
                break
            good = new
        ref = float(np.mean(s_c[good]))
        while not good.all():  # grow the flagged runs into their neighbours (CARRIER_GROW, CARRIER_REACH)
            near = np.zeros(n_act, bool)
            for d in range(1, CARRIER_REACH + 1):
                near[d:] |= ~good[:-d]
                near[:-d] |= ~good[d:]
            new = good & ~(near & (s_c > max(CARRIER_GROW * ref, floor)))
            if (new == good).all() or new.sum() < n_act // 2:
                break
            good = new
        return good, s_c, float(np.mean(s_c[good]))

    @staticmethod
    def _interferer_noise(spread_c, good_c):
        """Per active carrier, the interference-plus-noise power of a flagged one (0 elsewhere):
        its run's mean spread (the flagged carriers within CARRIER_REACH of each other), which has
        the dof of all of them (4 per carrier), since one interferer's power is about even over
        its few carriers; a carrier whose own spread exceeds RUN_OUTLIER times that mean (the peak
        of an uneven interferer) keeps its own."""
        out = np.zeros(spread_c.size)
        bad = np.flatnonzero(~good_c)
        for run in np.split(bad, np.flatnonzero(np.diff(bad) > CARRIER_REACH) + 1) if bad.size else ():
            mean = float(np.mean(spread_c[run]))
            out[run] = np.where(spread_c[run] > RUN_OUTLIER * mean, spread_c[run], mean)
        return out


# --- test payloads of the PHY loopback (symbol_source / symbol_checker) -------------------------

@functools.lru_cache(maxsize=2 * SEQ_MODULO)
def reference_symbols(seed: int, seq: int, n_symbols: int) -> np.ndarray:
    """The unit-power CN(0, 1) payload of frame `seq` (mod the 12-bit header counter): the checker
    regenerates it instead of being told. Cached (read-only): source and checker both need it,
    and a fresh generator per frame was a visible share of a loopback's Python time."""
    rng = np.random.default_rng([int(seed), int(seq) % SEQ_MODULO])
    z = rng.standard_normal((2, n_symbols)) / math.sqrt(2.0)
    out = (z[0] + 1j * z[1]).astype(np.complex64)
    out.flags.writeable = False
    return out


def reference_burst(payload: np.ndarray, seq: int, repeats: int = 4, layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """The time-domain burst (no padding) that ofdm_analog_tx sends for `payload`: the two
    Schmidl & Cox preambles, `repeats` scrambled header copies, the payload with pilots."""
    return BurstBuilder(layout, repeats).build([payload], [seq])[0]


class BurstBuilder:
    """What ofdm_analog_tx sends, for many frames at once: each burst `pad_front` zeros, the two
    Schmidl & Cox preambles, `repeats` scrambled header copies (header_copies), ceil(k / n_data)
    payload OFDM symbols (symbol i on data carrier i % n_data of symbol i // n_data, the last
    symbol's unused cells zero, pilots on every symbol), `pad_back` zeros; each OFDM symbol with
    its cyclic prefix, scaled by tx_scale. All symbols of all frames go through one inverse FFT
    (float64, like gr's unnormalised fft_vcc, then complex64)."""

    def __init__(self, layout: OfdmLayout = DEFAULT_LAYOUT, repeats: int = 4, pad_front: int = 0, pad_back: int = 0):
        self.layout = layout
        self.repeats = int(repeats)
        self.pad_front, self.pad_back = int(pad_front), int(pad_back)
        n = layout.fft_len
        self.sym_len = n + layout.cp_len
        # FFT bins in natural order (DC first: the ifftshift of the carrier layout)
        self._data = np.asarray(layout.data_carriers) % n
        self._pilots = np.asarray(layout.pilot_carriers) % n
        self._sync = np.fft.ifftshift(np.stack(sync_words(layout)), axes=1)
        self._scale = tx_scale(layout)

    def length(self, n_symbols: int) -> int:
        """Samples of the burst of an n-symbol payload, padding included."""
        return (2 + self.repeats + self.layout.n_ofdm_symbols(n_symbols)) * self.sym_len + self.pad_front + self.pad_back

    def build(self, payloads, seqs):
        """(samples of the bursts back to back, complex64; their lengths) for the payloads
        (complex64, 1..MAX_SYMBOLS_PER_FRAME symbols each) and 12-bit sequence numbers."""
        lay, r, n_data = self.layout, self.repeats, self.layout.n_data
        sizes = [p.size for p in payloads]
        rows = np.array([2 + r + lay.n_ofdm_symbols(k) for k in sizes])
        first = np.cumsum(rows) - rows
        cells = np.zeros((int(rows.sum()), n_data), np.complex64)
        cells[(first[:, None] + 2 + np.arange(r)).ravel()] = header_copies_rows(sizes, seqs, r, lay).reshape(-1, n_data)
        for row, p in zip((first + 2 + r).tolist(), payloads):
            cells[row:].reshape(-1)[:p.size] = p
        spec = np.zeros((cells.shape[0], lay.fft_len), np.complex64)
        spec[:, self._data] = cells
        spec[:, self._pilots] = lay.pilot_symbols
        spec[first] = self._sync[0]
        spec[first + 1] = self._sync[1]
        time = lay.fft_len * np.fft.ifft(spec, axis=1) * self._scale
        lengths = rows * self.sym_len + self.pad_front + self.pad_back
        # each OFDM symbol's place in the output: its burst's start, the front padding, its index;
        # the cyclic prefix is the symbol's tail again
        ends = np.cumsum(lengths)
        dest = np.repeat(ends - lengths + self.pad_front - first * self.sym_len, rows) + np.arange(cells.shape[0]) * self.sym_len
        out = np.zeros(int(ends[-1]), np.complex64)
        out[(dest + lay.cp_len)[:, None] + np.arange(lay.fft_len)[None, :]] = time
        out[dest[:, None] + np.arange(lay.cp_len)[None, :]] = time[:, lay.fft_len - lay.cp_len:]
        return out, lengths
