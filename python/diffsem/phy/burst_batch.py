"""The burst receiver with its per-frame work done for many frames at once (plain numpy, no GNU
Radio): what ofdm_analog_rx runs. diffsem.phy.burst_rx.BurstReceiver is the reference it must
equal (tests/core/test_phy_rx_batch.py: same frames, symbols, noise variances, headers and drops
on recorded streams with AWGN, carrier offsets and selective fading).

Why: the reference spends ~1.5 ms of CPU per 128-symbol frame, almost all of it in a hundred or
so numpy calls on arrays of 52 carriers, whose fixed cost (~5 us each) dwarfs their arithmetic.
Here each step is one call over every frame the buffer holds: the FFTs of all their preambles and
header copies, the integer carrier offsets, the channel fits, the header combining and CRCs, the
data-aided refinement, then the payload FFTs and estimates of all frames of one length. The
scalar work left per frame is bookkeeping (its events and result objects).

Same decisions as the reference, in the same order: `_push` is the reference's loop; its header
stage is computed, on first need, for every trigger whose header samples are in (those later
found inside an accepted frame are dropped unused), and payload estimates are deferred to the end
of the push. A frame off the common path (non-finite samples, a header that needs the soft CRC
chase or salvage, interfered carriers, impulse-hit, dead or cut symbols, a burst that ends before
its header's length or where another frame's header starts) is handed to the reference's own
per-frame code, so rare cases share one implementation. The burst-end search (a CUSUM over the
payload pilots) and the sampling-clock drift are measured on every frame in the batch; a frame
with a drift has it turned back there too. A cut burst moves the receiver's busy_until back, which
decides whether the triggers behind it are looked at: a trigger that the pending payload estimates
could free is only judged once they are settled. Differences from the
reference are rounding only (summation order of batched reductions): ~1e-16 relative inside,
float32 outputs equal to an ulp or two.
"""
from __future__ import annotations

import math

import numpy as np

from diffsem import phy
from diffsem.phy.burst_rx import (HEADER_FIELDS_BITS, MAX_FILL_ERRORS, BurstReceiver, ReceivedFrame,
                                  _Header, capped_products)
from diffsem.phy.framing import (BURST_END_LLR, CARRIER_FLAG, CLOCK_SIGNIFICANT, DEAD_SYMBOL, DEAD_TAIL,
                                  DEAD_TAIL_CELLS, LIVE_PILOT_FLOOR, MAX_DRIFT_PHASE_VAR, SYMBOL_FLAG, crc8_rows,
                                  header_phase_search)


def fit_phase_slope_rows(corr: np.ndarray, t: np.ndarray) -> np.ndarray:
    """phy.fit_phase_slope for each row of `corr` [F, T] (t [T], or [F, T]: each row its own
    times): the same unwrapping by prediction, one step per column for all rows at once."""
    corr = np.asarray(corr, dtype=np.complex128)
    slope = np.zeros(corr.shape[0])
    num = np.zeros_like(slope)
    den = np.zeros_like(slope)
    t = np.asarray(t, dtype=np.float64)
    for k, tk in enumerate(t.tolist() if t.ndim == 1 else t.T):
        c = corr[:, k]
        w = np.abs(c)
        predicted = slope * tk
        phase = predicted + np.angle(c * np.exp(-1j * predicted))
        num += w * tk * phase
        den += w * tk * tk
        slope = num / np.maximum(den, 1e-30)
    return slope


class _Fits:
    """Channel fits of F frames (FrameEstimator.smooth_channel's tuple, one array per field)."""

    def __init__(self, fitted, leverage, resid_e, dof, n_taps, centre, chosen):
        self.fitted, self.leverage, self.resid_e, self.dof = fitted, leverage, resid_e, dof
        self.n_taps, self.centre, self.chosen = n_taps, centre, chosen

    def selection(self, i: int) -> tuple:
        return (float(self.centre[i]), self.chosen[i])

    def take(self, rows, other: "_Fits"):
        """Overwrite `rows` with the fits in `other` (fitted for exactly those rows)."""
        for name in ("fitted", "leverage", "resid_e", "dof", "n_taps", "centre"):
            getattr(self, name)[rows] = getattr(other, name)
        for r, c in zip(np.asarray(rows).tolist(), other.chosen):
            self.chosen[r] = c


