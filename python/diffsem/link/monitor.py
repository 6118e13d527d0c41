"""`diffsem monitor`: watch a running semantic link through its ZMQ taps (diffsem.link.taps wire format).

    diffsem monitor                                  # tcp://127.0.0.1:5610, until Ctrl-C
    diffsem monitor --save out/monitor --count 20    # also keep the latest image, stop after 20 frames

Prints one line per frame from the "metrics" topic (seq, RX SNR estimate, PSNR, SSIM, classifier
verdict, latency, accounting), keeps the latest reconstructed image ("image" topic) as
<save>/latest.png and the latest received constellation as <save>/constellation.npy, and notes
decoder state changes (drops) from the "state" topic. Needs only pyzmq: no GNU Radio, no torch.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from diffsem.link.taps import DEFAULT_ADDRESS, TOPICS, decode


def add_arguments(parser):
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help=f"taps endpoint (default {DEFAULT_ADDRESS})")
    parser.add_argument("--save", default="", help="folder for latest.png / constellation.npy (default: none)")
    parser.add_argument("--count", type=int, default=0, help="exit after this many frame lines (0: never)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="exit after this many seconds without any message (0: wait forever)")
    parser.add_argument("--json", action="store_true", help="print each metrics message as raw JSON")
    parser.add_argument("--topics", nargs="+", default=list(TOPICS), choices=TOPICS)


def format_metrics(m: dict) -> str:
    """One human line for a metrics message (a decoded frame, or a drop notice)."""
    def num(key, fmt):
        v = m.get(key)
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    counts = (f"sent {m.get('sent', '-')} ok {m.get('decoded', '-')} crc {m.get('crc_dropped', '-')} "
              f"queue {m.get('queue_dropped', '-')}")
    if "dropped" in m:
        return f"seq {m.get('seq', '?'):>6}  DROPPED ({m['dropped']} in {m.get('block', '?')})  {counts}"
    verdict = "-"
    if "correct" in m:
        verdict = f"{m.get('pred_class', m.get('pred', '?'))} {'ok' if m['correct'] else 'WRONG'}"
    return (f"seq {m.get('seq', '?'):>6}  {str(m.get('decoder', '')):13s} snr_est {num('snr_est_db', '5.1f')} dB  "
            f"psnr {num('psnr_db', '5.2f')} dB (predicted {num('predicted_psnr_db', '5.2f')}, "
            f"reliability {num('reliability', '.2f')})  ssim {num('ssim', '.3f')}  {verdict:16s} "
            f"lat {num('e2e_latency_ms', '6.1f')} ms  avg psnr {num('avg_psnr_db', '5.2f')} "
            f"acc {num('accuracy', '.3f')}  {counts}")


def run(args):
    import zmq

    from diffsem.images import save_png

    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 1000)
    for topic in args.topics:
        sock.subscribe(topic.encode())
    sock.connect(args.address)
    print(f"monitoring {args.address} (topics: {', '.join(args.topics)}); Ctrl-C to stop", file=sys.stderr, flush=True)
    frames = 0
    last_msg = time.monotonic()
    last_state = None
    try:
        while True:
            if not sock.poll(200):
                if args.timeout and time.monotonic() - last_msg > args.timeout:
                    print(f"no message for {args.timeout:g} s: exiting", file=sys.stderr)
                    break
                continue
            last_msg = time.monotonic()
            parts = sock.recv_multipart()
            if len(parts) != 2:
                print(f"ignoring a {len(parts)}-frame message (expected [topic, payload])", file=sys.stderr)
                continue
            topic, payload = parts[0].decode(errors="replace"), parts[1]
            try:
                value = decode(topic, payload)
            except (ValueError, OSError) as exc:
                print(f"ignoring undecodable {topic} message: {exc}", file=sys.stderr)
                continue
            if topic == "metrics":
                print(json.dumps(value) if args.json else format_metrics(value), flush=True)
                if "dropped" not in value:
                    frames += 1
                    if args.count and frames >= args.count:
                        break
            elif topic == "image" and save:
                image, text = value
                save_png(save / "latest.png", image)
                (save / "latest.json").write_text(json.dumps(text))
            elif topic == "constellation" and save:
                import numpy as np
                tmp = save / ".constellation.npy"
                np.save(tmp, value)
                tmp.replace(save / "constellation.npy")
            elif topic == "state":
                drops = (value.get("dropped_queue"), value.get("bad_input"), value.get("failed"))
                if drops != last_state and any(drops):
                    print(f"decoder state: queue {value.get('queue_depth')} dropped_queue {drops[0]} "
                          f"bad_input {drops[1]} failed {drops[2]} provider {value.get('provider')}", flush=True)
                last_state = drops
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(0)
    return 0
