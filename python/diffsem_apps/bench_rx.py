"""`diffsem bench rx --samp-rate R[,R2,...]`: can the receiver keep up with a radio at R samples/s?

A recorded stream (noise at --snr between bursts, one k-symbol frame every 1/--images-per-s
seconds, built by ofdm_analog_tx) is played into ofdm_analog_rx (and, with --decoder, the
diffusion decoder in the same process) by a source that behaves like an SDR's: samples fall due
at R per wall-clock second whether or not the flowgraph takes them; what has not been taken once
more than --device-buffer-ms of them are due is dropped and counted, as a USB radio overflows
("O"). Prints one JSON line per rate: samples played and dropped, frames on air, frames the
receiver decoded, images the decoder produced. A rate holds when nothing is dropped and every
frame on air is received. `--impairment narrowband --sir S` puts channel_sim's interferer on
every burst: the receiver's path for frames with interfered carriers, at a radio's pace. Figures, not a test: they depend on the machine and its load.
"""
from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
from gnuradio import blocks, gr

from diffsem import phy
from diffsem.channel import impairment_cells_numpy
from diffsem.phy import impairments
from diffsem.args import UsageError


def add_arguments(parser):
    parser.add_argument("--samp-rate", default="4e6",
                        help="sample rate(s) in samples/s, comma-separated (default 4e6)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds played per rate (default 5)")
    parser.add_argument("--images-per-s", type=float, default=100.0, help="frames per second on air (default 100)")
    parser.add_argument("--k", type=int, default=128, help="symbols per frame (default 128)")
    parser.add_argument("--snr", type=float, default=15.0, help="Es/N0 per payload symbol, dB (default 15)")
    parser.add_argument("--decoder", default="none",
                        help='"none" (receiver only) or a decoder as `diffsem rx --decoder` takes it (diffusion:2)')
    parser.add_argument("--models-dir", default="")
    parser.add_argument("--device-buffer-ms", type=float, default=50.0,
                        help="samples the emulated radio holds before it drops (default 50 ms: a HackRF's 4 x 256 KiB USB transfers hold 65 ms at 8 Msps)")
    parser.add_argument("--mf-threshold", type=float, default=None,
                        help="the receiver's matched-filter threshold (0: Schmidl & Cox alone at 0.2, as before it)")
    parser.add_argument("--impairment", choices=("none", "narrowband"), default="none",
                        help="a narrowband interferer on every burst, as channel_sim makes it (default none): "
                             "frames with interfered carriers take the receiver's slower path")
    parser.add_argument("--fraction", type=float, default=0.125,
                        help="narrowband: share of the 48 data carriers hit (default 0.125: 6)")
    parser.add_argument("--sir", type=float, default=0.0, help="narrowband: SIR per hit cell, dB (default 0)")
    parser.add_argument("--seed", type=int, default=0)


class radio_clock_source(gr.sync_block):
    """Plays `recording` (looped) at `samp_rate` by the wall clock, like an SDR source: samples
    not taken within `buffer` samples of falling due are dropped (stats()["dropped"])."""

    def __init__(self, recording, samp_rate, buffer, seconds):
        gr.sync_block.__init__(self, name="radio_clock_source", in_sig=None, out_sig=[np.complex64])
        self.rec = recording
        self.rate = float(samp_rate)
        self.buffer = int(buffer)
        self.total = int(seconds * self.rate)
        self.packet = max(int(self.rate * 1e-3), 512)  # a radio hands over ~1 ms packets
        self.t0 = None
        self.played = self.dropped = self.overflows = 0
        self._lock = threading.Lock()

    def _advance(self):
        """Index of the next sample to play, in the recording's (looped) time line."""
        return self.played + self.dropped

    def work(self, input_items, output_items):
        out = output_items[0]
        if self.t0 is None:
            self.t0 = time.monotonic()
        pos = self._advance()
        if pos >= self.total:  # played: quiet zeros at the rate while the receiver finishes
            n = min(self.packet, len(out))
            time.sleep(n / self.rate)
            out[:n] = 0
            return n
        due = min(int((time.monotonic() - self.t0) * self.rate), self.total) - pos
        if due < self.packet and pos + due < self.total:
            time.sleep((self.packet - due) / self.rate)
            due = min(int((time.monotonic() - self.t0) * self.rate), self.total) - pos
        if due > self.buffer:  # the radio's buffer overflowed: those samples are gone
            lost = due - self.buffer
            with self._lock:
                self.dropped += lost
                self.overflows += 1
            pos += lost
            due = self.buffer
        n = min(due, len(out))
        if n <= 0:
            return 0
        idx = (pos + np.arange(n)) % self.rec.size
        out[:n] = self.rec[idx]
        self.played += n
        return n


