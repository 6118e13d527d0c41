"""Simulated radio channel for the analog OFDM link, built from GNU Radio's gr-channels blocks."""
from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np
import pmt
from gnuradio import blocks, channels, gr

from diffsem import phy
from diffsem.phy import impairments
from diffsem.channel import CHANNELS, IMPAIRMENTS, impairment_cells_numpy, selective_pdp_numpy
from diffsem.phy.framing import LEN_TAG
from diffsem.phy.ofdm import make_layout

MAX_HITS = 16384  # bursts whose hit cells _partial_frame keeps (a few MB at k = 128)


class channel_sim(gr.hier_block2):
    """Channel hier block (complex in, complex out): fading, timing offset, CFO, then AWGN.

    snr_db: Es/N0 per payload symbol (docs/design/conventions.md) for bursts from ofdm_analog_tx with
        the same fft_len / carriers: the time-domain noise variance is
        fft_len / (n_active * 10^(snr_db/10)) (diffsem.phy.noise_voltage_for_snr), because the TX
        gives unit power per sample to n_active unit-power subcarriers. The RX's "snr_db" estimate
        is checked against this value.
    channel: "awgn"; "rayleigh" (flat, channels.fading_model, unit average power); "selective"
        (channels.selective_fading_model with the 8-tap exponential power-delay profile of
        diffsem.channel.selective_pdp_numpy at integer sample delays, magnitudes sqrt(pdp) so the
        average power gain is 1; the stock block does not normalise its taps).
    cfo: carrier frequency offset in subcarrier spacings (frequency_offset = cfo / fft_len).
    timing_offset: delay in samples (fractional part by a windowed-sinc FIR in the channel's taps:
        the receiver sees the sampling instant between the TX's samples).
    clock_ppm: sample-clock offset (channel_model's epsilon = 1 + ppm * 1e-6).
    doppler: normalised Doppler f_D * T_s of the fading models; the RX equalises each frame with
        one channel estimate, so keep the channel nearly static over a frame (<= 1e-5).
    seed: seeds the noise and the fading processes (reproducible runs).


    Receiver hardware impairments, after the noise (the order of a zero-IF receiver: LO phase
    noise, mixer IQ imbalance, DC offset, then the ADC); each is off at its default, and with all
    of them off the block is exactly the channel it was before (no extra stage is connected):
    phase_noise: std (rad) of the white Gaussian driving channels.phase_noise_gen's single-pole
        IIR (alpha = phase_noise_alpha); the phase's std is phase_noise * sqrt(a / (2 - a)).
        The stock block seeds its noise with 42 (not `seed`). 0 = off.
    iq_imbalance_db, iq_imbalance_deg: channels.iqbal_gen in receiver mode (I-branch gain in dB,
        quadrature phase error in degrees). 0, 0 = off.
    dc_offset: complex constant added (blocks.add_const_cc), e.g. LO leakage. 0 = off.
    adc_bits: ADC resolution per rail (diffsem.phy.impairments.quantize: mid-rise, saturating at
        +-adc_full_scale; a HackRF is 8 bits). 0 = off (float samples pass through).
        Inside a burst the signal has unit power per sample (0.707 rms per rail) plus the noise,
        so the default full scale 3.0 loads the converter about 12.5 dB above the rail rms.
    (gr-channels' own `quantizer` has a fixed +-1 full scale and saturates at the 16-bit range,
    not at its N-bit rails, so it does not model an N-bit converter; hence a small numpy block.)

    Partial-frame impairments, after the noise (the interference arrives with it at the antenna),
    defined by diffsem.channel.impairment_cells_numpy, the same cells the training channel hits
    (symbol i of a frame on data carrier i % 48 of payload OFDM symbol i // 48):
    impairment: "none" (default: no stage connected), "burst" (impulsive noise wipes payload
        OFDM symbols, each with probability impairment_fraction: over that symbol's samples, CP
        included, white noise of per-cell power impulse_db above Es), "narrowband" (an
        interferer on round(fraction * 48) adjacent data carriers at a random offset per frame:
        on each of them, during every OFDM symbol of the burst (preamble and header included),
        a tone at the subcarrier's frequency with a fresh CN(0, I) amplitude per OFDM symbol,
        I = Es / 10^(sir_db/10) per cell; Es/N0 stays snr_db, the hit cells see Es/(N0 + I)),
        "truncation" (the frame's tail is lost: the cells of symbols round((1 - fraction) k)..k-1
        are zeroed, signal and noise: whole OFDM symbols in time, the partial one per carrier).
        "erasure" (independent cells) has no physical waveform and is refused here.
    The stage finds each burst from the TX's length tag and its layout from header_repeats,
    pad_front, pad_back, cp_len (ofdm_analog_tx's); frame_k (0 = every cell of the payload OFDM
    symbols) is the link's k, needed for truncation to hit exactly the training cells.
    Seeded from `seed`; `hits` records the payload cells hit per burst (the latest MAX_HITS: a
    flowgraph left running keeps flat memory).

    Stages are built in `_stages()` and connected in series.
    Setters (GRC callbacks): set_snr_db, set_cfo, set_timing_offset, set_clock_ppm.
    """

    def __init__(self, snr_db=20.0, channel="awgn", cfo=0.0, timing_offset=0.0, seed=0,
                 doppler=1e-5, clock_ppm=0.0, fft_len=64, occupied_carriers=None, pilot_carriers=None,
                 adc_bits=0, adc_full_scale=3.0, dc_offset=0j, iq_imbalance_db=0.0, iq_imbalance_deg=0.0,
                 phase_noise=0.0, phase_noise_alpha=0.1, impairment="none", impairment_fraction=0.125,
                 sir_db=0.0, impulse_db=30.0, frame_k=0, header_repeats=4, pad_front=None, pad_back=None,
                 cp_len=16):
        gr.hier_block2.__init__(self, "channel_sim", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}: choose one of {CHANNELS}")
        self.layout = make_layout(fft_len, 0, occupied_carriers, pilot_carriers,
                                  None if pilot_carriers is None else [1.0] * len(list(pilot_carriers)))
        self.channel = channel
        self.seed = int(seed)
        self.doppler = float(doppler)
        self._snr_db = float(snr_db)
        self._cfo = float(cfo)
        self._timing_offset = float(timing_offset)
        self._clock_ppm = float(clock_ppm)
        self.adc_bits = int(adc_bits)
        self.adc_full_scale = float(adc_full_scale)
        if self.adc_bits and not 1 <= self.adc_bits <= 24:
            raise ValueError(f"adc_bits must be 0 (off) or 1..24, got {adc_bits}")
        if self.adc_bits and not (np.isfinite(self.adc_full_scale) and self.adc_full_scale > 0):
            raise ValueError(f"adc_full_scale must be a positive amplitude, got {adc_full_scale}")
        self.dc_offset = complex(dc_offset)
        self.iq_imbalance_db = float(iq_imbalance_db)
        self.iq_imbalance_deg = float(iq_imbalance_deg)
        self.phase_noise = float(phase_noise)
        self.phase_noise_alpha = float(phase_noise_alpha)
        if self.phase_noise < 0 or not 0 < self.phase_noise_alpha <= 1:
            raise ValueError("phase_noise must be >= 0 and phase_noise_alpha in (0, 1]")
        if impairment not in IMPAIRMENTS or impairment == "erasure":
            raise ValueError(f"unknown impairment {impairment!r}: choose one of none, burst, narrowband, truncation")
        if not 0.0 <= float(impairment_fraction) <= 1.0:
            raise ValueError(f"impairment_fraction must be in [0, 1], got {impairment_fraction}")
        frame_layout = dataclasses.replace(self.layout, cp_len=int(cp_len))  # the TX's symbol timing
        sym_len = frame_layout.fft_len + frame_layout.cp_len
        self.partial_frame = None if impairment == "none" else _partial_frame(
            impairment, float(impairment_fraction), float(sir_db), float(impulse_db), self.seed,
            frame_layout, int(header_repeats), 4 * sym_len if pad_front is None else int(pad_front),
            4 * sym_len if pad_back is None else int(pad_back), int(frame_k))
        self.model = channels.channel_model(
            noise_voltage=phy.noise_voltage_for_snr(self._snr_db, self.layout),
            frequency_offset=self._cfo / self.layout.fft_len,
            epsilon=1.0 + self._clock_ppm * 1e-6,
            taps=list(phy.fractional_delay_taps(self._timing_offset)),
            noise_seed=float(self.seed), block_tags=False)
        # kept as an attribute: a Python block (the ADC) dies with its last Python reference
        self.stages = self._stages()
        self.connect(self, *self.stages, self)

    def _stages(self) -> list:
        """Ordered processing stages between the input and the output."""
        stages = []
        if self.channel == "rayleigh":
            stages.append(channels.fading_model(8, self.doppler, False, 0.0, self.seed + 1))
        elif self.channel == "selective":
            pdp = selective_pdp_numpy()
            stages.append(channels.selective_fading_model(
                8, self.doppler, False, 0.0, self.seed + 1, [float(d) for d in range(len(pdp))],
                [float(m) for m in pdp ** 0.5], len(pdp)))
        stages.append(self.model)  # timing (taps) + CFO + AWGN: noise last, so it stays white
        if self.partial_frame is not None:
            stages.append(self.partial_frame)
        stages.extend(self._receiver_impairments())
        return stages

    def _receiver_impairments(self) -> list:
        """Zero-IF receiver front end after the antenna noise; only the stages switched on."""
        stages = []
        if self.phase_noise > 0:
            stages.append(channels.phase_noise_gen(self.phase_noise, self.phase_noise_alpha))
        if self.iq_imbalance_db != 0 or self.iq_imbalance_deg != 0:
            stages.append(channels.iqbal_gen(self.iq_imbalance_db, self.iq_imbalance_deg, 1))
        if self.dc_offset != 0:
            stages.append(blocks.add_const_cc(self.dc_offset))
        if self.adc_bits:
            stages.append(_adc_quantizer(self.adc_bits, self.adc_full_scale))
        return stages

    # --- setters / getters (GRC callbacks)
    def set_snr_db(self, snr_db):
        self._snr_db = float(snr_db)
        self.model.set_noise_voltage(phy.noise_voltage_for_snr(self._snr_db, self.layout))

    def snr_db(self):
        return self._snr_db

    def set_cfo(self, cfo):
        self._cfo = float(cfo)
        self.model.set_frequency_offset(self._cfo / self.layout.fft_len)

    def cfo(self):
        return self._cfo

    def set_timing_offset(self, timing_offset):
        self._timing_offset = float(timing_offset)
        self.model.set_taps(list(phy.fractional_delay_taps(self._timing_offset)))

    def timing_offset(self):
        return self._timing_offset

    def set_clock_ppm(self, clock_ppm):
        self._clock_ppm = float(clock_ppm)
        self.model.set_timing_offset(1.0 + self._clock_ppm * 1e-6)

    def clock_ppm(self):
        return self._clock_ppm


