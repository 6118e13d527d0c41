"""`diffsem demo`: the semantic link end to end, headless — the README's main command.

    diffsem demo --out out/demo                  # 10 dB and friends, AWGN and Rayleigh
    diffsem monitor                              # second terminal: watch it live on the ZMQ taps
    diffsem demo --impairment narrowband --fraction 0.125 --sir 0 --snr 10 --channel awgn
                                                 # the same link with an interferer on 6 of 48 carriers

For every channel x SNR it builds the loopback flowgraph (gnuradio.diffsem.harness.LoopbackSim:
image_source -> semantic_encoder -> ofdm_analog_tx -> channel_sim -> ofdm_analog_rx -> the
distilled diffusion decoder AND the DeepJSCC decoder on the same received frames -> link_metrics,
zmq_taps), sends --n Fashion-MNIST test images through it and waits until every frame is
accounted for. It then writes to --out:

* mosaic.png (and mosaic_<channel>.png per channel): rows original, then DeepJSCC and diffusion
  per SNR; columns the first --show test images;
* metrics.json: per point and decoder, the in-flowgraph scores (diffsem.experiments.evaluate.score on the
  reconstructions that came out of the flowgraph: PSNR per image on [0,1], SSIM, classifier
  accuracy, FID-FMNIST), the same scores offline (same images and models through
  diffsem.channel.transmit, i.e. what `diffsem eval` measures) and their difference, the frame
  accounting, the RX's SNR estimate and the end-to-end latency;
* psnr_accuracy_vs_snr.png: PSNR and accuracy vs SNR, in-flowgraph (solid) and offline (dashed).

--impairment adds a partial-frame impairment to every point: channel_sim's stage in the
flowgraph, diffsem.channel.impair offline (the same cells, one definition; --fraction, --sir).

"""
from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from diffsem import args as checks
from diffsem import images as imglib
from diffsem.link.taps import DEFAULT_ADDRESS

log = logging.getLogger("diffsem.demo")


def add_arguments(parser):
    parser.add_argument("--out", type=checks.writable_dir, default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--n", type=checks.count_or_all_upto(10000), default=64,
                        help="test images per point, or 'all' (the test split from --first; default 64)")
    parser.add_argument("--first", type=checks.int_range(0, 9999), default=0, help="first test-set index (default 0)")
    parser.add_argument("--show", type=checks.int_range(1, 64), default=8, help="images per mosaic row (default 8)")
    parser.add_argument("--snr", type=checks.float_range(-50.0, 100.0), nargs="+", default=[5.0, 10.0, 20.0],
                        help="channel SNRs, Es/N0 dB per symbol (default 5 10 20)")
    parser.add_argument("--channel", nargs="+", default=["awgn", "rayleigh"],
                        choices=("awgn", "rayleigh", "selective"), help="channels (default awgn rayleigh)")
    parser.add_argument("--k", type=checks.positive_int, default=128, help="symbols per image (default 128)")
    parser.add_argument("--steps", type=int, default=2, choices=(1, 2, 4), help="diffusion decoder steps (default 2)")
    parser.add_argument("--provider", default="auto", choices=("auto", "tensorrt", "cuda", "cpu"))
    parser.add_argument("--models-dir", default="", help="ONNX models + cards (default: the shipped models/)")
    parser.add_argument("--taps", type=checks.optional_zmq_address, default=DEFAULT_ADDRESS,
                        help=f"ZMQ taps endpoint for `diffsem monitor` (default {DEFAULT_ADDRESS}; 'off' disables)")
    parser.add_argument("--impairment", default="none", choices=("none", "narrowband", "burst", "truncation"),
                        help="partial-frame impairment at every point (channel_sim; default none)")
    parser.add_argument("--fraction", type=checks.float_range(0.0, 1.0), default=0.125,
                        help="narrowband: share of the 48 data carriers hit; burst: of OFDM symbols; truncation: "
                             "of the frame's tail (default 0.125: 6 carriers)")
    parser.add_argument("--sir", type=checks.float_range(-50.0, 100.0), default=0.0,
                        help="narrowband: signal-to-interference ratio per hit cell, dB (default 0)")
    parser.add_argument("--rate", type=checks.nonnegative_float, default=0.0,
                        help="images/s offered to the link (default 0: as fast as it goes, nothing dropped)")
    parser.add_argument("--sync-threshold", type=checks.float_range(0.0, 1.0), default=None,
                        help="OFDM RX Schmidl & Cox threshold (default: the receiver's own)")
    parser.add_argument("--no-offline", action="store_true", help="skip the offline comparison")
    parser.add_argument("--seed", type=checks.nonnegative_int, default=0)
    parser.add_argument("--threads", type=checks.nonnegative_int, default=1, help="ONNX Runtime threads per model (default 1)")


