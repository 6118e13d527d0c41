"""Analog OFDM receiver: baseband samples in, one PDU of equalised symbols per frame out."""
from __future__ import annotations

import pmt
from gnuradio import blocks, digital, fft, gr, pdu

from diffsem import phy

from . import _phy_rx_blocks as rxb
from ._phy_common import FRAME_LEN_TAG, LEN_TAG, NUM_TAG, Counters, make_layout


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

    Chain: stock ofdm_sync_sc_cfb + frequency correction + header_payload_demux; header path as in
    gr-digital's ofdm_rx (fft, ofdm_chanest_vcvc, simpledfe BPSK, packet_headerparser_b with
    packet_header_ofdm: frames whose header fails its CRC are dropped there and counted here);
    payload path fft_vcc -> ofdm_frame_equalizer_vcvc(ofdm_equalizer_static) ->
    ofdm_serializer_vcc without any constellation (no hard decision); the per-frame estimator
    (diffsem.phy.FrameEstimator) denoises the channel estimate, corrects the common phase from the
    pilots and estimates the noise from guard carriers, pilots and preamble.

    `stats()` -> {"frames", "headers_ok", "header_crc_fail", "malformed", "nonfinite"}; the same
    dict goes out on message port "stats" after each frame and each dropped header.
    """

    def __init__(self, fft_len=64, cp_len=16, occupied_carriers=None, pilot_carriers=None,
                 pilot_symbols=None, payload_scale=1.0, phase_tracking="linear", samp_rate=1.0,
                 sync_threshold=0.3, header_repeats=4):
        gr.hier_block2.__init__(self, "ofdm_analog_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        self.layout = lay = make_layout(fft_len, cp_len, occupied_carriers, pilot_carriers, pilot_symbols)
        self.message_port_register_hier_out("out")
        self.message_port_register_hier_out("stats")
        self.counters = Counters("frames", "headers_ok", "header_crc_fail", "malformed", "nonfinite")
        sym_len = lay.fft_len + lay.cp_len
        sync1, sync2 = phy.sync_words(lay)
        data, pilots, guards = phy.carriers_by_role(lay)
        pilot_syms = [list(lay.pilot_symbols)]

        # --- synchronisation: stock Schmidl & Cox detector and demux. The fine CFO is not
        # removed by a free-running mixer (a spurious trigger inside a frame would change it half
        # way, see derotator) but per frame after the demux: the sync's CFO output rides along
        # with each sample (streams_to_vector: items of (sample, cfo)), so the demux cuts both out
        # together, all in C++ at the sample rate. An rx_time tag on sample 0 makes the demux
        # stamp every header with its sample offset.
        sync = digital.ofdm_sync_sc_cfb(lay.fft_len, lay.cp_len, False, sync_threshold)
        # The sync marks the middle of its timing plateau, which with a low threshold lies ~12
        # samples into the cyclic prefix at high SNR (measured): little margin for multipath. A
        # data delay 3 samples shorter moves the FFT window later; more would let the timing
        # jitter at 5 dB (1st-99th percentile about -7..+10 samples) reach the next symbol.
        timing_advance = min(3, lay.cp_len // 4)
        delay = blocks.delay(gr.sizeof_gr_complex, sym_len - timing_advance)
        cfo_as_complex = blocks.float_to_complex()
        time_tag = blocks.tags_strobe(gr.sizeof_gr_complex, rxb.TIME_ZERO, 1 << 62, pmt.intern("rx_time"))
        add_time_tag = blocks.add_cc()
        pair = blocks.streams_to_vector(gr.sizeof_gr_complex, 2)
        repeats = int(header_repeats)
        estimator = phy.FrameEstimator(lay, phase_tracking=phase_tracking, payload_scale=payload_scale,
                                       symbols_before_payload=1 + repeats)
        demux = digital.header_payload_demux(2 + repeats, lay.fft_len, lay.cp_len, FRAME_LEN_TAG, "", True,
                                             2 * gr.sizeof_gr_complex, "rx_time", 1.0)
        self.header_derotator = rxb.derotator(lay.fft_len, lay.cp_len, "header", group=2 + repeats,
                                              delay=sym_len - timing_advance)
        self.payload_derotator = rxb.derotator(lay.fft_len, lay.cp_len, "payload", first=2 + repeats)
        # The receiver tags frames itself (FRAME_LEN_TAG, rx_time): stream tags from upstream (a TX's
        # packet_len passed on by a DC blocker, say) would corrupt its framing, so none get in.
        gate = blocks.tag_gate(gr.sizeof_gr_complex, False)
        self.connect(self, gate, sync)
        self.connect(gate, delay, (add_time_tag, 0))
        self.connect(time_tag, (add_time_tag, 1))
        self.connect(add_time_tag, (pair, 0))
        self.connect((sync, 0), cfo_as_complex, (pair, 1))
        self.connect((sync, 1), (demux, 1))
        self.connect(pair, (demux, 0))

        # --- header: BPSK through the stock chain, CRC-checked by the stock parser
        header_fft = fft.fft_vcc(lay.fft_len, True, (), True)
        chanest = digital.ofdm_chanest_vcvc(list(sync1), list(sync2), repeats)
        self.combiner = rxb.header_combiner(estimator, repeats)
        bpsk = digital.constellation_bpsk()
        # alpha = 1 freezes the decision-directed update: the channel state handed on to the
        # payload stays the preamble's LS estimate, whose error statistics the estimator knows
        # (a DFE update from hard header decisions would mix in decision errors at low SNR).
        header_eq = digital.ofdm_frame_equalizer_vcvc(
            digital.ofdm_equalizer_simpledfe(lay.fft_len, bpsk.base(), [list(data)], [list(pilots)],
                                             pilot_syms, 0, 1.0).base(),
            lay.cp_len, FRAME_LEN_TAG, True, 1)
        header_serializer = digital.ofdm_serializer_vcc(lay.fft_len, [list(data)], FRAME_LEN_TAG)
        header_demod = digital.constellation_decoder_cb(bpsk.base())
        formatter = digital.packet_header_ofdm([list(data)], 1, LEN_TAG, FRAME_LEN_TAG, NUM_TAG, 1, 8)
        header_parser = digital.packet_headerparser_b(formatter.formatter())
        self.header_monitor = rxb.header_monitor(self.counters)
        self.connect((demux, 0), self.header_derotator, header_fft, chanest, self.combiner, header_eq, header_serializer, header_demod,
                     header_parser)
        # every false trigger on noise makes these two log an info line; the RX counts them
        # instead (stats()["header_crc_fail"])
        header_parser.set_log_level("warn")
        demux.set_log_level("warn")
        self.msg_connect(header_parser, "header_data", demux, "header_data")
        self.msg_connect(header_parser, "header_data", self.header_monitor, "in")

        # --- payload: static equaliser over data + pilots, serializer over data, pilots, guards
        payload_fft = fft.fft_vcc(lay.fft_len, True, (), True)
        payload_eq = digital.ofdm_frame_equalizer_vcvc(
            digital.ofdm_equalizer_static(lay.fft_len, [list(data) + list(pilots)], [], [], 0, True).base(),
            lay.cp_len, FRAME_LEN_TAG, True, 0)
        cells = list(data) + list(pilots) + list(guards)
        serializer = digital.ofdm_serializer_vcc(lay.fft_len, [cells], FRAME_LEN_TAG, "", 0, "", True)
        to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, FRAME_LEN_TAG)
        self.assembler = rxb.frame_assembler(estimator, samp_rate, self.counters, len(cells))
        self.connect((demux, 1), self.payload_derotator, payload_fft, payload_eq, serializer, to_pdu)
        self.msg_connect(to_pdu, "pdus", self.assembler, "in")
        self.msg_connect(self.assembler, "out", self, "out")
        self.msg_connect(self.assembler, "stats", self, "stats")
        self.msg_connect(self.header_monitor, "stats", self, "stats")

    def stats(self) -> dict:
        return self.counters.snapshot()
