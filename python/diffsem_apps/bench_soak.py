"""`diffsem bench soak`: the semantic loopback (image source -> encoder -> OFDM TX -> channel ->
OFDM RX -> diffusion decoder -> metrics -> ZMQ taps with one subscriber that never reads) for
--minutes, sampling every --every seconds the process RSS, the decoder's queue depth, the taps'
sent/dropped counts and the accounting. One JSON line per sample, then a summary: memory growth
over the run after the first --warmup minutes, the accounting identity at the end (after the
link drained), and whether the taps ever blocked the link (they must only drop).
"""
from __future__ import annotations

import json
import time
from collections import deque

from diffsem import args as checks

IDENTITY = ("decoded", "unmatched", "crc_dropped", "queue_dropped", "bad_input", "failed", "missing")


def add_arguments(parser):
    parser.add_argument("--minutes", type=checks.float_range(0.1, 24 * 60), default=10.0,
                        help="how long to offer images (default 10)")
    parser.add_argument("--rate", type=checks.float_range(0.1, 10000.0), default=20.0,
                        help="images per second offered (default 20)")
    parser.add_argument("--every", type=checks.float_range(0.5, 3600.0), default=10.0,
                        help="seconds between samples (default 10)")
    parser.add_argument("--warmup", type=checks.nonnegative_float, default=2.0,
                        help="minutes left out of the memory-growth figure (default 2)")
    parser.add_argument("--decoder", default="diffusion:1", help="diffusion:<1|2|4> or deepjscc (default diffusion:1)")
    parser.add_argument("--snr", type=checks.float_range(-50.0, 100.0), default=15.0)
    parser.add_argument("--records", type=checks.int_range(1, 1 << 20), default=256,
                        help="per-frame records link_metrics keeps (its window; default 256)")
    parser.add_argument("--models-dir", default="", help="folder of ONNX models + cards (default models/)")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def run(args) -> int:
    import zmq

    from gnuradio.diffsem.harness import LoopbackSim

    seconds = args.minutes * 60.0
    # the Fashion-MNIST test split has 10 000 images: a longer soak loops over them (seq keeps counting)
    count = int(round(args.rate * seconds))
    tb = LoopbackSim(snr_db=args.snr, decoders=[args.decoder], count=min(count, 10000), rate=args.rate,
                     loop=count > 10000,
                     models_dir=args.models_dir, provider="cpu", max_queue=64, classifier_card="none",
                     taps_address="tcp://127.0.0.1:0")
    for met in tb.metrics:  # the per-frame record window (a fixed cost once full) would fill only after
        met.records = deque(met.records, maxlen=args.records)  # minutes: cut it so growth beyond it shows
    slow = zmq.Context.instance().socket(zmq.SUB)  # subscribes to everything and never reads
    slow.setsockopt(zmq.RCVHWM, 16)
    slow.subscribe(b"")
    slow.connect(tb.taps.address)
    samples = []
    t0 = time.monotonic()
    tb.start()
    while time.monotonic() - t0 < seconds and not tb.src.finished():
        time.sleep(min(args.every, 0.5))
        if time.monotonic() - t0 >= args.every * (len(samples) + 1):
            samples.append(_sample(tb, t0))
            print(json.dumps(samples[-1]), flush=True)
    tb.src.stop()  # a looping source never finishes by itself
    # drain: what is still missing once the link is quiet was lost
    end = time.monotonic() + 60
    while time.monotonic() < end and not tb._settled():
        time.sleep(0.2)
    final = _sample(tb, t0)
    tb.stop()
    tb.wait()
    slow.close(0)
    tb.taps.close()
    acc = final["accounting"]
    warm = [s for s in samples if s["t_s"] >= args.warmup * 60.0] or samples
    growth = 100.0 * (warm[-1]["rss_mb"] - warm[0]["rss_mb"]) / warm[0]["rss_mb"] if len(warm) > 1 else 0.0
    summary = {"soak": {
        "minutes": round((time.monotonic() - t0) / 60.0, 2), "rate": args.rate, "decoder": args.decoder,
        "records_window": args.records,
        "images_sent": acc["sent"], "decoded": acc["decoded"],
        "rss_mb_start": samples[0]["rss_mb"] if samples else None, "rss_mb_end": final["rss_mb"],
        "rss_growth_after_warmup_pct": round(growth, 2),
        "identity_exact": acc["sent"] == sum(acc[k] for k in IDENTITY),
        "accounting": acc, "taps": final["taps"],
        # the link never waited for the taps: no frame was dropped anywhere for lack of time
        "taps_never_blocked": acc["queue_dropped"] == 0,
        "max_decoder_queue": max((s["decoder_queue"] for s in samples), default=0)}}
    print(json.dumps(summary), flush=True)
    return 0 if summary["soak"]["identity_exact"] else 1


def _sample(tb, t0) -> dict:
    met, dec = tb.metrics[0], tb.decoders[0]
    taps = tb.taps.stats()
    return {"t_s": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(), 1),
            "decoder_queue": dec.stats().get("queue_depth", 0),
            "taps": {"sent": sum(taps["sent"].values()), "dropped": sum(taps["dropped"].values())},
            "accounting": {k: v for k, v in met.accounting().items() if isinstance(v, int)}}