# --- offline reference: the same images and models through the training channel -------------------

def offline_recons(models_dir, k, mode, steps, images, channel, snr_db, seed, provider="cpu", impairment=None):
    """What `diffsem eval` measures for this point: encoder -> diffsem.channel.transmit (ZF,
    per-symbol noise variance, torch generator seeded with `seed`; `impairment` (kind, fraction,
    sir_db) or None) -> decoder, batched."""
    import torch

    from diffsem.runtime import inference, naming
    from diffsem.channel import transmit
    from diffsem.experiments.evaluate import active_impairment, impairment_generator

    # as the flowgraph (harness.LoopbackSim): the encoder designs for the channel's SNR and the
    # decoder is told that SNR
    enc = inference.FrameEncoder(inference.load_model(
        naming.resolve_card(None, "encoder", k, None, models_dir or None), provider), snr_db)
    role = "diffusion" if mode == "diffusion" else "deepjscc"
    dec = inference.FrameDecoder(inference.load_model(
        naming.resolve_card(None, role, k, steps, models_dir or None), provider), k, mode, seed,
        encoder_snr_db=snr_db)
    gen = torch.Generator().manual_seed(int(seed))
    impairment = active_impairment(impairment)
    imp_gen = impairment_generator(seed) if impairment else None
    out = []
    for i in range(0, len(images), 64):
        batch = images[i:i + 64]
        symbols = np.stack(enc([inference.EncodeRequest(im[0]) for im in batch]))
        s_hat, noise_var = transmit(torch.from_numpy(inference.symbols_to_array(symbols)), float(snr_db), channel,
                                    "perfect", gen, impairment=impairment, impairment_generator=imp_gen)
        reqs = [inference.DecodeRequest(inference.array_to_symbols(s_hat[j].numpy()), float(snr_db),
                                        noise_var[j].numpy(), seq=i + j) for j in range(len(batch))]
        out.extend(dec(reqs))
    return np.stack(out)[:, None].astype(np.float32)


_warned = set()


def _score(recons, images, labels) -> dict:
    from diffsem.experiments.evaluate import score

    try:
        return score(recons, images, labels)
    except Exception as exc:  # no classifier shipped yet: PSNR/SSIM still mean something
        from diffsem import metrics
        if str(exc) not in _warned:
            _warned.add(str(exc))
            log.warning("classifier metrics unavailable (%s): PSNR/SSIM only", exc)
        return {"psnr": round(float(np.mean(metrics.psnr(recons, images))), 4),
                "ssim": round(float(np.mean(metrics.ssim(recons, images))), 5),
                "accuracy": None, "fid": None, "n": int(len(images))}


# --- one point through the flowgraph ----------------------------------------------------------------

def run_point(args, channel, snr_db, taps_address):
    from gnuradio.diffsem.harness import LoopbackSim

    tb = LoopbackSim(k=args.k, snr_db=snr_db, channel=channel, decoders=[f"diffusion:{args.steps}", "deepjscc"],
                     count=args.n, first=args.first, rate=args.rate, models_dir=args.models_dir,
                     provider=args.provider, seed=args.seed, max_queue=max(16, args.n), max_batch=8,
                     classifier_card="none", keep_images=True, taps_address=taps_address,
                     threads=args.threads, sync_threshold=args.sync_threshold, chan_kwargs=_impairment_kwargs(args))
    try:
        drained = tb.run_until_drained(timeout_s=max(120.0, 5.0 * args.n), quiet_s=5.0)
        report = tb.report()
        recs = [{r["seq"]: r for r in met.records} for met in tb.metrics]
        fills = [None if dec.fill is None else dec.fill[0] for dec in tb.decoders]
    finally:
        if tb.taps is not None:
            tb.taps.close()  # free the endpoint for the next point
    return drained, report, recs, fills


def _impairment(args):
    """(kind, fraction, sir_db) of --impairment, or None."""
    return None if args.impairment == "none" else (args.impairment, float(args.fraction), float(args.sir))


def _impairment_kwargs(args) -> dict:
    """channel_sim's options for --impairment (frame_k: truncation hits the training channel's cells)."""
    imp = _impairment(args)
    return {} if imp is None else dict(impairment=imp[0], impairment_fraction=imp[1], sir_db=imp[2], frame_k=args.k)


