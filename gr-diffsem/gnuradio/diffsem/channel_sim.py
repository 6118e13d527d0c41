"""Simulated radio channel for the analog OFDM link, built from GNU Radio's gr-channels blocks."""
from __future__ import annotations

import numpy as np
from gnuradio import blocks, channels, gr

from diffsem import phy
from diffsem.phy import impairments
from diffsem.channel import CHANNELS, selective_pdp_numpy
from diffsem.phy.ofdm import make_layout


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

    Stages are built in `_stages()` and connected in series.
    Setters (GRC callbacks): set_snr_db, set_cfo, set_timing_offset, set_clock_ppm.
    """

    def __init__(self, snr_db=20.0, channel="awgn", cfo=0.0, timing_offset=0.0, seed=0,
                 doppler=1e-5, clock_ppm=0.0, fft_len=64, occupied_carriers=None, pilot_carriers=None,
                 adc_bits=0, adc_full_scale=3.0, dc_offset=0j, iq_imbalance_db=0.0, iq_imbalance_deg=0.0,
                 phase_noise=0.0, phase_noise_alpha=0.1):
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