def make_recording(samp_rate, images_per_s, k, snr_db, seed, impairment="none", fraction=0.125, sir_db=0.0):
    """One second of stream: a burst every samp_rate / images_per_s samples (distinct frames),
    noise everywhere; with impairment "narrowband" each burst gets channel_sim's interferer (cells
    by diffsem.channel.impairment_cells_numpy, samples by diffsem.phy.impairments). Returns
    (samples, burst start indices, burst length)."""
    from gnuradio import diffsem
    from gnuradio.diffsem.harness import record_bursts
    period = int(round(samp_rate / images_per_s))
    n_frames = max(int(images_per_s), 1)
    tb = gr.top_block("bench_rx_tx")
    src = diffsem.symbol_source(k, n_frames, 0.0, seed, n_frames)
    tx = diffsem.ofdm_analog_tx()
    sink = blocks.vector_sink_c()
    tb.msg_connect(src, "out", tx, "in")
    tb.connect(tx, sink)
    burst = tx.burst_length(k)
    if burst > period:
        raise UsageError(f"{images_per_s:g} frames/s of {burst} samples do not fit {samp_rate:g} samples/s")
    bursts = record_bursts(tb, sink, n_frames, burst)
    rng = np.random.default_rng(seed)
    sigma = phy.noise_voltage_for_snr(snr_db)
    x = (sigma / np.sqrt(2) * (rng.standard_normal(period * n_frames) + 1j * rng.standard_normal(period * n_frames)))
    x = x.astype(np.complex64)
    starts = np.arange(len(bursts)) * period
    for s, b in zip(starts, bursts):
        x[s:s + burst] += b
        if impairment == "narrowband":
            lay = tx.layout
            cells = impairment_cells_numpy("narrowband", fraction, 1, k, rng, lay)[0]
            add = impairments.narrowband_interference(cells, 2 + tx.header_repeats + lay.n_ofdm_symbols(k),
                                                      sir_db, rng, lay)
            x[s + tx.pad_front:s + tx.pad_front + add.size] += add
    return x, starts, burst


def bench(samp_rate, args) -> dict:
    from gnuradio import diffsem
    rec, starts, burst = make_recording(samp_rate, args.images_per_s, args.k, args.snr, args.seed,
                                        args.impairment, args.fraction, args.sir)
    tb = gr.top_block("bench_rx")
    src = radio_clock_source(rec, samp_rate, args.device_buffer_ms * 1e-3 * samp_rate, args.seconds)
    from diffsem.phy import burst_rx
    kwargs = {}
    if args.mf_threshold is not None:
        kwargs["mf_threshold"] = args.mf_threshold
        if args.mf_threshold <= 0:
            kwargs["sync_threshold"] = burst_rx.SC_ONLY_SYNC_THRESHOLD
    rx = diffsem.ofdm_analog_rx(samp_rate=samp_rate, **kwargs)
    tb.connect(src, rx)
    dec = None
    if args.decoder != "none":
        from gnuradio.diffsem.harness import parse_decoders
        mode, steps = parse_decoders([args.decoder])[0]
        dec = diffsem.diffusion_decoder(args.k, mode, steps or 2, "", args.models_dir, "cpu", args.seed,
                                        64, 8, "oldest", 1)
        tb.msg_connect(rx, "out", dec, "in")
    t0 = time.monotonic()
    tb.start()
    while src._advance() < src.total:
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    time.sleep(0.5)  # the frames still in the receiver's buffers
    if dec is not None:
        dec.wait_idle(30)
    tb.stop()
    tb.wait()
    on_air = int(np.sum((np.arange(int(np.ceil(args.seconds))) [:, None] * rec.size + starts[None, :]).ravel()
                        + burst <= src.total))
    out = dict(samp_rate=samp_rate, seconds=round(seconds, 2), samples_played=src.played,
               samples_dropped=src.dropped, overflows=src.overflows, frames_on_air=on_air,
               frames_received=rx.stats()["frames"], rx=rx.stats(), decoder=args.decoder,
               mf_threshold=rx.receiver.detector.threshold if rx.receiver.detector else 0.0)
    if dec is not None:
        st = dec.stats()
        out.update(images_decoded=st.get("processed"), decoder_dropped=st.get("dropped_queue"))
    out["holds"] = src.dropped == 0 and out["frames_received"] >= on_air
    return out


def run(args) -> int:
    from diffsem.runtime.onnx_model import cpu_name
    for rate in [float(r) for r in str(args.samp_rate).split(",") if r.strip()]:
        res = bench(rate, args)
        res.update(cpus=os.cpu_count(), cpu=cpu_name(), images_per_s=args.images_per_s, k=args.k, snr_db=args.snr,
                   impairment=args.impairment)
        if args.impairment != "none":
            res.update(fraction=args.fraction, sir_db=args.sir)
        print(json.dumps(res), flush=True)
    return 0
