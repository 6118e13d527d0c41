"""`diffsem bench phy`: sample rate of the analog OFDM loopback (TX + channel + RX in one
flowgraph) against gr-digital's stock ofdm_tx/ofdm_rx loopback on the same channel, measured in
the same run. Prints one JSON line: ours_msps, stock_msps, ratio and the settings behind them.

Also, from the same runs' recorded channel output, each receiver alone (`*_rx_only_msps`): what
it costs where the TX is another process or machine, as over the air.

Both chains: 64-FFT, 802.11a-like carriers, the same zero padding between bursts, channel_model
AWGN at the same SNR, frames sent as fast as the flowgraph takes them. Msps counts every sample
through the channel, padding included. Ours carries 128 analog symbols per frame; the stock
chain 32-byte packets with QPSK payload (3 payload OFDM symbols each, like ours).

Both chains end in a C++ sink; ours checks its frames' symbols after the clock stops.
What bounds ours in one process: its TX, RX and the test source are Python blocks
whose per-frame work takes turns under the interpreter lock, where the stock chain's C++ blocks
run side by side on the cores; and a receiver that keeps pace with its TX gets a few frames per
call, where its batched steps gain little (docs/results/phy_rate.md). The receiver alone, on the
recorded stream, is faster than the stock one (`*_rx_only_msps`).
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pmt
from gnuradio import blocks, channels, digital, gr

from diffsem import args as checks
from diffsem import phy
from diffsem.runtime.onnx_model import cpu_name


def add_arguments(parser):
    parser.add_argument("--frames", type=checks.positive_int, default=2000, help="frames per chain (default 2000)")
    parser.add_argument("--snr-db", type=checks.float_range(-50.0, 100.0), default=20.0, help="AWGN Es/N0 per symbol (default 20)")
    parser.add_argument("--symbols", type=checks.int_range(1, 4095), default=128, help="analog symbols per frame (default 128)")
    parser.add_argument("--seed", type=checks.nonnegative_int, default=0)


def _rx_only(samples: np.ndarray, make_rx, count) -> dict:
    """The receiver alone on recorded channel output (what it costs where the TX runs in another
    process or on another machine, as over the air): Msps and frames received."""
    tb = gr.top_block("rx_only")
    src = blocks.vector_source_c(samples.tolist(), False)
    rx = make_rx(tb, src)
    t0 = time.monotonic()
    tb.run()
    seconds = time.monotonic() - t0
    return dict(msps=samples.size / seconds / 1e6, frames_received=count(rx))


def bench_ours(frames: int, snr_db: float, n_symbols: int, seed: int) -> dict:
    from gnuradio import diffsem
    from gnuradio.diffsem import ofdm_analog_rx
    from gnuradio.diffsem.harness import wait_for_frames
    # As in the stock chain, the frames land in a C++ sink while the clock runs and are checked
    # after it stops (the Python symbol_checker, timed, took a fifth of the busy samples); and the
    # source has no acknowledgement window: like the stock chain's vector source it offers every
    # frame and only the flowgraph's buffers hold it back.
    tb = gr.top_block("diffsem_phy_bench")
    source = diffsem.symbol_source(n_symbols, frames, 0.0, seed, frames)
    tx = diffsem.ofdm_analog_tx()
    channel = diffsem.channel_sim(snr_db, "awgn", 0.0, 0.0, seed)
    rx = ofdm_analog_rx()
    sink = blocks.message_debug()
    recorder = blocks.vector_sink_c()
    tb.msg_connect(source, "out", tx, "in")
    tb.connect(tx, channel, rx)
    tb.msg_connect(rx, "out", sink, "store")
    tb.connect(channel, recorder)
    # the payloads made before the clock starts, as the stock chain's vector source holds its bytes
    for seq in range(min(frames, phy.SEQ_MODULO)):
        phy.reference_symbols(seed, seq, n_symbols)
    samples_per_frame = tx.burst_length(n_symbols)
    t0 = time.monotonic()
    tb.start()
    wait_for_frames(sink.num_messages, source, frames, timeout=600.0, idle=5.0, poll=0.005)
    seconds = time.monotonic() - t0
    tb.stop()
    tb.wait()
    checker = diffsem.symbol_checker(n_symbols, seed, 0)
    checker.keep_records = False
    for i in range(sink.num_messages()):
        checker.handle(sink.get_message(i))
    checked = checker.stats()

    def make_rx(top, src):
        receiver = ofdm_analog_rx()
        top.connect(src, receiver)
        return receiver

    rx_only = _rx_only(np.asarray(recorder.data(), dtype=np.complex64), make_rx, lambda r: r.stats()["frames"])
    return dict(msps=source.sent * samples_per_frame / seconds / 1e6, seconds=seconds,
                frames_sent=source.sent, frames_received=checked["frames"], refused=checked.get("malformed", 0),
                samples_per_frame=samples_per_frame, mse_db=checked.get("mse_db"), rx_only=rx_only)


def stock_packet_source(frames: int, packet_bytes: int, seed: int):
    """`frames` random packets of `packet_bytes` for gr-digital's stock ofdm_tx: a vector_source_b
    with a `packet_length` tag (ofdm_tx's default length key) at the start of each."""
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 256, size=frames * packet_bytes, dtype=np.uint8)
    tags = []
    for i in range(frames):
        tag = gr.tag_t()
        tag.offset, tag.key, tag.value = i * packet_bytes, pmt.intern("packet_length"), pmt.from_long(packet_bytes)
        tags.append(tag)
    return blocks.vector_source_b(payload.tolist(), False, 1, tags)


