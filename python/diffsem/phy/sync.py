"""Frame detection on the known preambles: a matched filter, plain numpy (no GNU Radio).

Schmidl & Cox correlates the received preamble with itself (its two equal halves): at 0 dB the
noise is in both factors and its 32-sample average is too noisy to separate frames from noise
(the metric's mean is about (SNR/(1+SNR))^2 = 0.25, its spread on noise reaches 0.2). This
detector correlates with the transmitted waveform instead (both preambles with their cyclic
prefixes, 160 samples, all known at the receiver), so only one factor is noisy.

Metric at sample t (the first sample of the first preamble's cyclic prefix):

    m(t) = sum_k |c_k(t)|^2 / E_k  /  sum_k e_k(t),    c_k(t) = sum_{n in seg k} x[t+n] conj(r[n])

over K = `segments` consecutive parts of the L = 160 reference samples r (E_k their energies,
e_k(t) the received energy under segment k; m = 0 where one e_k holds less than BALANCE of its
even share: a window that catches only the last few samples of a burst could score high). The
segments are combined without their phases so that a carrier offset that turns the phase across
the preamble does not cancel the sum (4 segments of 40 samples: -1.4 dB at half a subcarrier).
It is normalised by the received energy, so it does not depend on the gain: m is about
rho / (1 + rho) on a preamble (rho = SNR per sample; 0.45 at 0 dB, 0.3 at -3 dB) and about
segments / L = 0.025 on noise or on payload symbols, with a tail of a Gamma(segments) law:
P(m > 0.15) ~ 1e-7 per sample on noise. A detection is a local maximum above `threshold` within
+-one OFDM symbol (the first preamble's repetition gives side peaks at +-32 samples).

Fine carrier offset from the same correlations: the phase step between consecutive segments is
2 pi cfo seg_len / fft_len (unambiguous for |cfo| < fft_len / (2 seg_len) = 0.8 subcarrier).
The correlations are computed block-wise with FFTs (overlap-save): a few FFTs per block of
samples, tens of ns per sample.
"""
from __future__ import annotations

import math

import numpy as np

try:  # single-precision FFTs (numpy's are double only): half the time
    import scipy.fft as _fft
except ImportError:  # pragma: no cover - scipy is in requirements.txt
    import numpy.fft as _fft

from diffsem.phy.framing import sync_words, tx_scale
from diffsem.phy.ofdm import DEFAULT_LAYOUT, OfdmLayout

DEFAULT_MF_THRESHOLD = 0.15
BALANCE = 0.25  # each segment holds at least this share of its even part of the window's energy
# Samples the detector takes as 0: NaN/Inf, and magnitudes above MAX_SAMPLE (receivers deliver
# |x| <= 1, int16 recordings <= 32768): its float32 squares overflow near 2e19, and long before
# that the rounding of an FFT block holding such samples buries the frames in the same block.
# The frames around them must still be found (a frame holding them is the receiver's to refuse).
MAX_SAMPLE = 1e9


def usable_samples(x: np.ndarray) -> np.ndarray:
    """`x` with NaN/Inf samples and those above MAX_SAMPLE set to 0 (a copy)."""
    with np.errstate(invalid="ignore", over="ignore"):
        keep = np.isfinite(x) & (np.abs(x) <= MAX_SAMPLE)
    return np.where(keep, x, 0).astype(np.complex64)


