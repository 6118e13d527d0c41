"""The analog OFDM PHY without GNU Radio: the frame layout (`ofdm`), the frame and header format
with the per-frame estimator (`framing`, re-exported here: `phy.SEQ_MODULO`, `phy.header_bits`,
...), the burst receiver (`burst_rx`, frame by frame, the reference; `burst_batch`, all frames
of a buffer at once, what the RX block wraps), and the hardware impairments the channel block
and the TX clipper model (`impairments`). The SNR and frame conventions are in
docs/design/conventions.md."""
from diffsem.phy.framing import (  # noqa: F401 (the PHY's API)
    HEADER_BITS_LEN, HEADER_BITS_SEQ, SEQ_MODULO, SYNC_SEED, PHASE_TRACKING, LEN_TAG,
    carriers_by_role, n_active, tx_scale, noise_voltage_for_snr, sync_words, crc8, crc8_rows, header_bits,
    header_bits_rows, header_symbols, header_shift, header_unshift_index, header_bit_of_carrier,
    header_scrambler, header_copies, header_copies_rows, check_payload, fractional_delay_taps, fit_phase_slope, combine_header,
    preamble_interference,
    FrameEstimate, FrameEstimator, reference_symbols, reference_burst, BurstBuilder,
)
from diffsem.phy.ofdm import DEFAULT_LAYOUT, MAX_SYMBOLS_PER_FRAME, OfdmLayout  # noqa: F401
