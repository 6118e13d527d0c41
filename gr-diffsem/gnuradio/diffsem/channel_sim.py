"""Simulated radio channel for the analog OFDM link, built from GNU Radio's gr-channels blocks."""
from __future__ import annotations

from gnuradio import blocks, channels, gr

from diffsem import phy
from diffsem.channel import CHANNELS, selective_pdp

from ._phy_common import make_layout


class channel_sim(gr.hier_block2):
    """Channel hier block (complex in, complex out): fading, timing offset, CFO, then AWGN.

    snr_db: Es/N0 per payload symbol (DESIGN.md convention) for bursts from ofdm_analog_tx with
        the same fft_len / carriers: the time-domain noise variance is
        fft_len / (n_active * 10^(snr_db/10)) (diffsem.phy.noise_voltage_for_snr), because the TX
        gives unit power per sample to n_active unit-power subcarriers. The RX's "snr_db" estimate
        is checked against this value.
    channel: "awgn"; "rayleigh" (flat, channels.fading_model, unit average power); "selective"
        (channels.selective_fading_model with the 8-tap exponential power-delay profile of
        diffsem.channel.selective_pdp at integer sample delays, magnitudes sqrt(pdp) so the
        average power gain is 1; the stock block does not normalise its taps).
    cfo: carrier frequency offset in subcarrier spacings (frequency_offset = cfo / fft_len).
    timing_offset: delay in samples (fractional part by a windowed-sinc FIR in the channel's taps:
        the receiver sees the sampling instant between the TX's samples).
    clock_ppm: sample-clock offset (channel_model's epsilon = 1 + ppm * 1e-6).
    doppler: normalised Doppler f_D * T_s of the fading models; the RX equalises each frame with
        one channel estimate, so keep the channel nearly static over a frame (<= 1e-5).
    seed: seeds the noise and the fading processes (reproducible runs).

    Stages are built in `_stages()` and connected in series; hardware impairments (ADC
    resolution, DC offset, IQ imbalance, phase noise) are meant to be added there as extra stages.
    Setters (GRC callbacks): set_snr_db, set_cfo, set_timing_offset, set_clock_ppm.
    """

    def __init__(self, snr_db=20.0, channel="awgn", cfo=0.0, timing_offset=0.0, seed=0,
                 doppler=1e-5, clock_ppm=0.0, fft_len=64, occupied_carriers=None, pilot_carriers=None):
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
        self.model = channels.channel_model(
            noise_voltage=phy.noise_voltage_for_snr(self._snr_db, self.layout),
            frequency_offset=self._cfo / self.layout.fft_len,
            epsilon=1.0 + self._clock_ppm * 1e-6,
            taps=list(phy.fractional_delay_taps(self._timing_offset)),
            noise_seed=float(self.seed), block_tags=False)
        chain = [self] + self._stages() + [self]
        self.connect(*chain)

    def _stages(self) -> list:
        """Ordered processing stages between the input and the output."""
        stages = []
        if self.channel == "rayleigh":
            stages.append(channels.fading_model(8, self.doppler, False, 0.0, self.seed + 1))
        elif self.channel == "selective":
            pdp = selective_pdp().numpy()
            stages.append(channels.selective_fading_model(
                8, self.doppler, False, 0.0, self.seed + 1, [float(d) for d in range(len(pdp))],
                [float(m) for m in pdp ** 0.5], len(pdp)))
        stages.append(self.model)  # timing (taps) + CFO + AWGN: noise last, so it stays white
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