class _adc_quantizer(gr.sync_block):
    """N-bit ADC per rail with a set full scale (diffsem.phy.impairments.quantize), complex in/out."""

    def __init__(self, bits=8, full_scale=1.0):
        gr.sync_block.__init__(self, name="diffsem_adc_quantizer", in_sig=[np.complex64], out_sig=[np.complex64])
        impairments.quantize(np.zeros(1, np.complex64), bits, full_scale)  # validates the arguments
        self.bits = int(bits)
        self.full_scale = float(full_scale)

    def work(self, input_items, output_items):
        out = output_items[0]
        out[:] = impairments.quantize(input_items[0][:len(out)], self.bits, self.full_scale)
        return len(out)


class _partial_frame(gr.sync_block):
    """Burst / narrowband / truncation impairments on the sample stream (see channel_sim).

    Each burst starts at a LEN_TAG tag (value: burst length, padding included). The cells are
    drawn with diffsem.channel.impairment_cells_numpy and turned into sample operations: an
    additive waveform (impulses, interferer) and a lost tail (zeroed). The one OFDM symbol that
    truncation cuts inside is handled per carrier (its lost carriers' DFT components removed), so
    work() waits until that symbol is whole in its window."""

    def __init__(self, kind, fraction, sir_db, impulse_db, seed, layout, header_repeats, pad_front,
                 pad_back, frame_k):
        gr.sync_block.__init__(self, name="diffsem_partial_frame", in_sig=[np.complex64], out_sig=[np.complex64])
        self.kind, self.fraction, self.layout = kind, fraction, layout
        self.sir_db = float(sir_db)
        self.impulse_std = phy.noise_voltage_for_snr(-impulse_db, layout)
        self.header_repeats, self.pad_front, self.pad_back, self.frame_k = header_repeats, pad_front, pad_back, frame_k
        self.rng = np.random.default_rng([int(seed), 0x1F1])
        self.sym_len = layout.fft_len + layout.cp_len
        self.pending = []  # bursts not yet fully out: dicts of absolute sample ranges
        self.hits = deque(maxlen=MAX_HITS)  # per burst, the boolean payload cells hit (what the receiver should see)

    def _plan(self, start, length):
        lay, sl = self.layout, self.sym_len
        n_ofdm = (length - self.pad_front - self.pad_back) // sl - 2 - self.header_repeats
        if n_ofdm < 1:
            return None
        k = self.frame_k or n_ofdm * lay.n_data
        k = min(k, n_ofdm * lay.n_data)
        cells = impairment_cells_numpy(self.kind, self.fraction, 1, k, self.rng, lay)[0]
        self.hits.append(cells)
        frame0 = start + self.pad_front
        pay0 = frame0 + (2 + self.header_repeats) * sl
        plan = dict(end=pay0 + n_ofdm * sl, add=None, zero=None, notch=None)
        if self.kind == "burst":
            wiped = np.zeros(n_ofdm, bool)
            wiped[np.arange(k)[cells] // lay.n_data] = True
            add = np.zeros(n_ofdm * sl, np.complex64)
            for j in np.flatnonzero(wiped):
                add[j * sl:(j + 1) * sl] = self.impulse_std / np.sqrt(2) * (
                    self.rng.standard_normal(sl) + 1j * self.rng.standard_normal(sl))
            plan["add"] = (pay0, add)
        elif self.kind == "narrowband":
            n_sym = 2 + self.header_repeats + n_ofdm
            plan["add"] = (frame0, impairments.narrowband_interference(cells, n_sym, self.sir_db, self.rng, lay))
        elif self.kind == "truncation" and cells.any():
            first = int(np.argmax(cells))
            j, c = divmod(first, lay.n_data)
            if c:   # cut inside OFDM symbol j: its carriers c.. go, whole symbols after it
                plan["notch"] = (pay0 + j * sl, np.asarray(lay.data_carriers)[c:] % lay.fft_len)
                j += 1
            plan["zero"] = (pay0 + j * sl, plan["end"])
        return plan

    def work(self, input_items, output_items):
        x, out = input_items[0], output_items[0]
        n = len(out)
        base = self.nitems_written(0)
        for tag in self.get_tags_in_window(0, 0, n, pmt.intern(LEN_TAG)):
            plan = self._plan(tag.offset, pmt.to_long(tag.value))
            if plan is not None:
                self.pending.append(plan)
        for p in self.pending:  # the cut symbol must be whole in this window
            if p["notch"] is not None and base <= p["notch"][0] < base + n < p["notch"][0] + self.sym_len:
                n = p["notch"][0] - base
        if n <= 0:
            return 0
        out[:n] = x[:n]
        for p in self.pending:
            if p["add"] is not None:
                a0, add = p["add"]
                lo, hi = max(a0, base), min(a0 + len(add), base + n)
                if lo < hi:
                    out[lo - base:hi - base] += add[lo - a0:hi - a0]
            if p["notch"] is not None and base <= p["notch"][0] < base + n:
                s0 = p["notch"][0] - base
                body = out[s0 + self.layout.cp_len:s0 + self.sym_len]
                spec = np.fft.fft(body)
                keep = np.zeros_like(spec)
                keep[p["notch"][1]] = spec[p["notch"][1]]
                z = np.fft.ifft(keep).astype(np.complex64)
                out[s0 + self.layout.cp_len:s0 + self.sym_len] -= z
                out[s0:s0 + self.layout.cp_len] -= z[-self.layout.cp_len:]
            if p["zero"] is not None:
                lo, hi = max(p["zero"][0], base), min(p["zero"][1], base + n)
                if lo < hi:
                    out[lo - base:hi - base] = 0
        self.pending = [p for p in self.pending if p["end"] > base + n]
        return n