def bench_stock(frames: int, snr_db: float, seed: int, pad: int, packet_bytes: int = 32) -> dict:
    tb = gr.top_block("stock_ofdm_loopback")
    src = stock_packet_source(frames, packet_bytes, seed)
    tx = digital.ofdm_tx(bps_header=1, bps_payload=2, rolloff=0)
    padder = digital.burst_shaper_cc([], pad, pad, False, "packet_length")
    # the stock TX gives each active carrier unit power without scaling, so per-sample power is
    # n_active: scale the noise the same way to get the same per-symbol SNR as ours
    noise = phy.noise_voltage_for_snr(snr_db) * np.sqrt(phy.n_active())
    chan = channels.channel_model(noise, 0.0, 1.0, [1.0], float(seed))
    rx = digital.ofdm_rx(bps_header=1, bps_payload=2)
    sink = blocks.vector_sink_b()
    probe = blocks.probe_rate(gr.sizeof_gr_complex, 1000.0, 0.15)
    recorder = blocks.vector_sink_c()
    tb.connect(src, tx, padder, chan, rx, sink)
    tb.connect(chan, probe)
    tb.connect(chan, recorder)
    t0 = time.monotonic()
    tb.run()
    seconds = time.monotonic() - t0
    samples = probe.nitems_read(0)

    def make_rx(top, src):
        stock_rx, out = digital.ofdm_rx(bps_header=1, bps_payload=2), blocks.vector_sink_b()
        top.connect(src, stock_rx, out)
        return out

    rx_only = _rx_only(np.asarray(recorder.data(), dtype=np.complex64), make_rx,
                       lambda out: len(out.data()) // packet_bytes)
    return dict(msps=samples / seconds / 1e6, seconds=seconds, frames_sent=frames,
                frames_received=len(sink.data()) // packet_bytes,
                samples_per_frame=samples / frames, rx_only=rx_only)


def run(args) -> int:
    ours = bench_ours(args.frames, args.snr_db, args.symbols, args.seed)
    pad = 4 * (phy.DEFAULT_LAYOUT.fft_len + phy.DEFAULT_LAYOUT.cp_len)
    stock = bench_stock(args.frames, args.snr_db, args.seed, pad)
    out = dict(ours_msps=round(ours["msps"], 3), stock_msps=round(stock["msps"], 3),
               ratio=round(ours["msps"] / stock["msps"], 3) if stock["msps"] else None,
               ours_rx_only_msps=round(ours["rx_only"]["msps"], 3),
               stock_rx_only_msps=round(stock["rx_only"]["msps"], 3),
               rx_only_ratio=round(ours["rx_only"]["msps"] / stock["rx_only"]["msps"], 3)
               if stock["rx_only"]["msps"] else None,
               snr_db=args.snr_db, frames=args.frames, symbols_per_frame=args.symbols,
               ours=ours, stock=stock, cpus=os.cpu_count(), cpu=cpu_name(),
               gnuradio=gr.version())
    print(json.dumps(out))
    return 0
