"""`diffsem bench link`: the semantic loopback over the simulated channel
(gnuradio.diffsem.harness.LoopbackSim, what flowgraphs/loopback_sim.grc draws) as a benchmark.

It prints one JSON line: images/s through the whole flowgraph (all images
offered at once, no drops allowed), per-image latency p50/p99 from encoder input to decoder
output measured in a second pass offered at half that throughput (so it is latency, not
queueing), the drops, and the OFDM sample rate the flowgraph sustained.
"""
from __future__ import annotations

import json
import os
import platform
import sys

import numpy as np

from gnuradio.diffsem.harness import LoopbackSim
from diffsem import args as checks


# --- diffsem bench link -----------------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("--images", type=checks.count_or_all_upto(16384), default=64,
                        help="test images per pass, or 'all' (the whole test split; default 64)")
    parser.add_argument("--k", type=checks.positive_int, default=128)
    parser.add_argument("--snr", type=checks.float_range(-50.0, 100.0), default=10.0, help="channel SNR, Es/N0 dB (default 10)")
    parser.add_argument("--channel", default="awgn", choices=("awgn", "rayleigh", "selective"))
    parser.add_argument("--decoder", default="diffusion:2", help="diffusion:<1|2|4> or deepjscc")
    parser.add_argument("--provider", default="auto", choices=("auto", "tensorrt", "cuda", "cpu"))
    parser.add_argument("--models-dir", default="", help="folder of ONNX models + cards (default models/)")
    parser.add_argument("--max-batch", type=checks.positive_int, default=8)
    parser.add_argument("--threads", type=checks.nonnegative_int, default=0, help="ONNX Runtime intra-op threads (0 = its default)")
    parser.add_argument("--seed", type=checks.nonnegative_int, default=0)


def _pass(args, rate: float, count: int) -> tuple[LoopbackSim, bool]:
    tb = LoopbackSim(k=args.k, snr_db=args.snr, channel=args.channel, decoders=[args.decoder], count=count,
                     rate=rate, models_dir=args.models_dir, provider=args.provider, seed=args.seed,
                     max_queue=max(16, count), max_batch=args.max_batch, classifier_card="none",
                     threads=args.threads, start_delay=0.2)
    return tb, tb.run_until_drained(timeout_s=600, quiet_s=5)


def _latencies(met) -> np.ndarray:
    return np.asarray([r["e2e_latency_ms"] for r in met.records if r.get("e2e_latency_ms") is not None])


def run(args):
    from diffsem.runtime.cards import CardError
    from diffsem.runtime import ProviderUnavailable

    try:
        return _run(args)
    except (CardError, ProviderUnavailable) as exc:  # missing/tampered model, unavailable provider
        print(f"diffsem bench link: {exc}", file=sys.stderr)
        return 2


def _run(args):
    from diffsem.data import count_of

    n = count_of("test", 0, args.images)  # "all" (0): the whole test split; never more than it holds
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