class BatchReceiver(BurstReceiver):
    """BurstReceiver (same constructor, `push`, events and state) that processes the frames of a
    push together. Falls back to the reference loop as a whole where the batched steps do not
    apply (phase_tracking other than "linear", or data_aided off)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batched = self.data_aided and self.estimator.phase_tracking == "linear"
        est = self.estimator
        n = self.layout.fft_len
        self._act_bins = self.active + self.half
        self._pilot_bins = np.asarray(est.pilots) + self.half
        self._data_bins = np.asarray(est.data) + self.half
        self._cell_bins = self.cells + self.half
        self._unshift = phy.header_unshift_index(self.repeats, self.layout)
        self._omega = 2.0 * np.pi * self.active / n
        self._weights = 1 << np.arange(12)
        self._memo: dict = {}
        self._deferred: list = []  # (event slot, _Header, max_live) of payloads not yet estimated
        self._events: list = []    # the event list of the push those slots are in
        self._pair_a, self._pair_b = est._pairs[:, 0], est._pairs[:, 1]
        self._omega_cells = 2.0 * np.pi * np.asarray(est.serializer_carriers, dtype=np.float64) / n

    # ------------------------------------------------------------------ the reference loop's hooks
    def _push(self, samples, triggers=(), cfos=()):
        if not self.batched:
            return super()._push(samples, triggers, cfos)
        self._memo = {}
        self._deferred = []
        return super()._push(samples, triggers, cfos)

    def _next_header(self, start, cfo, events, from_mf):
        if not self.batched:
            return super()._next_header(start, cfo, events, from_mf)
        key = (start, cfo, from_mf)
        if key not in self._memo:
            self._memo.update(self._headers([c for c in self._ready_candidates(key) if c not in self._memo]))
        hdr, event = self._memo.pop(key)
        if event is not None:
            events.append(event)
        return hdr

    def _payload(self, hdr, max_live, events):
        if not self.batched:
            return super()._payload(hdr, max_live, events)
        self._deferred.append((len(events), hdr, max_live))
        self._events = events
        events.append(None)  # filled in by _settle

    def _complete(self, events):
        self._settle()

    def _inside_frame(self, trig):
        if trig >= self.busy_until:
            return False
        if self._deferred:
            # busy_until was set by the last deferred frame: were its burst cut (est.cut), it
            # would move back as far as that frame's payload start, less a symbol
            hdr = self._deferred[-1][1]
            if trig >= hdr.start + (self.header_syms - 1) * self.sym_len:
                self._settle()
        return trig < self.busy_until

    def _settle(self):
        """Estimate every deferred payload (the frames of one length together) into its event
        slot; the last one's cut burst moves busy_until back (BurstReceiver._cut_back): it is
        the frame that set busy_until, the earlier ones' values have been overwritten since."""
        if not self._deferred:
            return
        deferred, self._deferred = self._deferred, []
        events = self._events
        groups: dict = {}
        for slot, hdr, max_live in deferred:
            if max_live < self.layout.n_ofdm_symbols(hdr.n_symbols):  # another frame starts inside
                events[slot] = BurstReceiver._estimate_payload(self, hdr, max_live)
            else:
                groups.setdefault(hdr.n_symbols, []).append((slot, hdr))
        for n_symbols, items in groups.items():
            for slot, event in zip((s for s, _ in items), self._payloads([h for _, h in items], n_symbols)):
                events[slot] = event
        slot, hdr, _ = deferred[-1]
        if events[slot][0] == "frame":
            self._cut_back(hdr, events[slot][1].estimate)

    def _headers_inside(self, cands):
        """The candidates' headers computed together (kept for the loop, which takes the same
        candidates later)."""
        if not self.batched:
            return super()._headers_inside(cands)
        missing = [c for c in dict.fromkeys(cands) if c not in self._memo]
        if missing:
            self._memo.update(self._headers(missing))
        return [self._memo[c][0] for c in cands]

    def _ready_candidates(self, first) -> list:
        """`first` and the pending triggers after it whose header samples are in (as the loop
        would take them were no frame accepted in between)."""
        out = [first]
        for trig, cfo, from_mf in self.pending:
            start = self._header_start(trig)
            if trig < self.busy_until or start - self.cp < self.buf_start:
                continue
            if not self._header_in(start):
                break
            out.append((start, cfo, from_mf))
        return out

    # ------------------------------------------------------------------ batched steps
    def _spectra(self, start: np.ndarray, cfo: np.ndarray, first: int, count: int) -> np.ndarray:
        """_symbols for F frames at once: [F, count, fft_len]."""
        n, sym = self.layout.fft_len, self.sym_len
        lo = np.asarray(start, dtype=np.int64) - self.buf_start + first * sym + self.cp
        offs = (sym * np.arange(count))[:, None] + np.arange(n)[None, :]
        block = self.buf[lo[:, None, None] + offs[None]]
        rot = np.exp((-2j * np.pi / n * np.asarray(cfo, dtype=np.float64))[:, None, None]
                     * self._win[first:first + count][None])
        return np.fft.fft(block * rot, axis=2)[:, :, self._fftshift]

    def _carrier_offsets(self, spec: np.ndarray) -> np.ndarray:
        idx = self._offset_idx
        prod = capped_products(spec[:, 0, :][:, idx] * np.conj(spec[:, 1, :][:, idx]))
        m = np.abs(np.einsum("fcj,j->fc", prod, np.conj(self._s12)))
        return self._offsets[np.argmax(m, axis=1)]

    def _refine(self, h: np.ndarray, tau: np.ndarray, max_step: float, steps: int) -> np.ndarray:
        """FrameEstimator.refine_delay (carrier offset 0) for every row of h."""
        w = self._omega
        w2 = w * w
        tau = np.array(tau, dtype=np.float64)
        alive = np.ones(tau.size, bool)
        for _ in range(steps):
            e = h * np.exp(1j * w[None, :] * tau[:, None])
            s0 = e.sum(axis=1)
            s1 = 1j * (e @ w)
            s2 = -(e @ w2)
            d1 = 2.0 * (np.conj(s0) * s1).real
            d2 = 2.0 * (np.abs(s1) ** 2 + (np.conj(s0) * s2).real)
            alive &= d2 < 0  # not at a maximum: that frame keeps its estimate
            if not alive.any():
                break
            step = np.divide(-d1, d2, out=np.zeros_like(d1), where=alive)
            tau = np.where(alive, tau + np.clip(step, -max_step, max_step), tau)
        return tau

    def _delays(self, h: np.ndarray) -> np.ndarray:
        """FrameEstimator.delay_of (carrier offset 0) for every row of h."""
        est = self.estimator
        n, over = self.layout.fft_len, est._oversample
        grid = np.zeros((h.shape[0], n * over), dtype=np.complex128)
        grid[:, self.active % (n * over)] = h
        spectrum = np.abs(np.fft.ifft(grid, axis=1))
        cp = max(self.layout.cp_len, 1)
        idx = np.arange(-cp * over, 2 * cp * over + 1)
        tau = idx[np.argmax(spectrum[:, idx % (n * over)], axis=1)] / over
        return self._refine(h, tau, 0.5 / over, 2)

    def _smooth(self, h_ls: np.ndarray, starts=None) -> _Fits:
        """FrameEstimator.smooth_channel (carrier offset 0) for every row of h_ls [F, n_active]:
        the greedy tap selection runs for all frames together, grouped by their chosen taps."""
        est = self.estimator
        f_n = h_ls.shape[0]
        if starts is None:
            centre = self._delays(h_ls)
            chosen = [(est.taps_before,)] * f_n
        else:
            centre = self._refine(h_ls, np.array([s[0] for s in starts]), 0.25, 1)
            chosen = [s[1] for s in starts]
        rot = np.exp(2j * np.pi * self.active[None, :] * centre[:, None] / self.layout.fft_len)
        h = h_ls * rot
        n_win = est.taps_before + est.taps_after + 1
        n_act = len(self.active)
        resid = np.empty_like(h)
        energy = np.empty(f_n)

        def refit(rows):
            for key, members in _group(chosen, rows).items():
                hat = est._fit_tables(0, key)[1]
                r = h[members] - np.einsum("ij,fj->fi", hat, h[members])
                resid[members] = r
                energy[members] = np.sum(np.abs(r) ** 2, axis=1)

        refit(range(f_n))
        active = [i for i in range(f_n) if len(chosen[i]) < n_win]
        while active:
            grown = []
            for key, members in _group(chosen, active).items():
                trials, proj = est._trial_tables(0, key)
                energies = energy[members][:, None] - np.abs(np.einsum("ij,fj->fi", proj, resid[members])) ** 2
                j = np.argmin(energies, axis=1)
                best = energies[np.arange(len(members)), j]
                better = best < energy[members]
                best = np.where(better, best, energy[members])
                noise_per_dof = best / max(n_act - len(key) - 1, 1)
                take = better & ~(energy[members] - best < est.tap_threshold * noise_per_dof)
                for m, ok, jj, b in zip(members, take.tolist(), j.tolist(), best.tolist()):
                    if ok:
                        chosen[m] = trials[jj]
                        energy[m] = b
                        grown.append(m)
            if grown:
                refit_rows = grown
                saved = energy[refit_rows].copy()
                refit(refit_rows)
                energy[refit_rows] = saved  # the reference keeps the trial's energy, refits only the residual
            active = [i for i in grown if len(chosen[i]) < n_win]
        fitted = np.empty_like(h)
        leverage = np.empty((f_n, n_act))
        for key, members in _group(chosen, range(f_n)).items():
            _, hat, lev, _ = est._fit_tables(0, key)
            fitted[members] = np.einsum("ij,fj->fi", hat, h[members]) * np.conj(rot[members])
            leverage[members] = lev
        resid_e = np.sum(np.abs(h_ls - fitted) ** 2, axis=1)
        n_taps = np.array([len(c) for c in chosen])
        return _Fits(fitted, leverage, resid_e, n_act - n_taps, n_taps, centre, chosen)

    def _preamble_fits(self, spec: np.ndarray, starts=None):
        """_preamble_fit for F frames: (LS on the active carriers [F, n_active], _Fits)."""
        ls = spec[:, 1, self._act_bins] / self.sync2[self._act_bins]
        return ls, self._smooth(ls, starts)

    def _retimes(self, fits: _Fits, rows) -> np.ndarray:
        """BurstReceiver._retime of the given rows' fits."""
        rows = np.asarray(rows, dtype=np.int64)
        taps = [fits.chosen[i] for i in rows.tolist()]
        tb = self.estimator.taps_before
        lo = (fits.centre[rows] + np.array([min(c) for c in taps])) - tb
        hi = (fits.centre[rows] + np.array([max(c) for c in taps])) - tb
        shift = np.rint(lo - (self.cp - (hi - lo)) / 2.0).astype(np.int64)
        shift = np.clip(shift, -self.cp, self.cp)
        return np.where(np.abs(shift) > 2, shift, 0)

    def _combine(self, spec: np.ndarray, fitted: np.ndarray):
        """phy.combine_header (carrier offset 0) for F frames: (soft bits [F, n_data], slope, quality)."""
        est = self.estimator
        copies = spec[:, 2:, :]
        h_p = fitted[:, self._idx_p]
        corr = (copies[:, :, self._pilot_bins] * np.conj(h_p * est.pilot_values)[:, None, :]).sum(axis=2)
        t = 1.0 + np.arange(self.repeats)
        slope = fit_phase_slope_rows(corr, t)
        h_d = fitted[:, self._idx_d]
        gain = np.abs(h_d) ** 2
        z = copies[:, :, self._data_bins] * self._scrambler[None] * np.conj(h_d)[:, None, :]
        rows = np.arange(self.repeats)[:, None]
        slope, num = header_phase_search(z[:, rows, self._unshift], t, slope)
        den = gain[:, self._unshift].sum(axis=1)
        bits = num / np.maximum(den, 1e-30)
        quality = np.sum(bits.real ** 2, axis=1) / np.maximum(np.sum(bits.imag ** 2, axis=1), 1e-30)
        return bits, slope, quality

    def _parse(self, soft: np.ndarray):
        """decode_header's hard-decision step for F frames: (passed, n_symbols, seq, sent bits)."""
        n_data = self.layout.n_data
        bits = soft > 0
        fill_ok = np.count_nonzero(bits[:, HEADER_FIELDS_BITS:n_data], axis=1) <= MAX_FILL_ERRORS
        bits[:, HEADER_FIELDS_BITS:] = False
        b = bits.astype(np.int64)
        n_symbols = b[:, :12] @ self._weights
        seq = b[:, 12:24] @ self._weights
        crc = b[:, 24:32] @ self._weights[:8]
        data = np.stack((n_symbols & 0xFF, n_symbols >> 8, seq & 0xFF, seq >> 8), axis=1)
        ok = fill_ok & (n_symbols > 0) & (n_symbols <= phy.MAX_SYMBOLS_PER_FRAME) & (crc8_rows(data) == crc)
        return ok, n_symbols, seq, bits

    def _data_aided_rows(self, spec, ls, fitted, slope, bits):
        """_data_aided for F frames: (mean LS [F, n_active], slope, anchor correlations, spread)."""
        f_n = spec.shape[0]
        base = np.where(bits, 1.0, -1.0)
        x = np.empty((f_n, self.repeats, self.active.size))
        x[:, :, self._idx_d] = base[:, self._copy_gather] * self._scrambler[None]
        x[:, :, self._idx_p] = self._pilot_row[None]
        y = spec[:, 2:, self._act_bins]
        corr = np.sum(y * np.conj(fitted)[:, None, :] * x, axis=2)
        t = 1.0 + np.arange(self.repeats)
        slope = fit_phase_slope_rows(corr * np.exp(-1j * slope[:, None] * t[None, :]), t) + slope
        turn = np.exp(-1j * slope[:, None] * t[None, :])
        each = np.concatenate((ls[:, None, :], y * x * turn[:, :, None]), axis=1)
        mean = each.mean(axis=1)
        spread = np.sum(np.abs(each - mean[:, None, :]) ** 2, axis=1)
        return mean, slope, corr * turn, spread

    def _headers(self, cands: list) -> dict:
        """The header stage (BurstReceiver._header) of every candidate (start, cfo, from_mf):
        {candidate: (_Header or None, event or None)}."""
        out = {}
        hs, sym, cp = self.header_syms, self.sym_len, self.cp
        early_mf = cp // 2
        # a candidate whose windows could touch a non-finite sample goes the reference way
        lo = np.array([c[0] - (early_mf if c[2] else 0) for c in cands], dtype=np.int64) - self.buf_start
        span = hs * sym + cp + early_mf
        region = self.buf[np.minimum(lo[:, None] + np.arange(span)[None, :], self.buf.size - 1)]
        finite = np.isfinite(region).all(axis=1)
        batch = []
        for c, ok in zip(cands, finite.tolist()):
            if ok:
                batch.append(c)
            else:
                out[c] = self._reference_header(c)
        if not batch:
            return out
        f_n = len(batch)
        from_mf = np.array([c[2] for c in batch])
        early = np.where(from_mf, early_mf, 0)
        start = np.array([c[0] for c in batch], dtype=np.int64) - early
        cfo = np.array([c[1] for c in batch], dtype=np.float64)
        spec = self._spectra(start, cfo, 0, hs)
        if self.max_carr_offset > 0:
            c_off = self._carrier_offsets(spec)
            moved = np.flatnonzero(c_off != 0)
            if moved.size:
                cfo[moved] += c_off[moved]
                spec[moved] = self._spectra(start[moved], cfo[moved], 0, hs)
        ls, fits = self._preamble_fits(spec)
        # a preamble with interfered carriers (phy.preamble_interference, at any fit the reference
        # makes) goes the reference way, which fits and combines without them
        interfered = phy.preamble_interference(ls, fits.fitted).any(axis=1)

        def redo(rows):
            spec[rows] = self._spectra(start[rows], cfo[rows], 0, hs)
            ls_r, fits_r = self._preamble_fits(spec[rows])
            ls[rows] = ls_r
            fits.take(rows, fits_r)
            interfered[rows] |= phy.preamble_interference(ls_r, fits_r.fitted).any(axis=1)

        mf_rows = np.flatnonzero(from_mf)
        if mf_rows.size:
            multi = (fits.n_taps[mf_rows] > 1) | (self._retimes(fits, mf_rows) != 0)
            back = mf_rows[multi]
            if back.size:
                start[back] += early[back]
                redo(back)
        shift = self._retimes(fits, range(f_n))
        moved = np.flatnonzero(shift)
        if moved.size:
            start[moved] += shift[moved]
            redo(moved)
        explained = 1.0 - fits.resid_e / np.maximum(np.sum(np.abs(ls) ** 2, axis=1), 1e-30)
        soft, slope, quality = self._combine(spec, fits.fitted)
        passed, n_symbols, seq, bits = self._parse(soft.real)
        keep = []
        for i, c in enumerate(batch):
            fail = self._header_failure(float(explained[i]))
            if interfered[i]:
                out[c] = self._reference_header(c)
            elif fail is None:
                out[c] = (None, ("false_trigger", "no preamble where the detector triggered"))
            elif not np.isfinite(fits.fitted[i]).all():
                out[c] = self._reference_header(c)
            elif quality[i] < self.min_header_quality:
                out[c] = (None, (fail, "header symbols are not BPSK"))
            elif not passed[i]:
                out[c] = self._reference_header(c)  # the soft CRC chase, or salvage
            else:
                keep.append(i)
                self._last_seq = int(seq[i])  # in stream order: where a later salvage looks first
        if not keep:
            return out
        k = np.asarray(keep)
        selection = [fits.selection(i) for i in keep]
        spec, ls, cfo, start, bits = spec[k], ls[k], cfo[k], start[k], bits[k]
        fitted, resid_e, dof = fits.fitted[k], fits.resid_e[k], fits.dof[k]
        n = self.layout.fft_len
        mean, slope, anchors, spread = self._data_aided_rows(spec, ls, fitted, slope[k], bits)
        # the residual CFO's inter-carrier interference against the noise (see _header)
        residual = slope * n / (2.0 * math.pi * self.sym_len)
        snr = np.mean(np.abs(fitted) ** 2, axis=1) * np.maximum(dof, 1) / np.maximum(resid_e, 1e-30)
        again = np.flatnonzero((math.pi * residual) ** 2 / 3.0 * snr > 0.01)
        if again.size:
            cfo[again] += residual[again]
            spec_a = self._spectra(start[again], cfo[again], 0, hs)
            ls_a, fits_a = self._preamble_fits(spec_a, [selection[i] for i in again.tolist()])
            m_a, s_a, a_a, sp_a = self._data_aided_rows(spec_a, ls_a, fits_a.fitted, np.zeros(again.size), bits[again])
            mean[again], slope[again], anchors[again], spread[again] = m_a, s_a, a_a, sp_a
        residual = slope * n / (2.0 * math.pi * self.sym_len)
        ls_taps = np.zeros((len(keep), n), dtype=np.complex128)
        ls_taps[:, self._act_bins] = mean * np.exp(-2j * math.pi * residual * (self.sym_len + self.cp + (n - 1) / 2.0) / n)[:, None]
        t = 1.0 + np.arange(self.repeats)
        training = 1 + self.repeats
        cfo_out = (cfo + residual).tolist()
        for r, i in enumerate(keep):
            out[batch[i]] = (_Header(int(start[r]), int(n_symbols[i]), int(seq[i]), cfo_out[r], ls_taps[r], training,
                                     selection[r], (t, anchors[r]), (spread[r], self.repeats)), None)
        return out

    def _reference_header(self, cand):
        events = []
        hdr = BurstReceiver._header(self, cand[0], cand[1], events, cand[2])
        return hdr, (events[0] if events else None)

    # ------------------------------------------------------------------ payloads
    def _payloads(self, hdrs: list, n_symbols: int) -> list:
        """The payload events (BurstReceiver._payload) of frames of one length, in order."""
        n_ofdm = self.layout.n_ofdm_symbols(n_symbols)
        spec = self._spectra(np.array([h.start for h in hdrs], dtype=np.int64),
                             np.array([h.cfo for h in hdrs]), self.header_syms, n_ofdm)
        finite = np.isfinite(spec).all(axis=(1, 2))
        rows = np.flatnonzero(finite)
        events = [("nonfinite", "NaN/Inf samples in a frame's payload")] * len(hdrs)
        if rows.size:
            sub = [hdrs[i] for i in rows.tolist()]
            results = self._estimates(spec[rows][:, :, self._cell_bins], sub, n_symbols)
            for i, hdr, result in zip(rows.tolist(), sub, results):
                if result is None:  # off the common path: the reference's own estimate
                    events[i] = BurstReceiver._estimate_payload(self, hdr, self.layout.n_ofdm_symbols(n_symbols))
                    continue
                est, ok = result
                if not ok:
                    events[i] = ("nonfinite", "estimation gave NaN/Inf")
                else:
                    events[i] = ("frame", ReceivedFrame(hdr.seq, hdr.n_symbols, est, hdr.cfo, hdr.start, hdr.salvaged))
        return events

    def _estimates(self, cells: np.ndarray, hdrs: list, n_symbols: int) -> list:
        """FrameEstimator.estimate (linear phase tracking, data-aided training) of F frames of
        one length: one (FrameEstimate, finite) per frame, or None where the frame needs what only the
        reference handles (interfered carriers, impulse-hit or dead symbols, a cut tail, a burst
        that ends early); with each estimate whether all its outputs are finite. The frames'
        payloads hold all their OFDM symbols (no other frame starts inside: max_live = n_ofdm)."""
        est = self.estimator
        n_ofdm = cells.shape[1]
        n_d, n_p = len(est.data), len(est.pilots)
        n_act = len(self.active)
        h_ls = np.stack([h.ls_taps[self._act_bins] for h in hdrs])
        fits = self._smooth(h_ls, [h.selection for h in hdrs])
        m = np.array([max(int(h.training), 1) for h in hdrs], dtype=np.float64)
        reps = np.array([int(h.spread[1]) for h in hdrs])
        leverage, resid_e = fits.leverage / m[:, None], fits.resid_e * m
        fitted = fits.fitted
        idx_d, idx_p = self._idx_d, self._idx_p
        h_d, h_p = fitted[:, idx_d], fitted[:, idx_p]
        mean_gain = np.mean(np.abs(fitted) ** 2, axis=1)
        floor = (est.min_gain * np.maximum(mean_gain, 1e-30))[:, None]
        h_d = np.where(np.abs(h_d) ** 2 < floor, np.sqrt(floor), h_d)
        h_p = np.where(np.abs(h_p) ** 2 < floor, np.sqrt(floor), h_p)
        guards = cells[:, :, n_d + n_p:]
        # interfered carriers (FrameEstimator._interfered_carriers): the batch takes frames with none
        s_c = np.stack([h.spread[0] for h in hdrs]) / np.maximum(reps, 1)[:, None]
        ref = np.mean(s_c, axis=1)
        clean = (s_c <= CARRIER_FLAG * ref[:, None]).all(axis=1)
        g_sym = np.mean(np.abs(guards) ** 2, axis=2)
        hot = g_sym > SYMBOL_FLAG * ref[:, None]
        pilot_e = np.mean(np.abs(cells[:, :, n_d:n_d + n_p]) ** 2, axis=2)
        dead = (g_sym < DEAD_SYMBOL * ref[:, None]) & (pilot_e < DEAD_SYMBOL * np.mean(np.abs(h_p) ** 2, axis=1)[:, None])
        common = clean & ~(hot | dead).any(axis=1)
        # the burst's end and the sampling-clock drift (FrameEstimator._burst_end) on the common
        # frames' terms: all pilots good, no impulse-hit symbol; a frame cut short goes the
        # reference's way
        tau = (est.t0 + np.arange(n_ofdm, dtype=np.float64))[None, :] - ((m - 1.0) / 2.0)[:, None]
        ended, drift, drift_sd = self._burst_ends(cells[:, :, n_d:n_d + n_p], h_p, ref, tau)
        common &= ~ended
        # a sampling-clock offset turned back (the phase ramp over the carriers), its error left
        # as phase noise of each cell
        turned = np.flatnonzero(np.abs(drift) > CLOCK_SIGNIFICANT * drift_sd) if est.clock_tracking else []
        if len(turned):
            cells = cells.copy()
            cells[turned] = cells[turned] * np.exp(-1j * ((tau[turned] * drift[turned][:, None])[:, :, None]
                                                          * self._omega_cells[None, None, :]))
            drift_var = ((tau[turned] * tau[turned])[:, :, None] * (self._omega_cells[:n_d] ** 2)[None, None, :]
                         * (drift_sd[turned] ** 2)[:, None, None])
        # zero-forcing on the floored fit
        data = cells[:, :, :n_d] / h_d[:, None, :]
        pil = cells[:, :, n_d:n_d + n_p] / h_p[:, None, :]
        # common phase: the payload pilots and the header copies' anchors, one linear fit
        t = est.t0 + np.arange(n_ofdm, dtype=np.float64)
        w_p = np.abs(h_p) ** 2
        corr = (pil * np.conj(est.pilot_values)[None, None, :] * w_p[:, None, :]).sum(axis=2)
        t_a = np.asarray(hdrs[0].anchors[0], dtype=np.float64)
        anchors = np.stack([h.anchors[1] for h in hdrs])
        slope = fit_phase_slope_rows(np.concatenate((anchors, corr), axis=1), np.concatenate((t_a, t)))
        rot = np.exp(-1j * (slope[:, None] * t[None, :]))[:, :, None]
        data = data * rot
        pil = pil * rot
        # noise: guards, pilot residuals, the training spread
        lev_p = leverage[:, idx_p]
        pil_res = np.abs(pil - est.pilot_values[None, None, :]) ** 2 * w_p[:, None, :] / (1.0 + lev_p[:, None, :])
        energy = np.sum(np.abs(guards) ** 2, axis=(1, 2)) + np.sum(pil_res, axis=(1, 2))
        energy += np.sum(s_c, axis=1) * reps
        dof = guards.shape[1] * guards.shape[2] + max(n_ofdm * n_p - 1, 0) + reps * n_act
        sigma2 = energy / np.maximum(dof, 1)
        model_err = np.maximum(resid_e / np.maximum(fits.dof, 1) - sigma2, 0.0) / m
        info = np.sum(w_p, axis=1) * float(np.sum(t * t)) + np.sum(np.abs(anchors) * t_a * t_a, axis=1)
        phase_var = t[None, :] * t[None, :] * sigma2[:, None] / (2.0 * np.maximum(info, 1e-30))[:, None]
        sym_row = np.arange(n_symbols) // n_d
        sym_col = np.arange(n_symbols) % n_d
        gain = np.abs(h_d) ** 2
        lev_d = leverage[:, idx_d]
        scale2 = est.payload_scale ** 2
        symbols = data[:, sym_row, sym_col] / est.payload_scale
        noise_var = ((sigma2[:, None] * (1.0 + lev_d[:, sym_col]) + model_err[:, None]) / gain[:, sym_col]
                     + phase_var[:, sym_row])
        if len(turned):
            noise_var[turned] += drift_var[:, sym_row, sym_col]
        noise_var = noise_var / scale2
        # a cut tail (FrameEstimator._dead_tail) on the last OFDM symbol: the reference decides
        end = n_d if n_ofdm * n_d <= n_symbols else n_symbols - (n_ofdm - 1) * n_d
        p = np.abs(cells[:, -1, :end]) ** 2
        counts = np.arange(end, 0, -1)
        suffix = np.cumsum(p[:, ::-1], axis=1)[:, ::-1] / counts
        cut = ((suffix < DEAD_TAIL * sigma2[:, None]) & (counts >= DEAD_TAIL_CELLS)).any(axis=1)
        common &= ~cut
        sym_gain_mean = np.mean(gain[:, sym_col] * scale2, axis=1)
        snr_db = 10.0 * np.log10(np.maximum(sym_gain_mean / np.maximum(sigma2, 1e-30), 1e-30))
        post_eq = -10.0 * np.log10(np.maximum(np.mean(noise_var, axis=1), 1e-30))
        symbols = symbols.astype(np.complex64)
        noise_var = noise_var.astype(np.float32)
        finite = (np.isfinite(symbols).all(axis=1) & np.isfinite(noise_var).all(axis=1) & np.isfinite(snr_db)).tolist()
        to_ppm = -1e6 / (self.layout.fft_len + self.layout.cp_len)  # as FrameEstimator.estimate
        ppm, ppm_sd = (drift * to_ppm).tolist(), (drift_sd * abs(to_ppm)).tolist()
        out = []
        for i, (ok, snr, post, s2, b, taps, c) in enumerate(zip(
                common.tolist(), snr_db.tolist(), post_eq.tolist(), sigma2.tolist(), slope.tolist(),
                fits.n_taps.tolist(), fits.centre.tolist())):
            out.append((phy.FrameEstimate(symbols[i], noise_var[i], snr, post, s2, b, taps, c, 0, 0, 0,
                                          ppm[i], ppm_sd[i]), finite[i])
                       if ok else None)
        return out

    def _burst_ends(self, pilots: np.ndarray, h_p: np.ndarray, sigma2: np.ndarray, tau: np.ndarray):
        """FrameEstimator._burst_end of F frames whose pilots are all good and whose symbols are
        none impulse-hit, `max_live` their n_ofdm: (ended early [F] bool, timing drift [F] in
        samples per OFDM symbol, its standard deviation [F], inf where not measured).
        `pilots` [F, n_ofdm, n_pilot], `h_p` [F, n_pilot] (floored), `sigma2` [F] (the training
        spread's), `tau` [F, n_ofdm]."""
        est = self.estimator
        f_n, n_ofdm = pilots.shape[0], pilots.shape[1]
        drift, drift_sd = np.zeros(f_n), np.full(f_n, math.inf)
        measured = sigma2 > 0
        if not measured.all():  # (no noise at all): the reference measures nothing there
            sigma2 = np.where(measured, sigma2, 1.0)
        z = pilots * np.conj(h_p * est.pilot_values)[:, None, :]
        w = np.abs(h_p) ** 2
        w_sum = w.sum(axis=1)
        end = self._cusum_ends(np.abs(z.sum(axis=2)), w_sum, sigma2)
        # the drift over the symbols before that end (later ones masked: a zero pilot product
        # adds nothing to the phase fit)
        a, b = self._pair_a, self._pair_b
        rows = np.flatnonzero(measured)
        if a.size and rows.size:
            w_r, z_r, s_r, tau_r = w[rows], z[rows], sigma2[rows], tau[rows]
            before = np.arange(n_ofdm)[None, :] < end[rows][:, None]
            mm = w_r[:, a] * w_r[:, b]
            m_sum = mm.sum(axis=1)
            # np.bincount(a, m) - np.bincount(b, m), weights added in pair order
            ca, cb = np.zeros_like(w_r), np.zeros_like(w_r)
            for i in range(a.size):
                ca[:, a[i]] += mm[:, i]
                cb[:, b[i]] += mm[:, i]
            with np.errstate(invalid="ignore", divide="ignore"):
                coef = (ca - cb) / m_sum[:, None]
                var = np.sum(coef ** 2 * s_r[:, None] / (2.0 * np.maximum(w_r, 1e-300)), axis=1)
                info = np.sum(np.where(before, tau_r * tau_r, 0.0), axis=1) / np.maximum(var, 1e-300)
            ok = (m_sum > 0) & ~(var > MAX_DRIFT_PHASE_VAR) & ~(info <= 0)
            if ok.any():
                rows, z_r, tau_r, info, before = rows[ok], z_r[ok], tau_r[ok], info[ok], before[ok]
                d = np.where(before, (z_r[:, :, a] * np.conj(z_r[:, :, b])).sum(axis=2), 0.0)
                scale = self.layout.fft_len / (2.0 * math.pi * est._pair_spacing)
                drift[rows] = fit_phase_slope_rows(d, tau_r) * scale
                drift_sd[rows] = scale / np.sqrt(info)
        turn = np.flatnonzero(np.abs(drift) > CLOCK_SIGNIFICANT * drift_sd)
        if turn.size:
            phase = np.exp(-1j * ((tau[turn] * drift[turn][:, None])[:, :, None] * est._pilot_omega[None, None, :]))
            end[turn] = self._cusum_ends(np.abs((z[turn] * phase).sum(axis=2)), w_sum[turn], sigma2[turn])
        end[~measured] = n_ofdm
        return end < n_ofdm, drift, drift_sd

    @staticmethod
    def _cusum_ends(mag: np.ndarray, w_sum: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
        """FrameEstimator._cusum_end (no symbol skipped, live = n_ofdm) of each row of `mag`
        [F, n_ofdm]: one step per OFDM symbol for all rows at once."""
        from scipy.special import i0e  # as the reference: not imported with the package

        f_n, n_ofdm = mag.shape
        snr = w_sum / sigma2
        nu = LIVE_PILOT_FLOOR
        x = (2.0 * snr * nu)[:, None] * mag / np.maximum(w_sum, 1e-300)[:, None]
        llr = (nu * nu * snr)[:, None] - (np.log(i0e(x)) + x)
        g, start = np.zeros(f_n), np.zeros(f_n, np.int64)
        end = np.full(f_n, n_ofdm)
        for j in range(n_ofdm):
            start = np.where(g <= 0.0, j, start)
            g = np.maximum(g + llr[:, j], 0.0)
            fired = (g > BURST_END_LLR) & (end == n_ofdm)
            if fired.any():
                end = np.where(fired, start, end)
        return end


def _group(chosen: list, rows) -> dict:
    """{chosen taps: [rows]} for the given rows."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(chosen[r], []).append(r)
    return groups
