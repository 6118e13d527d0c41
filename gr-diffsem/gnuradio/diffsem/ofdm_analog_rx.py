"""Analog OFDM receiver: baseband samples in, one PDU of equalised symbols per frame out."""
from __future__ import annotations

from gnuradio import blocks, digital, gr

from diffsem.phy import burst_batch, burst_rx
from diffsem.phy.ofdm import make_layout

from ._pdu import Counters
from .frame_receiver import frame_receiver


# Samples the frame receiver's inputs can hold. It takes all that is waiting in one call and
# processes the frames in it together (diffsem.phy.burst_batch): GNU Radio's default buffers
# handed it ~3k samples (two frames) a call, each paying the batch's fixed cost again; with
# room for ~48 frames a receiver that falls behind catches up in larger, cheaper batches. It adds
# no latency: a call never waits for the buffer to fill.
BUFFER_ITEMS = 1 << 16


class ofdm_analog_rx(gr.hier_block2):
    """Analog OFDM RX (hier block). Input: complex baseband stream. Message output "out": one PDU
    per received frame, (metadata dict, c32vector of the equalised payload symbols in TX units).

    Metadata: "seq" (int, 12-bit header number), "n_symbols", "snr_db" (estimated average Es/N0
    per payload symbol, the convention of diffsem.channel: on AWGN it matches channel_sim's set
    SNR), "post_eq_snr_db" (-10 log10 mean noise_var), "noise_var" (f32vector, one per symbol:
    variance of the equalised symbol's error, sigma^2/|H_i|^2 plus the small channel- and
    phase-estimate terms), "cfo" (carrier frequency offset in subcarrier spacings: Schmidl & Cox
    fine estimate + integer carrier offset), "cpe_rad_per_symbol" (residual phase drift tracked
    by the pilots), "channel_taps" (significant taps kept by the channel estimate),
    "sample_offset" (input sample index where the frame's header starts) and "time" (that in
    seconds at `samp_rate`).

    Chain: tag gate -> stock ofdm_sync_sc_cfb (Schmidl & Cox timing and fine CFO, C++ at the
    sample rate; threshold `sync_threshold`) and, inside the frame receiver, a matched filter on
    the known preambles (diffsem.phy.sync, threshold `mf_threshold`, 0 = off: it detects down to
    -3 dB, Schmidl & Cox catches carrier offsets beyond ~0.8 subcarrier) -> frame receiver
    (diffsem.phy.burst_batch.BatchReceiver, numpy, each step once for all frames waiting; it
    equals the per-frame reference diffsem.phy.burst_rx.BurstReceiver):
    per-frame CFO derotation, preamble FFTs, integer carrier offset, denoised LS channel, the
    header copies combined and checked (stock packet_header_ofdm format: CRC-8 plus its zero
    fill; frames whose header fails are dropped and counted), data-aided refinement on the known
    header (channel averaged over preamble + copies, residual CFO removed in the time domain),
    payload FFT, pilot phase tracking and noise estimation (diffsem.phy.FrameEstimator). No hard
    decision anywhere on the payload. Why not the stock header_payload_demux chain: see
    diffsem/phy/burst_rx.py and docs/phy.md (its header round trip held the RX to ~0.15 Msps).

    fixed_k: the link's symbols per frame when fixed (0 = not fixed). A header whose CRC fails
    is then decoded by maximum likelihood over the seqs with the length known, the 16 after the
    last good header first (burst_rx.decode_header_known_length), and its frame delivered with
    meta "salvaged": True instead of dropped.

    `stats()` -> {"frames", "headers_ok", "salvaged" (frames delivered on a salvaged header),
    "header_crc_fail" (a BPSK header whose CRC-8 or zero fill failed and was not salvaged: a frame lost), "false_triggers" (no header where the detector triggered: noise,
    refused before any frame is made), "malformed" (kept for API compatibility, always 0),
    "nonfinite" (NaN/Inf samples in a frame), "truncated" (frames delivered whose burst ended
    before the header's length: a cut tail, a header claiming more symbols than were sent; the
    missing symbols erased, meta "cut" = how many), "interfered" (frames delivered with data
    carriers the receiver found interfered, meta "interfered_carriers" = how many; their noise_var
    carries the interference; a clean frame shows one about 0.5 % of the time, a carrier's spread
    above the flag by chance), "clock_mismatch" (frames whose pilots drift
    like a sampling clock off by more than diffsem.phy.framing.CLOCK_TOLERANCE_PPM; meta
    "clock_ppm" on every frame where it was measured), "wrong_rate" (frames found on the stream
    decimated by 2, i.e. oversampled 2x, and not delivered)}; the same dict goes out on message
    port "stats" after each frame and each drop.
    """

    def __init__(self, fft_len=64, cp_len=16, occupied_carriers=None, pilot_carriers=None,
                 pilot_symbols=None, payload_scale=1.0, phase_tracking="linear", samp_rate=1.0,
                 sync_threshold=burst_rx.DEFAULT_SYNC_THRESHOLD, header_repeats=4,
                 mf_threshold=burst_rx.DEFAULT_MF_THRESHOLD, fixed_k=0):
        gr.hier_block2.__init__(self, "ofdm_analog_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        self.layout = lay = make_layout(fft_len, cp_len, occupied_carriers, pilot_carriers, pilot_symbols)
        self.message_port_register_hier_out("out")
        self.message_port_register_hier_out("stats")
        self.counters = Counters("frames", "headers_ok", "salvaged", "header_crc_fail", "false_triggers", "malformed",
                                 "nonfinite", "truncated", "interfered", "clock_mismatch", "wrong_rate")
        self.receiver = burst_batch.BatchReceiver(lay, header_repeats=int(header_repeats),
                                                  phase_tracking=phase_tracking, payload_scale=payload_scale,
                                                  mf_threshold=float(mf_threshold), fixed_k=int(fixed_k))
        # The receiver finds its frames itself: stream tags from upstream (a TX's packet_len
        # passed on by a DC blocker, say) are not needed and must not travel on, so none get in.
        gate = blocks.tag_gate(gr.sizeof_gr_complex, False)
        sync = digital.ofdm_sync_sc_cfb(lay.fft_len, lay.cp_len, False, sync_threshold)
        self.frames = frame_receiver(self.receiver, self.counters, samp_rate)
        for block in (gate, sync):
            block.set_min_output_buffer(BUFFER_ITEMS)
        self.connect(self, gate, sync)
        self.connect(gate, (self.frames, 0))
        self.connect((sync, 0), (self.frames, 1))
        self.connect((sync, 1), (self.frames, 2))
        self.msg_connect(self.frames, "out", self, "out")
        self.msg_connect(self.frames, "stats", self, "stats")

    def stats(self) -> dict:
        return self.counters.snapshot()

    def samples_read(self) -> int:
        """Input samples the frame receiver has processed (a run's end: ofdm_analog_tx.emitted)."""
        return int(self.frames.nitems_read(0))