def _plot(points, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    keys = sorted({(p["channel"], p["decoder"]) for p in points})
    for (channel, decoder), color in zip(keys, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
        pts = sorted((p for p in points if p["channel"] == channel and p["decoder"] == decoder),
                     key=lambda p: p["snr_db"])
        snr = [p["snr_db"] for p in pts]
        for ax, key in zip(axes, ("psnr", "accuracy")):
            vals = [np.nan if p["in_flowgraph"].get(key) is None else p["in_flowgraph"][key] for p in pts]
            ax.plot(snr, vals, marker="o", color=color, label=f"{decoder}, {channel} (flowgraph)")
            off = [np.nan if not p.get("offline") or p["offline"].get(key) is None else p["offline"][key]
                   for p in pts]
            if not all(np.isnan(off)):
                ax.plot(snr, off, ls="--", marker="x", color=color, alpha=0.7, label=f"{decoder}, {channel} (offline)")
    for ax, title in zip(axes, ("PSNR (dB, mean per image on [0,1])", "classifier accuracy on reconstructions")):
        ax.set_xlabel("channel SNR (dB, Es/N0 per symbol)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if all(p["in_flowgraph"].get("accuracy") is None for p in points):
        axes[1].text(0.5, 0.5, "no classifier shipped (models/classifier.json):\naccuracy not measured",
                     ha="center", va="center", transform=axes[1].transAxes)
    imp = points[0].get("impairment")
    extra = f", {imp[0]} {imp[1]:g} at {imp[2]:g} dB SIR" if imp and imp[0] == "narrowband" else \
        (f", {imp[0]} {imp[1]:g}" if imp else "")
    fig.suptitle(f"gr-diffsem loopback over the analog OFDM PHY (n = {points[0]['in_flowgraph']['n']} per point{extra})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _percentile(values, q):
    values = [v for v in values if v is not None]
    return float(np.percentile(values, q)) if values else None


def summarize_point(args, channel, snr, drained, dec_report, by_seq, images, labels, fill=None):
    """One metrics.json entry (and the reconstructions). A lost frame is what the receiver shows
    for it: the decoder's fill from nothing (`fill`, the image diffusion_decoder shows for a gap
    in the sequence numbers; the frames lost after the last one received too), black without one."""
    mode = "diffusion" if dec_report["decoder"].startswith("diffusion") else "deepjscc"
    recons = np.zeros_like(images)
    if fill is not None:
        recons[:, 0] = fill
    delivered = [i for i in range(len(images)) if "image" in by_seq.get(i, {}) and not by_seq[i].get("filled")]
    for i in delivered:
        recons[i, 0] = by_seq[i]["image"]
    point = {"channel": channel, "snr_db": snr, "impairment": _impairment(args),
             "decoder": dec_report["decoder"], "model": dec_report["model"],
             "provider": dec_report["provider"], "in_flowgraph": _score(recons, images, labels),
             "accounting": {k: dec_report.get(k) for k in ("sent", "decoded", "filled", "crc_dropped", "queue_dropped",
                                                           "bad_input", "failed", "lost", "rx_false_triggers")},
             "drained": drained,
             "snr_est_db_mean": _mean([by_seq[i].get("snr_est_db") for i in delivered]),
             "e2e_latency_ms_p50": _percentile([by_seq[i].get("e2e_latency_ms") for i in delivered], 50),
             "e2e_latency_ms_p99": _percentile([by_seq[i].get("e2e_latency_ms") for i in delivered], 99)}
    # the run's images (0 = --first) shown as the fill: the mosaic marks them
    point["not_delivered"] = sorted(set(range(len(images))) - set(delivered))
    if delivered and len(delivered) < len(images):
        point["in_flowgraph_delivered_only"] = _score(recons[delivered], images[delivered], labels[delivered])
    if not args.no_offline:
        provider = "cpu" if args.provider == "auto" else args.provider
        off = offline_recons(args.models_dir, args.k, mode, args.steps, images, channel, snr, args.seed, provider,
                             _impairment(args))
        point["offline"] = _score(off, images, labels)
        point["offline_method"] = "encoder -> diffsem.channel.transmit (perfect CSI) -> decoder, as diffsem eval"
        point["delta_psnr_db"] = round(point["in_flowgraph"]["psnr"] - point["offline"]["psnr"], 3)
        acc_in, acc_off = point["in_flowgraph"].get("accuracy"), point["offline"].get("accuracy")
        if acc_in is not None and acc_off is not None:
            point["delta_accuracy_points"] = round(100 * (acc_in - acc_off), 2)
    return point, recons


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _point_line(point) -> str:
    acc, f = point["accounting"], point["in_flowgraph"]
    accuracy = f"{f['accuracy']:.3f}" if f.get("accuracy") is not None else "-"
    line = (f"{point['channel']:9s} {point['snr_db']:5.1f} dB  {point['decoder']:13s} psnr {f['psnr']:6.2f} dB  "
            f"acc {accuracy}  sent {acc['sent']} decoded {acc['decoded']} crc {acc['crc_dropped']} "
            f"queue {acc['queue_dropped']} lost {acc['lost']} filled {acc.get('filled') or 0}")
    if "offline" in point:
        line += f"  | offline psnr {point['offline']['psnr']:6.2f} (d {point['delta_psnr_db']:+.2f} dB)"
        if "delta_accuracy_points" in point:
            line += f" acc {point['offline']['accuracy']:.3f} (d {point['delta_accuracy_points']:+.1f} pts)"
    return line


def _command_line(args) -> str:
    parts = ["diffsem demo"]
    for key, value in vars(args).items():
        if key in ("command", "func") or value is None or value is False or value == "":
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts.append(f"{flag} {' '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in value)}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from diffsem.runtime.cards import CardError
    from diffsem.runtime import ProviderUnavailable

    try:
        return _run(args)
    except (CardError, ProviderUnavailable, OSError) as exc:  # missing/tampered model, provider, port in use
        print(f"diffsem demo: {exc}", file=sys.stderr)
        return 2


def _run(args):
    from diffsem.data import CLASSES, count_of, load

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    test_images, test_labels = load("test")
    args.n = count_of("test", args.first, args.n)  # "all" (0): the rest of the test split
    images = test_images[args.first:args.first + args.n]
    labels = test_labels[args.first:args.first + args.n]
    taps_address = None if str(args.taps).lower() in ("off", "none", "") else args.taps
    if taps_address:
        print(f"ZMQ taps on {taps_address}: watch with `diffsem monitor --address {taps_address}`", flush=True)

    points, tiles = [], {}
    t_start = time.perf_counter()
    for channel in args.channel:
        for snr in args.snr:
            t0 = time.perf_counter()
            drained, report, recs, fills = run_point(args, channel, snr, taps_address)
            for dec_report, by_seq, fill in zip(report["decoders"], recs, fills):
                point, recons = summarize_point(args, channel, snr, drained, dec_report, by_seq, images, labels,
                                                fill)
                points.append(point)
                mode = "diffusion" if point["decoder"].startswith("diffusion") else "deepjscc"
                shown = range(min(args.show, len(images)))
                tiles[(channel, snr, mode)] = ([recons[i, 0] for i in shown],
                                               set(point["not_delivered"]) & set(shown))
                print(_point_line(point), flush=True)
            log.info("%s %.1f dB done in %.1f s", channel, snr, time.perf_counter() - t0)

    # mosaics: original, then DeepJSCC / diffusion per SNR
    show = [images[i, 0] for i in range(min(args.show, len(images)))]
    header = [CLASSES[int(labels[i])].split("/")[0][:12] for i in range(len(show))]
    written = []
    for channel in args.channel:
        rows, names, lost = [show], ["original"], set()
        for snr in args.snr:
            for mode in ("deepjscc", "diffusion"):
                row, missed = tiles[(channel, snr, mode)]
                lost |= {(len(rows), j) for j in missed}
                rows.append(row)
            names += [f"DeepJSCC {snr:g} dB", f"diffusion s{args.steps} {snr:g} dB"]
        pil = imglib.labelled_mosaic(rows, names, header, scale=3, marked=lost)
        path = out / f"mosaic_{channel}.png"
        pil.save(path)
        written.append(path)
    if written:
        (out / "mosaic.png").write_bytes(written[0].read_bytes())
    _plot(points, out / "psnr_accuracy_vs_snr.png")

    summary = {
        "command": _command_line(args),
        "k": args.k, "steps": args.steps, "n": int(len(images)), "first": args.first, "seed": args.seed,
        "snrs_db": args.snr, "channels": args.channel, "impairment": _impairment(args),
        "metric_notes": "psnr: mean per image on [0,1]; ssim: scikit-image; accuracy: in-project Fashion-MNIST "
                        "classifier on the reconstructions; fid: FID-FMNIST on that classifier's features (not "
                        "Inception-FID); a frame the link lost is scored as what the receiver shows for it, the "
                        "decoder's fill from nothing (accounting.filled; in_flowgraph_delivered_only leaves them out)",
        "host": {"machine": platform.machine(), "processor": platform.processor(), "cores": os.cpu_count(),
                 "python": platform.python_version()},
        "elapsed_s": round(time.perf_counter() - t_start, 1),
        "points": points,
    }
    with open(out / "metrics.json", "w") as f:
        json.dump(summary, f, indent=1, default=float)
    print(f"wrote {out / 'mosaic.png'}, {out / 'metrics.json'}, {out / 'psnr_accuracy_vs_snr.png'}")
    bad = [p for p in points if p["accounting"]["lost"] or not p["drained"]]
    if bad:
        print(f"note: {len(bad)} point(s) lost frames in the PHY (see accounting in metrics.json)")
    return 0
