"""Hardware-impairment maths for the analog OFDM link (plain numpy, no GNU Radio).

* `quantize`: an N-bit ADC/DAC per rail (I and Q separately), mid-rise, saturating at a set
  full scale, as a HackRF's 8-bit converters do.
* `clip`: a soft-limiter power amplifier model (amplitude clipped at a level, phase kept).
* `papr_db` / `ccdf`: peak-to-average power ratio per OFDM symbol, optionally oversampled by
  zero-padding the spectrum (the Nyquist-rate samples miss the peaks between them).
* `narrowband_interference`: the narrowband interferer's samples (channel_sim, bench rx).

Levels are absolute amplitudes; the TX gives unit average power per sample inside a burst
(docs/design/conventions.md), so a clip level of L dB "relative to RMS" is the amplitude 10**(L/20).
"""
from __future__ import annotations

import numpy as np


def narrowband_interference(hit_cells, n_ofdm: int, sir_db: float, rng, layout) -> np.ndarray:
    """The narrowband interferer of diffsem.channel's "narrowband" impairment as samples: on each
    data carrier that `hit_cells` (boolean over the payload symbols, symbol i on data carrier
    i % n_data) touches, during each of `n_ofdm` OFDM symbols (cyclic prefix included, so a tone
    stays cyclic in the FFT window), a tone at the subcarrier's frequency with a fresh CN(0, I)
    amplitude, I = Es / 10^(sir_db/10) per cell at the TX's scale (unit power per sample over
    n_active carriers). complex64 [n_ofdm * (fft_len + cp_len)]."""
    from diffsem.phy.framing import n_active
    hit_cells = np.asarray(hit_cells, dtype=bool)
    carriers = np.asarray(layout.data_carriers)[np.unique(np.flatnonzero(hit_cells) % layout.n_data)]
    var = 10.0 ** (-float(sir_db) / 10.0) / n_active(layout)  # per-tone power a sample, Es = 1
    m = np.arange(layout.fft_len + layout.cp_len) - layout.cp_len
    tones = np.exp(2j * np.pi * np.outer(carriers, m) / layout.fft_len)             # [C, sym_len]
    amp = np.sqrt(var / 2) * (rng.standard_normal((n_ofdm, carriers.size))
                              + 1j * rng.standard_normal((n_ofdm, carriers.size)))
    return (amp @ tones).reshape(-1).astype(np.complex64)


def db_to_amplitude(level_db: float) -> float:
    return float(10.0 ** (float(level_db) / 20.0))


def quantize(x, bits: int, full_scale: float) -> np.ndarray:
    """Quantise complex samples to `bits` per rail with rails saturating at +-full_scale.

    Mid-rise uniform quantiser with 2**bits levels per rail at (m + 1/2) * step,
    step = 2 * full_scale / 2**bits (a two's-complement converter whose codes are read at their
    centres, so zero input gives no DC). Values beyond the rails saturate at the outermost level.
    NaN stays NaN (the receiver counts non-finite samples; the quantiser does not hide them).
    """
    bits = int(bits)
    if not 1 <= bits <= 24:
        raise ValueError(f"bits must be in 1..24, got {bits}")
    full_scale = float(full_scale)
    if not (np.isfinite(full_scale) and full_scale > 0):
        raise ValueError(f"full_scale must be a positive number, got {full_scale}")
    x = np.asarray(x)
    half_levels = 2 ** (bits - 1)
    step = full_scale / half_levels

    def rail(v):
        code = np.clip(np.floor(v / step), -half_levels, half_levels - 1)
        return ((code + 0.5) * step).astype(np.float32)

    out = rail(x.real) + 1j * rail(x.imag)
    return out.astype(np.complex64)


def quantization_noise_power(bits: int, full_scale: float) -> float:
    """Granular noise power of `quantize` on a complex signal inside the rails: 2 * step**2 / 12."""
    step = float(full_scale) / 2 ** (int(bits) - 1)
    return 2.0 * step ** 2 / 12.0


def clip(x, level: float) -> np.ndarray:
    """Soft limiter: |y| = min(|x|, level), phase of x kept. level <= 0 or inf -> unchanged copy."""
    x = np.asarray(x, dtype=np.complex64)
    level = float(level)
    if not (level > 0 and np.isfinite(level)):
        return x.copy()
    mag = np.abs(x)
    scale = np.where(mag > level, level / np.maximum(mag, np.finfo(np.float32).tiny), 1.0)
    return (x * scale).astype(np.complex64)


def ofdm_symbols(burst, fft_len: int, cp_len: int, start: int = 0) -> np.ndarray:
    """Cut a burst into [n, fft_len] OFDM symbol bodies (cyclic prefix dropped), from `start`."""
    burst = np.asarray(burst)
    sym_len = fft_len + cp_len
    n = (burst.size - start) // sym_len
    return burst[start:start + n * sym_len].reshape(n, sym_len)[:, cp_len:]


def oversample(symbols, factor: int) -> np.ndarray:
    """Band-limited interpolation of OFDM symbol bodies [n, N] by zero-padding their spectra:
    the continuous-time peaks a DAC's reconstruction filter will produce."""
    symbols = np.atleast_2d(np.asarray(symbols, dtype=np.complex128))
    factor = int(factor)
    if factor <= 1:
        return symbols
    n_fft = symbols.shape[1]
    spec = np.fft.fft(symbols, axis=1)
    padded = np.zeros((symbols.shape[0], n_fft * factor), dtype=np.complex128)
    half = n_fft // 2
    padded[:, :half] = spec[:, :half]
    padded[:, -(n_fft - half):] = spec[:, half:]
    return np.fft.ifft(padded, axis=1) * factor


def papr_db(symbols, oversampling: int = 1) -> np.ndarray:
    """PAPR of each OFDM symbol body: max |x|^2 / mean |x|^2, in dB (symbols with no power -> NaN)."""
    x = oversample(symbols, oversampling)
    power = np.abs(x) ** 2
    mean = power.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(np.where(mean > 0, power.max(axis=1) / mean, np.nan))


def ccdf(values, thresholds) -> np.ndarray:
    """P(value > threshold) for each threshold (NaN values ignored)."""
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return np.full(len(np.atleast_1d(thresholds)), np.nan)
    return 1.0 - np.searchsorted(v, np.asarray(thresholds, dtype=np.float64), side="right") / v.size
