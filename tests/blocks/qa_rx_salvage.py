"""ofdm_analog_rx with the link's k fixed delivers frames whose header CRC failed, marked and
counted as salvaged; every detected frame stays counted once."""
from gnuradio.diffsem.harness import PhyLoopback


def test_fixed_k_salvages_failed_headers_and_counts_them():
    runs = {}
    for fixed_k in (0, 128):
        # -4 dB: where some headers fail their CRC but the known length still singles one out
        # (4 of these 50 frames). All 50 go out at once (window=50: no waiting on the acks of lost
        # frames); the receiver takes ~0.2 s for them, so 1.5 s without a frame means the rest were lost
        tb = PhyLoopback(-4.0, "awgn", n_frames=50, n_symbols=128, seed=2, window=50, rx_kwargs=dict(fixed_k=fixed_k))
        runs[fixed_k] = tb.run_until_done(timeout=120, idle=1.5)
    off, on = runs[0]["rx"], runs[128]["rx"]
    assert off["salvaged"] == 0 and on["salvaged"] > 0
    assert on["frames"] == on["headers_ok"] + on["salvaged"]
    # the same frames were detected: those salvaged left the CRC-failure count
    assert on["header_crc_fail"] + on["salvaged"] == off["header_crc_fail"] + off["salvaged"]
    assert runs[128]["lost"] == runs[0]["lost"] - on["salvaged"]