def preamble_samples(layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """The two preambles as ofdm_analog_tx sends them (cyclic prefixes included, TX scaling)."""
    rows = np.asarray(sync_words(layout))
    time = layout.fft_len * np.fft.ifft(np.fft.ifftshift(rows, axes=1), axis=1) * tx_scale(layout)
    return np.concatenate([np.concatenate((s[-layout.cp_len:], s)) for s in time]).astype(np.complex64)


class PreambleDetector:
    """Streaming matched-filter detector. `scan(samples)` takes consecutive samples and returns
    the detections confirmed so far: a list of (absolute index of the frame's first sample,
    fine CFO in subcarrier spacings, metric). `horizon`: every frame starting before it has been
    reported (detections arrive about L + fft_len + cp_len samples after the frame start)."""

    def __init__(self, layout: OfdmLayout = DEFAULT_LAYOUT, threshold: float = DEFAULT_MF_THRESHOLD,
                 segments: int = 4, block: int = 4096):
        self.layout = layout
        self.threshold = float(threshold)
        ref = preamble_samples(layout).astype(np.complex128)
        self.L = ref.size
        self.seg_len = self.L // segments
        self.segments = segments
        self.window = layout.fft_len + layout.cp_len   # a peak is the maximum within +- this
        self.nfft = 1 << int(math.ceil(math.log2(max(block, 4 * self.L))))
        self.hop = self.nfft - self.L + 1              # metric values per FFT block
        filt = np.zeros((segments, self.nfft), np.complex128)
        self.seg_energy = np.empty(segments)
        self.bounds = []
        for k in range(segments):
            part = np.zeros(self.L, np.complex128)
            sl = slice(k * self.seg_len, self.L if k == segments - 1 else (k + 1) * self.seg_len)
            self.bounds.append((sl.start, sl.stop))
            part[sl] = ref[sl]
            self.seg_energy[k] = float(np.sum(np.abs(part) ** 2))
            # correlation = convolution with the conjugated, time-reversed reference
            filt[k, :self.L] = np.conj(part[::-1])
        self._filt = _fft.fft(filt, axis=1).astype(np.complex64)
        self._inv_energy = (1.0 / self.seg_energy).astype(np.float32)
        self._x = np.zeros(0, np.complex64)     # samples not yet fully used (from index self._x0)
        self._x0 = 0
        self._m = np.zeros(0)                   # metric values from index self._m0
        self._hot_pos = np.zeros(0, np.int64)   # absolute positions where the metric reaches the
        self._hot_c = np.zeros((segments, 0), np.complex128)  # threshold, and their correlations
        self._m0 = 0
        self._last_peak = -(1 << 62)
        self.horizon = 0

    def _metric(self, x: np.ndarray):
        """Metric for every t with x[t:t+L] inside x (len(x) - L + 1 values), and the segment
        correlations where it reaches the threshold: (metric, positions, correlations [segments, k]).
        Only those positions can be or block a detection, so the others keep neither their
        correlations nor the segment-balance check (both full-length passes before)."""
        n_out = x.size - self.L + 1
        with np.errstate(invalid="ignore", over="ignore"):
            sq = np.square(x.view(np.float32).reshape(-1, 2))
            cs = np.zeros(x.size + 1)
            np.cumsum(sq[:, 0] + sq[:, 1], dtype=np.float64, out=cs[1:])
        if not cs[-1] <= MAX_SAMPLE ** 2:  # NaN/Inf or huge samples (or a sum beyond it): the rare path
            return self._metric(usable_samples(x))
        total = np.maximum(cs[self.L:self.L + n_out] - cs[:n_out], 1e-30)
        m = np.empty(n_out)
        hot_pos, hot_c = [], []
        # overlap-save: block b holds samples b * hop .. b * hop + nfft (zeros past the end) and
        # gives hop metric values. The forward FFTs of all blocks in one call (pocketfft runs
        # several transforms per SIMD pass: ~4x less per block than one at a time); the rest
        # block by block, whose arrays stay in cache.
        blocks = -(-n_out // self.hop)
        padded = np.zeros((blocks - 1) * self.hop + self.nfft, np.complex64)
        padded[:x.size] = x
        spectra = _fft.fft(np.lib.stride_tricks.as_strided(
            padded, (blocks, self.nfft), (self.hop * padded.itemsize, padded.itemsize)), axis=1)
        for b, lo in enumerate(range(0, n_out, self.hop)):
            hi = min(lo + self.hop, n_out)
            y = _fft.ifft(spectra[b][None, :] * self._filt, axis=1)[:, self.L - 1:self.L - 1 + hi - lo]
            # plain ufunc passes: 4x faster than einsum here, and no BLAS (its threads spin on a
            # second core)
            sq = np.square(y.view(np.float32).reshape(self.segments, hi - lo, 2))
            pw = sq[..., 0] + sq[..., 1]
            num = self._inv_energy[0] * pw[0]
            for k in range(1, self.segments):
                num += self._inv_energy[k] * pw[k]
            block = num / total[lo:hi]
            m[lo:hi] = block
            hot = np.flatnonzero(block >= self.threshold)
            if hot.size:
                hot_pos.append(hot + lo)
                hot_c.append(y[:, hot])
        if not hot_pos:
            return m, np.zeros(0, np.int64), np.zeros((self.segments, 0), np.complex64)
        pos = np.concatenate(hot_pos)
        c = np.concatenate(hot_c, axis=1)
        # a preamble spreads its energy evenly over the segments; a window that holds the edge of
        # a burst (or of a noise burst after exact zeros) does not, and its few samples can
        # correlate by chance: not a detection
        e_min = None
        for lo_k, hi_k in self.bounds:
            e_k = cs[hi_k + pos] - cs[lo_k + pos]
            e_min = e_k if e_min is None else np.minimum(e_min, e_k)
        edge = e_min < BALANCE * total[pos] / self.segments
        m[pos[edge]] = 0.0
        return m, pos[~edge], c[:, ~edge]

    def cfo_of(self, c: np.ndarray) -> float:
        """Fine CFO (subcarrier spacings) from the segment correlations at a peak."""
        step = np.sum(c[1:] * np.conj(c[:-1]))
        return float(np.angle(step)) * self.layout.fft_len / (2.0 * math.pi * self.seg_len)

    def scan(self, samples: np.ndarray) -> list:
        x = np.concatenate((self._x, np.asarray(samples, dtype=np.complex64)))
        found = []
        if x.size >= self.L:
            m, pos, c = self._metric(x)
            # metric index i of this call is absolute position self._x0 + i
            assert self._x0 == self._m0 + self._m.size
            self._m = np.concatenate((self._m, m))
            self._hot_pos = np.concatenate((self._hot_pos, pos + self._x0))
            self._hot_c = np.concatenate((self._hot_c, c), axis=1)
            keep_x = self.L - 1
            self._x0 += x.size - keep_x
            self._x = x[x.size - keep_x:]
        else:
            self._x = x
        w = self.window
        # positions whose +-w neighbourhood is known: [m0 + w, m0 + len - w)
        n = self._m.size
        if n > 2 * w:
            inner = self._m[w:n - w]
            cand = np.flatnonzero(inner >= self.threshold) + w
            for i in cand.tolist():
                pos = self._m0 + i
                if pos - self._last_peak <= w:
                    continue
                if self._m[i] >= self._m[i - w:i + w + 1].max():
                    self._last_peak = pos
                    j = int(np.searchsorted(self._hot_pos, pos))
                    found.append((pos, self.cfo_of(self._hot_c[:, j]), float(self._m[i])))
            drop = n - 2 * w
            self._m = self._m[drop:]
            self._m0 += drop
            old = int(np.searchsorted(self._hot_pos, self._m0))
            self._hot_pos, self._hot_c = self._hot_pos[old:], self._hot_c[:, old:]
        self.horizon = self._m0 + w
        return found
