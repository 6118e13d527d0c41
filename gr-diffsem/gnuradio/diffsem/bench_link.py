"""The semantic loopback over the simulated channel, as a Python top block, and `diffsem bench link`.

    image_source -> semantic_encoder -> ofdm_analog_tx -> channel_sim -> ofdm_analog_rx
        -> diffusion_decoder (one per decoder asked for) -> link_metrics (+ image_sink, zmq_taps)

`LoopbackSim` is what flowgraphs/loopback_sim.grc draws, built in code so the demo, the
benchmark and the tests run the same graph headless; `run_until_drained` starts it, waits until
every frame sent is accounted for (decoded, CRC-dropped, queue-dropped, ...) or the link has
been quiet for `quiet_s`, and stops it.

`diffsem bench link` prints one JSON line: images/s through the whole flowgraph (all images
offered at once, no drops allowed), per-image latency p50/p99 from encoder input to decoder
output measured in a second pass offered at half that throughput (so it is latency, not
queueing), the drops, and the OFDM sample rate the flowgraph sustained.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import numpy as np
from gnuradio import blocks, gr


DEFAULT_DECODERS = ("diffusion:2",)


def parse_decoders(specs) -> list[tuple[str, int]]:
    """["diffusion:2", "deepjscc"] -> [("diffusion", 2), ("deepjscc", 0)]."""
    out = []
    for spec in specs:
        mode, _, steps = str(spec).partition(":")
        if mode not in ("diffusion", "deepjscc"):
            raise ValueError(f"decoder {spec!r}: use diffusion:<1|2|4> or deepjscc")
        out.append((mode, int(steps or 2) if mode == "diffusion" else 0))
    return out


class LoopbackSim(gr.top_block):
    """The semantic link over channel_sim, headless. Blocks are attributes (src, enc, tx, chan,
    rx, decoders[i], metrics[i], sink, taps) so callers read their counters."""

    def __init__(self, k=128, snr_db=10.0, channel="awgn", decoders=DEFAULT_DECODERS, count=16, first=0,
                 rate=0.0, models_dir="", provider="auto", seed=0, cfo=0.0, timing_offset=0.0,
                 max_queue=16, max_batch=8, drop_policy="oldest", classifier_card="", keep_images=False,
                 image_folder="", taps_address="", threads=1, source="fashion-mnist", start_delay=0.2,
                 chan_seed=None, sync_threshold=None, impairment=None, tx_kwargs=None, chan_kwargs=None):
        gr.top_block.__init__(self, "diffsem loopback_sim")
        from gnuradio import diffsem

        self.src = diffsem.image_source(source, "test", first, count, False, rate, start_delay)
        self.enc = diffsem.semantic_encoder(k, "", models_dir, provider, snr_db, max(64, max_queue), max_batch,
                                            drop_policy, threads)
        # tx_kwargs / chan_kwargs: extra options of the TX (e.g. clip_db) and channel (hardware impairments)
        self.tx = diffsem.ofdm_analog_tx(**(tx_kwargs or {}))
        self.chan = diffsem.channel_sim(snr_db, channel, cfo, timing_offset, seed if chan_seed is None else chan_seed,
                                        **(chan_kwargs or {}))
        self.rx = diffsem.ofdm_analog_rx() if sync_threshold is None else \
            diffsem.ofdm_analog_rx(sync_threshold=sync_threshold)
        self.samples = blocks.null_sink(gr.sizeof_gr_complex)  # counts the OFDM samples that went through
        self.msg_connect(self.src, "out", self.enc, "in")
        self.msg_connect(self.enc, "out", self.tx, "in")
        # `impairment`: an optional complex stream block between TX and channel (tests jam bursts with it)
        if impairment is not None:
            self.connect(self.tx, impairment, self.chan, self.rx)
        else:
            self.connect(self.tx, self.chan, self.rx)
        self.connect(self.chan, self.samples)

        self.decoders, self.metrics = [], []
        for mode, steps in parse_decoders(decoders):
            dec = diffsem.diffusion_decoder(k, mode, steps or 2, "", models_dir, provider, seed, max_queue,
                                            max_batch, drop_policy, threads)
            met = diffsem.link_metrics(classifier_card, models_dir, keep_images, self.rx, dec.label)
            self.msg_connect(self.rx, "out", dec, "in")
            self.msg_connect(dec, "out", met, "in")
            self.msg_connect(dec, "drops", met, "drops")
            self.msg_connect(self.enc, "drops", met, "drops")
            self.msg_connect(self.src, "out", met, "ref")
            self.decoders.append(dec)
            self.metrics.append(met)

        self.sink = None
        if image_folder:
            self.sink = diffsem.image_sink(image_folder, "rx", True, 16, 64, 8, 1)
            self.msg_connect(self.decoders[0], "out", self.sink, "in")
        self.taps = None
        if taps_address:
            self.taps = diffsem.zmq_taps(taps_address)
            self.msg_connect(self.rx, "out", self.taps, "constellation")
            self.msg_connect(self.decoders[0], "out", self.taps, "image")
            self.msg_connect(self.decoders[0], "state", self.taps, "state")
            self.msg_connect(self.src, "out", self.taps, "ref")  # labels for the image tap
            for met in self.metrics:
                self.msg_connect(met, "metrics", self.taps, "metrics")
        self.elapsed_s = None

    def _settled(self) -> bool:
        if not self.src.finished():
            return False
        for met in self.metrics:
            acc = met.accounting()
            if acc["sent"] != self.src.sent or acc["missing"] != 0 or not met.wait_idle(0):
                return False
        return True

    def _progress(self):
        # The receiver reading samples is progress too: at low SNR a run of lost frames decodes
        # nothing for a while, and the link is not idle until the receiver has read the TX's output.
        return tuple(met.accounting()["decoded"] for met in self.metrics) + (
            self.rx.stats().get("frames", 0), self.rx.samples_read(), self.tx.emitted()[1])

    def run_until_drained(self, timeout_s: float = 600.0, quiet_s: float = 5.0, poll_s: float = 0.05) -> bool:
        """Run until every frame is accounted for (True), or nothing moved for quiet_s after the
        source finished / timeout_s passed (False: what is still missing was lost)."""
        t0 = time.perf_counter()
        self.start()
        ok = False
        try:
            last, t_last = None, time.perf_counter()
            while time.perf_counter() - t0 < timeout_s:
                if self._settled():
                    ok = True
                    break
                now = self._progress()
                if now != last:
                    last, t_last = now, time.perf_counter()
                elif self.src.finished() and time.perf_counter() - t_last > quiet_s:
                    break
                time.sleep(poll_s)
        finally:
            self.elapsed_s = time.perf_counter() - t0
            self.stop()
            self.wait()
            for met in self.metrics:
                met.wait_idle(10)
        return ok

    def report(self) -> dict:
        """Accounting and quality per decoder, PHY counters, samples through the channel."""
        out = {"sent": self.src.sent, "rx": self.rx.stats(), "tx": self.tx.stats(),
               "samples": int(self.samples.nitems_read(0)), "elapsed_s": self.elapsed_s, "decoders": []}
        for dec, met in zip(self.decoders, self.metrics):
            acc = met.accounting()
            out["decoders"].append({"decoder": dec.label, "model": dec.model.name, "provider": dec.provider,
                                    **acc, "lost": acc["missing"], **met.summary(), "worker": dec.stats()})
        return out


# --- diffsem bench link -----------------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("--images", type=int, default=64, help="images per pass (default 64)")
    parser.add_argument("--k", type=int, default=128)
    parser.add_argument("--snr", type=float, default=10.0, help="channel SNR, Es/N0 dB (default 10)")
    parser.add_argument("--channel", default="awgn", choices=("awgn", "rayleigh", "selective"))
    parser.add_argument("--decoder", default="diffusion:2", help="diffusion:<1|2|4> or deepjscc")
    parser.add_argument("--provider", default="auto", choices=("auto", "tensorrt", "cuda", "cpu"))
    parser.add_argument("--models-dir", default="", help="folder of ONNX models + cards (default models/)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = its default)")
    parser.add_argument("--seed", type=int, default=0)


def _pass(args, rate: float, count: int) -> tuple[LoopbackSim, bool]:
    tb = LoopbackSim(k=args.k, snr_db=args.snr, channel=args.channel, decoders=[args.decoder], count=count,
                     rate=rate, models_dir=args.models_dir, provider=args.provider, seed=args.seed,
                     max_queue=max(16, count), max_batch=args.max_batch, classifier_card="none",
                     threads=args.threads, start_delay=0.2)
    return tb, tb.run_until_drained(timeout_s=600, quiet_s=5)


def _latencies(met) -> np.ndarray:
    return np.asarray([r["e2e_latency_ms"] for r in met.records if r.get("e2e_latency_ms") is not None])


def run(args):
    from diffsem.cards import CardError
    from diffsem.runtime import ProviderUnavailable

    try:
        return _run(args)
    except (CardError, ProviderUnavailable) as exc:  # missing/tampered model, unavailable provider
        print(f"diffsem bench link: {exc}", file=sys.stderr)
        return 2


def _run(args):
    n = int(args.images)
    # pass 1: throughput, everything offered at once (queue big enough that nothing is dropped)
    tb, ok = _pass(args, 0.0, n)
    met, dec = tb.metrics[0], tb.decoders[0]
    recs = [r for r in met.records if r.get("t_src") is not None and r.get("t_dec_out") is not None]
    # first image emitted -> last image out of the decoder
    span_s = max(r["t_dec_out"] for r in recs) - min(r["t_src"] for r in recs) if recs else float("nan")
    acc = met.accounting()
    images_per_s = acc["decoded"] / span_s if recs else 0.0
    samples_per_s = tb.samples.nitems_read(0) / span_s if recs else 0.0
    # pass 2: latency at half the measured throughput
    rate = max(0.5, 0.5 * images_per_s)
    n_lat = max(8, min(n, int(rate * 20)))  # at most ~20 s
    tb2, ok2 = _pass(args, rate, n_lat)
    lat = _latencies(tb2.metrics[0])
    acc2 = tb2.metrics[0].accounting()
    result = {
        "bench": "link", "decoder": dec.label, "model": dec.model.name, "provider": dec.provider,
        "k": args.k, "snr_db": args.snr, "channel": args.channel, "images": n,
        "images_per_s": round(images_per_s, 3),
        "ofdm_msps": round(samples_per_s / 1e6, 4),
        "samples_per_image": int(tb.samples.nitems_read(0) / max(1, tb.src.sent)),
        "throughput_pass": {k: acc[k] for k in ("sent", "decoded", "crc_dropped", "queue_dropped", "missing")},
        "latency_pass": {"rate_images_per_s": round(rate, 3), "images": n_lat,
                         "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                         "latency_ms_p99": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
                         **{k: acc2[k] for k in ("sent", "decoded", "crc_dropped", "queue_dropped", "missing")}},
        "drops": acc["crc_dropped"] + acc["queue_dropped"] + acc["bad_input"] + acc["failed"]
                 + acc2["crc_dropped"] + acc2["queue_dropped"] + acc2["bad_input"] + acc2["failed"],
        "drained": bool(ok and ok2),
        "avg_psnr_db": met.summary()["avg_psnr_db"],
        "host": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                 "python": platform.python_version()},
    }
    print(json.dumps(result))
    return 0 if ok and ok2 else 1
