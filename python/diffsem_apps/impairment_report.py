"""Hardware-realism report: PAPR CCDF of the TX waveform, and the PSNR the semantic link loses to
TX clipping (PA back-off) and to ADC resolution at a fixed SNR.

    diffsem report impairments [--images 200] [--snr 10] [--out-dir docs/figures]

1. PAPR: `--papr-images` test images through the k=128 encoder and ofdm_analog_tx (the block
   itself); per OFDM symbol (cyclic prefix dropped), at the Nyquist rate and 4x oversampled
   (diffsem.phy.impairments.papr_db), for the payload symbols and for whole bursts.
2. PSNR vs clip level, vs ADC bits (full scale fixed) and, for an 8-bit ADC, vs the full scale
   above the signal's rms (the receive-gain setting): LoopbackSim (the flowgraph of loopback_sim.grc) over AWGN
   at `--snr` dB with the 2-step diffusion decoder and DeepJSCC decoding the same frames; the
   same images, channel seed and decoder seed at every point, so a loss is paired with the
   unimpaired run. Impairments come from ofdm_analog_tx(clip_db=...) and
   channel_sim(adc_bits=..., adc_full_scale=...).

Writes impairments_papr.png, impairments_psnr.png, impairments_report.json and
impairments_report.md into --out-dir, and prints the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import pmt
from gnuradio import blocks, gr

from diffsem.phy import impairments

CLIP_LEVELS_DB = (12.0, 9.0, 7.0, 5.0, 3.0, 1.0)
ADC_BITS = (12, 8, 6, 5, 4, 3, 2)
# 8-bit ADC (HackRF), full scale this many dB above the burst's rms per rail (1/sqrt(2)): the
# receive gain setting. Low headroom clips the ADC, high headroom leaves few codes for the signal.
ADC_HEADROOM_DB = (0.0, 3.0, 6.0, 9.0, 20.0, 30.0, 36.0, 42.0)
HEADROOM_BITS = 8
RAIL_RMS = 2 ** -0.5
DECODERS = ("diffusion:2", "deepjscc")


def impaired_loopback(chan_impairments: dict | None, clip_db: float | None, **loopback_kwargs):
    """A LoopbackSim whose channel_sim has `chan_impairments` (adc_bits, dc_offset, ...) and whose
    TX clips at `clip_db` dB above RMS (None = linear)."""
    from gnuradio.diffsem.harness import LoopbackSim

    return LoopbackSim(chan_kwargs=chan_impairments or {}, tx_kwargs={"clip_db": clip_db}, **loopback_kwargs)


# --- PAPR ------------------------------------------------------------------------------------------

def tx_waveform(symbol_frames, clip_db=None, timeout_s: float = 60.0):
    """Bursts of ofdm_analog_tx for frames of unit-power symbols -> (stream, tx block)."""
    from gnuradio import diffsem

    tb = gr.top_block()
    tx = diffsem.ofdm_analog_tx(clip_db=clip_db)
    sink = blocks.vector_sink_c()
    tb.connect(tx, sink)
    for frame in symbol_frames:
        frame = np.asarray(frame, np.complex64)
        tx.framer.to_basic_block()._post(pmt.intern("in"), pmt.cons(pmt.make_dict(),
                                                                    pmt.init_c32vector(frame.size, frame.tolist())))
    expected = sum(tx.burst_length(len(f)) for f in symbol_frames)
    tb.start()
    deadline = time.monotonic() + timeout_s
    while len(sink.data()) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    tb.stop()
    tb.wait()
    return np.asarray(sink.data()), tx


def papr_study(k: int, n_images: int, models_dir: str, provider: str) -> dict:
    from diffsem.runtime import inference
    from diffsem.data import load

    folder = models_dir or os.path.join(os.path.dirname(inference.__file__), "..", "..", "models")
    enc = inference.FrameEncoder(inference.load_model(os.path.join(folder, f"encoder_k{k}.json"), provider))
    images, _ = load("test")
    frames = enc([inference.EncodeRequest(im[0]) for im in images[:n_images]])
    stream, tx = tx_waveform(frames)
    lay = tx.layout
    burst = tx.burst_length(k)
    n_pre = 2 + tx.header_repeats
    payload, whole = [], []
    for i in range(stream.size // burst):
        body = impairments.ofdm_symbols(stream[i * burst + tx.pad_front:(i + 1) * burst - tx.pad_back],
                                        lay.fft_len, lay.cp_len)
        whole.append(body)
        payload.append(body[n_pre:])
    payload, whole = np.concatenate(payload), np.concatenate(whole)
    thresholds = np.round(np.arange(0.0, 14.01, 0.1), 2)
    out = {"k": k, "images": int(stream.size // burst), "payload_ofdm_symbols": int(payload.shape[0]),
           "thresholds_db": thresholds.tolist(), "ccdf": {}}
    for name, syms in (("payload", payload), ("burst", whole)):
        for os_factor in (1, 4):
            papr = impairments.papr_db(syms, os_factor)
            key = f"{name}_os{os_factor}"
            out["ccdf"][key] = impairments.ccdf(papr, thresholds).tolist()
            out[f"papr_db_at_1e-2_{key}"] = _quantile_db(papr, 1e-2)
            out[f"papr_db_at_1e-3_{key}"] = _quantile_db(papr, 1e-3)
    # the fixed symbols of every burst: Schmidl & Cox preamble and header copies (4x oversampled)
    per_burst = whole.shape[0] // out["images"]
    fixed = whole.reshape(out["images"], per_burst, -1)[:, :n_pre]
    out["papr_db_preamble_os4"] = [round(float(v), 2) for v in impairments.papr_db(fixed[0, :2], 4)]
    header_papr = impairments.papr_db(fixed[:, 2:].reshape(-1, lay.fft_len), 4)
    out["papr_db_header_os4_max"] = round(float(np.nanmax(header_papr)), 2)
    # fraction of samples (payload, Nyquist rate) a clip level would touch
    power = np.abs(payload.reshape(-1)) ** 2
    out["sample_clip_fraction"] = {str(c): float(np.mean(power > 10 ** (c / 10))) for c in CLIP_LEVELS_DB}
    return out


def _quantile_db(papr, prob):
    papr = papr[np.isfinite(papr)]
    return round(float(np.quantile(papr, 1.0 - prob)), 2) if papr.size else None


# --- PSNR sweeps ----------------------------------------------------------------------------------

def _link_point(args, chan_impairments, clip_db) -> dict:
    tb = impaired_loopback(chan_impairments, clip_db, k=args.k, snr_db=args.snr, channel="awgn",
                           decoders=list(DECODERS), count=args.images, models_dir=args.models_dir,
                           provider=args.provider, seed=args.seed, chan_seed=args.seed,
                           max_queue=max(16, args.images), classifier_card="none", threads=args.threads)
    drained = tb.run_until_drained(timeout_s=300, quiet_s=5)
    point = {"drained": bool(drained), "rx_frames": tb.rx.stats().get("frames", 0), "decoders": {}}
    for dec, met in zip(tb.decoders, tb.metrics):
        acc = met.accounting()
        snr_est = [r["snr_est_db"] for r in met.records if r.get("snr_est_db") is not None]
        point["decoders"][dec.label] = {
            "avg_psnr_db": met.summary()["avg_psnr_db"],
            "decoded": acc["decoded"], "sent": acc["sent"],
            "lost": acc["crc_dropped"] + acc["queue_dropped"] + acc["missing"] + acc["bad_input"] + acc["failed"],
            **{key: acc[key] for key in ("crc_dropped", "queue_dropped", "missing", "bad_input", "failed")},
            "snr_est_db": round(float(np.mean(snr_est)), 2) if snr_est else None}
    return point


def link_study(args, log=print) -> dict:
    t0 = time.perf_counter()
    base = _link_point(args, None, None)
    log(f"baseline: {json.dumps(base)}")
    clip, adc = [], []
    for level in CLIP_LEVELS_DB:
        clip.append({"clip_db": level, **_link_point(args, None, level)})
        log(f"clip {level} dB: {json.dumps(clip[-1])}")
    for bits in ADC_BITS:
        adc.append({"adc_bits": bits, **_link_point(args, dict(adc_bits=bits, adc_full_scale=args.adc_full_scale),
                                                    None)})
        log(f"adc {bits} bits: {json.dumps(adc[-1])}")
    headroom = []
    for h in ADC_HEADROOM_DB:
        fs = RAIL_RMS * impairments.db_to_amplitude(h)
        headroom.append({"adc_bits": HEADROOM_BITS, "headroom_db": h, "adc_full_scale": round(fs, 4),
                         **_link_point(args, dict(adc_bits=HEADROOM_BITS, adc_full_scale=fs), None)})
        log(f"adc {HEADROOM_BITS} bits, headroom {h} dB: {json.dumps(headroom[-1])}")
    for row in clip + adc + headroom:
        for label, d in row["decoders"].items():
            ref = base["decoders"][label]["avg_psnr_db"]
            d["psnr_loss_db"] = None if d["avg_psnr_db"] is None or ref is None else round(ref - d["avg_psnr_db"], 2)
    return {"baseline": base, "clip": clip, "adc": adc, "adc_headroom": headroom, "elapsed_s": round(time.perf_counter() - t0, 1)}


# --- outputs ------------------------------------------------------------------------------------

def _figures(report, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    papr = report["papr"]
    fig, ax = plt.subplots(figsize=(6, 4))
    th = np.asarray(papr["thresholds_db"])
    for key, style in (("payload_os1", "C0--"), ("payload_os4", "C0-"), ("burst_os1", "C1--"), ("burst_os4", "C1-")):
        ax.semilogy(th, np.maximum(papr["ccdf"][key], 1e-5), style,
                    label=key.replace("_os", ", oversampling ").replace("payload", "payload symbols")
                    .replace("burst", "whole burst"))
    ax.set_ylim(1e-4, 1.1)
    ax.set_xlabel("PAPR per OFDM symbol x (dB)")
    ax.set_ylabel("P(PAPR > x)")
    ax.set_title(f"TX waveform PAPR CCDF, k={papr['k']}, {papr['payload_ofdm_symbols']} payload symbols")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "impairments_papr.png"), dpi=120)
    plt.close(fig)

    link = report["link"]
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for label in link["baseline"]["decoders"]:
        base = link["baseline"]["decoders"][label]["avg_psnr_db"]
        a1.plot([r["clip_db"] for r in link["clip"]], [r["decoders"][label]["avg_psnr_db"] for r in link["clip"]],
                "o-", label=label)
        a1.axhline(base, ls=":", color=a1.lines[-1].get_color())
        a2.plot([r["adc_bits"] for r in link["adc"]], [r["decoders"][label]["avg_psnr_db"] for r in link["adc"]],
                "o-", label=label)
        a2.axhline(base, ls=":", color=a2.lines[-1].get_color())
        a3.plot([r["headroom_db"] for r in link["adc_headroom"]],
                [r["decoders"][label]["avg_psnr_db"] for r in link["adc_headroom"]], "o-", label=label)
        a3.axhline(base, ls=":", color=a3.lines[-1].get_color())
    a1.set_xlabel("TX clip level (dB above RMS)")
    a1.set_ylabel("PSNR (dB, mean per image)")
    a1.set_title(f"TX clipping, AWGN {report['snr_db']:g} dB")
    a2.set_xlabel(f"ADC bits per rail (full scale {report['adc_full_scale']:g})")
    a2.set_title(f"ADC resolution, AWGN {report['snr_db']:g} dB")
    a3.set_xlabel("8-bit ADC full scale above the burst's rms per rail (dB)")
    a3.set_title("8-bit ADC (HackRF) vs receive gain")
    for a in (a1, a2, a3):
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8, title="dotted: unimpaired", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "impairments_psnr.png"), dpi=120)
    plt.close(fig)


def _markdown(report) -> str:
    link, papr = report["link"], report["papr"]
    labels = list(link["baseline"]["decoders"])
    lines = [f"PAPR per OFDM symbol (k={papr['k']}, {papr['images']} test images, "
             f"{papr['payload_ofdm_symbols']} payload symbols):", "",
             "| symbols | oversampling | PAPR at 1e-2 (dB) | PAPR at 1e-3 (dB) |", "|---|---|---|---|"]
    for name in ("payload", "burst"):
        for os_factor in (1, 4):
            key = f"{name}_os{os_factor}"
            lines.append(f"| {name} | {os_factor}x | {papr[f'papr_db_at_1e-2_{key}']} | {papr[f'papr_db_at_1e-3_{key}']} |")
    lines += ["", f"Fixed symbols (4x oversampled): Schmidl & Cox preamble {papr['papr_db_preamble_os4']} dB, "
              f"header copies up to {papr['papr_db_header_os4_max']} dB.", "",
              "Fraction of payload samples above a clip level (Nyquist rate): "
              + ", ".join(f"{c} dB: {v:.1e}" for c, v in papr["sample_clip_fraction"].items()) + "."]
    lines += ["", f"PSNR (dB, mean per image, {report['images']} test images, AWGN {report['snr_db']:g} dB, "
              f"seed {report['seed']}); loss = unimpaired minus impaired, same frames and noise:", ""]
    head = "| impairment | " + " | ".join(f"{l} PSNR | {l} loss | {l} decoded" for l in labels) + " | RX SNR est (dB) |"
    lines += [head, "|" + "---|" * (2 + 3 * len(labels))]

    def row(name, point):
        cells = []
        for l in labels:
            d = point["decoders"][l]
            cells += [f"{d['avg_psnr_db']:.2f}" if d["avg_psnr_db"] is not None else "-",
                      f"{d.get('psnr_loss_db', 0.0):+.2f}" if d.get("psnr_loss_db") is not None else "0",
                      f"{d['decoded']}/{d['sent']}"]
        est = point["decoders"][labels[0]]["snr_est_db"]
        return f"| {name} | " + " | ".join(cells) + f" | {est} |"

    lines.append(row("none", link["baseline"]))
    lines += [row(f"TX clip {r['clip_db']:g} dB", r) for r in link["clip"]]
    lines += [row(f"ADC {r['adc_bits']} bits, FS {report['adc_full_scale']:g}", r) for r in link["adc"]]
    lines += [row(f"ADC 8 bits, FS {r['headroom_db']:g} dB above rms ({r['adc_full_scale']:g})", r)
              for r in link["adc_headroom"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="diffsem report impairments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="test images per link point (default 200)")
    parser.add_argument("--papr-images", type=int, default=1000, help="images for the PAPR CCDF (default 1000)")
    parser.add_argument("--k", type=int, default=128)
    parser.add_argument("--snr", type=float, default=10.0, help="AWGN Es/N0 (dB, default 10)")
    parser.add_argument("--adc-full-scale", type=float, default=3.0,
                        help="ADC full scale per rail (amplitude; the burst has 0.707 rms per rail; default 3.0)")
    parser.add_argument("--models-dir", default="")
    parser.add_argument("--provider", default="cpu", choices=("auto", "tensorrt", "cuda", "cpu"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="docs/figures")
    args = parser.parse_args(argv)
    from diffsem.runtime.cards import CardError
    from diffsem.runtime import ProviderUnavailable

    os.makedirs(args.out_dir, exist_ok=True)
    t0 = time.perf_counter()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    try:
        papr = papr_study(args.k, args.papr_images, args.models_dir, args.provider)
        log(f"papr: {json.dumps({k: v for k, v in papr.items() if k.startswith('papr_db')})}")
        link = link_study(args, log)
    except (CardError, ProviderUnavailable) as exc:
        log(f"impairment_report: {exc}")
        return 2
    report = {"report": "impairments", "k": args.k, "snr_db": args.snr, "images": args.images, "seed": args.seed,
              "adc_full_scale": args.adc_full_scale, "decoders": list(DECODERS), "papr": papr, "link": link,
              "command": "diffsem report impairments " + " ".join(argv or sys.argv[1:]),
              "elapsed_s": round(time.perf_counter() - t0, 1),
              "host": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "python": platform.python_version()}}
    with open(os.path.join(args.out_dir, "impairments_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.out_dir, "impairments_report.md"), "w") as f:
        f.write(_markdown(report))
    _figures(report, args.out_dir)
    print(json.dumps({k: v for k, v in report.items() if k != "papr"} | {
        "papr": {k: v for k, v in papr.items() if k.startswith("papr_db")}}))  # the CCDF curves are in the JSON file
    return 0 if all(p["drained"] for p in [link["baseline"], *link["clip"], *link["adc"], *link["adc_headroom"]]) else 1


if __name__ == "__main__":
    sys.exit(main())
