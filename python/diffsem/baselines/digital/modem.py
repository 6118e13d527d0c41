"""Gray QAM with unit average power, the max-log LLR demapper, and the modes (modulation, code
rate) with the SNR thresholds link adaptation picks them by.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _gray_pam(bits_per_axis: int) -> np.ndarray:
    """Amplitude of each bit pattern (MSB first) on one axis, Gray-coded, unnormalised."""
    n = 1 << bits_per_axis
    levels = 2 * np.arange(n) - (n - 1)                  # -(n-1) .. n-1
    amp = np.empty(n)
    for i in range(n):
        amp[i ^ (i >> 1)] = levels[i]                      # gray(i) -> i-th level
    return -amp if bits_per_axis == 1 else amp             # BPSK/QPSK: bit 0 -> +1


def constellation(bits_per_symbol: int) -> np.ndarray:
    """Complex points indexed by the symbol's bits read MSB first (I bits then Q bits)."""
    if bits_per_symbol == 1:
        return np.array([1.0 + 0j, -1.0 + 0j])
    if bits_per_symbol % 2:
        raise ValueError(f"no square QAM with {bits_per_symbol} bits per symbol")
    half = bits_per_symbol // 2
    pam = _gray_pam(half)
    idx = np.arange(1 << bits_per_symbol)
    pts = pam[idx >> half] + 1j * pam[idx & ((1 << half) - 1)]
    return pts / np.sqrt(np.mean(np.abs(pts) ** 2))


def bits_to_indices(bits: np.ndarray, bits_per_symbol: int) -> np.ndarray:
    """[..., n*bps] -> [..., n] symbol indices (MSB first)."""
    shape = bits.shape[:-1] + (-1, bits_per_symbol)
    weights = 1 << np.arange(bits_per_symbol - 1, -1, -1)
    return (bits.reshape(shape).astype(np.int64) * weights).sum(-1)


def demap_llr(symbols: np.ndarray, noise_var: np.ndarray, bits_per_symbol: int) -> np.ndarray:
    """Max-log LLR log P(b=0)/P(b=1) of every bit: symbols [B, n] complex, noise_var [B, n]
    (complex noise variance after equalisation) -> [B, n*bps]."""
    pts = constellation(bits_per_symbol)
    d2 = np.abs(symbols[..., None] - pts) ** 2                            # [B, n, M]
    idx = np.arange(len(pts))
    llr = np.empty(symbols.shape + (bits_per_symbol,))
    for j in range(bits_per_symbol):
        one = ((idx >> (bits_per_symbol - 1 - j)) & 1).astype(bool)
        llr[..., j] = d2[..., one].min(-1) - d2[..., ~one].min(-1)
    llr /= np.maximum(np.asarray(noise_var, np.float64), 1e-12)[..., None]
    return llr.reshape(symbols.shape[:-1] + (-1,))


MODULATIONS = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6}


@dataclass(frozen=True)
class Mode:
    modulation: str
    rate: str

    @property
    def name(self) -> str:
        return f"{self.modulation}-{self.rate}"

    @property
    def bits_per_symbol(self) -> int:
        return MODULATIONS[self.modulation]

    @property
    def code_rate(self) -> float:
        n, d = self.rate.split("/")
        return int(n) / int(d)


MODES = tuple(Mode(m, r) for m, r in (
    ("bpsk", "1/2"), ("bpsk", "3/4"), ("qpsk", "1/2"), ("qpsk", "3/4"), ("16qam", "1/2"),
    ("16qam", "3/4"), ("64qam", "2/3"), ("64qam", "3/4"), ("64qam", "5/6")))

# SNR (Es/N0, dB) at which a k=128 frame decodes with frame error rate <= 1% on AWGN, measured
# with this module's Viterbi: `diffsem baseline digital --calibrate --k 128` (seed 0,
# 2000 random payloads per point, 0.5 dB grid, interleaver and scrambler included; 3 min on 2
# shared cores). bpsk-1/2 measured -0.5 before the scrambler, 0.0 with it (sampling noise: the
# random draws differ); its threshold changes nothing, as it is also the fallback mode below it.
MODE_THRESHOLDS_DB = {
    "bpsk-1/2": 0.0, "bpsk-3/4": 2.5, "qpsk-1/2": 3.0, "qpsk-3/4": 6.0, "16qam-1/2": 9.0,
    "16qam-3/4": 12.5, "64qam-2/3": 16.5, "64qam-3/4": 18.0, "64qam-5/6": 19.5,
}


def mode_by_name(name: str) -> Mode:
    for m in MODES:
        if m.name == name:
            return m
    raise ValueError(f"unknown mode {name!r}: choose one of {[m.name for m in MODES]}")


def mode_for_snr(snr_db: float, thresholds: dict | None = None, margin_db: float = 0.0) -> Mode | None:
    """Fastest mode whose threshold + margin_db is <= snr_db; None below the slowest mode's
    (the transmitter still sends its most robust mode: see DigitalScheme). A margin covers a
    receiver that loses some SNR to channel estimation (the OFDM flowgraph: ~1 dB)."""
    thresholds = thresholds or MODE_THRESHOLDS_DB
    ok = [m for m in MODES if thresholds[m.name] + margin_db <= snr_db]
    return max(ok, key=lambda m: m.bits_per_symbol * m.code_rate) if ok else None
