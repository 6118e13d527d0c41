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

from diffsem import args as checks
from diffsem.link.taps import DEFAULT_ADDRESS, MAX_PAYLOAD, TOPICS, TapMessageError, decode


def add_arguments(parser):
    parser.add_argument("--address", type=checks.zmq_address, default=DEFAULT_ADDRESS, help=f"taps endpoint (default {DEFAULT_ADDRESS})")
    parser.add_argument("--save", type=checks.writable_dir, default="", help="folder for latest.png / constellation.npy (default: none)")
    parser.add_argument("--count", type=checks.nonnegative_int, default=0, help="exit after this many frame lines (0: never)")
    parser.add_argument("--timeout", type=checks.nonnegative_float, default=0.0,
                        help="exit after this many seconds without any message (0: wait forever); "
                             "exit status 1 if none came at all")
    parser.add_argument("--json", action="store_true", help="print each metrics message as raw JSON")
    parser.add_argument("--topics", nargs="+", default=list(TOPICS), choices=TOPICS)


def _field(m: dict, key, default="-", limit=24) -> str:
    """A field of a (possibly hostile) message as short text."""
    text = str(m.get(key, default))
    return text if len(text) <= limit else text[:limit] + "…"


def format_metrics(m: dict) -> str:
    """One human line for a metrics message (a decoded frame, or a drop notice); any JSON value
    in any field prints (a wrong type shows as its text)."""
    def num(key, fmt):
        v = m.get(key)
        return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"

    counts = (f"sent {_field(m, 'sent')} ok {_field(m, 'decoded')} crc {_field(m, 'crc_dropped')} "
              f"queue {_field(m, 'queue_dropped')}")
    seq = _field(m, "seq", "?")
    if "dropped" in m:
        return f"seq {seq:>6}  DROPPED ({_field(m, 'dropped')} in {_field(m, 'block', '?')})  {counts}"
    verdict = "LOST, filled" if m.get("filled") else "-"  # shown as the decoder's fill from nothing
    if "correct" in m and not m.get("filled"):
        verdict = f"{_field(m, 'pred_class', _field(m, 'pred', '?'))} {'ok' if m['correct'] is True else 'WRONG'}"
    untrusted = "".join(f"  {label} {_field(m, key)}" for key, label in
                        (("interfered_carriers", "interfered carriers"), ("erased", "erased")) if key in m)
    return (f"seq {seq:>6}  {_field(m, 'decoder', ''):13s} snr_est {num('snr_est_db', '5.1f')} dB  "
            f"psnr {num('psnr_db', '5.2f')} dB (predicted {num('predicted_psnr_db', '5.2f')}, "
            f"reliability {num('reliability', '.2f')})  ssim {num('ssim', '.3f')}  {verdict:16s} "
            f"lat {num('e2e_latency_ms', '6.1f')} ms  avg psnr {num('avg_psnr_db', '5.2f')} "
            f"acc {num('accuracy', '.3f')}  {counts}{untrusted}")


class Monitor:
    """What `diffsem monitor` does with each message, apart from the socket: print a line per
    frame, keep the latest image and constellation, note decoder state changes. A hostile or
    broken message (malformed JSON, a JSON value of the wrong type, not a PNG, an oversized or
    bomb image, a constellation of the wrong byte count, a field of the wrong type) is counted
    by kind (`bad`) and shown as a warning (once per kind, then at most every few seconds with
    the count); the next good message is shown as usual."""

    def __init__(self, save=None, as_json=False, out=None, err=None, warn_interval=5.0):
        from diffsem.link.pdu import KindLog

        self.save, self.as_json = save, as_json
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.frames = 0
        self.bad: dict[str, int] = {}
        self.last_state = None
        self._warn = KindLog(lambda line: print(f"warning: {line}", file=self.err, flush=True), warn_interval)

    def _refuse(self, kind: str, text: str):
        self.bad[kind] = self.bad.get(kind, 0) + 1
        self._warn(kind, f"ignoring a message: {text} ({self.bad[kind]} of this kind so far)")

    def handle(self, parts) -> bool:
        """One received multipart message; True when it was a frame line (metrics, not a drop)."""
        if len(parts) != 2:
            self._refuse("frames", f"{len(parts)}-frame message (expected [topic, payload])")
            return False
        topic, payload = parts[0].decode(errors="replace"), parts[1]
        try:
            value = decode(topic, payload)
            return self._show(topic, value)
        except TapMessageError as exc:
            self._refuse(exc.kind, str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad message never ends the monitor
            self._refuse(f"bad_{topic}"[:40], f"{topic} message: {type(exc).__name__}: {exc}")
        return False

    def _show(self, topic, value) -> bool:
        save = self.save
        if topic == "metrics":
            print(json.dumps(value) if self.as_json else format_metrics(value), file=self.out, flush=True)
            if "dropped" not in value:
                self.frames += 1
                return True
        elif topic == "image" and save:
            from diffsem.images import save_png
            image, text = value
            save_png(save / "latest.png", image)
            (save / "latest.json").write_text(json.dumps(text))
        elif topic == "constellation" and save:
            import numpy as np
            tmp = save / ".constellation.npy"
            np.save(tmp, value)
            tmp.replace(save / "constellation.npy")
        elif topic == "state":
            drops = tuple(value.get(key) for key in ("dropped_queue", "bad_input", "failed"))
            if drops != self.last_state and any(drops):
                print(f"decoder state: queue {_field(value, 'queue_depth')} dropped_queue {_field(value, 'dropped_queue')} "
                      f"bad_input {_field(value, 'bad_input')} failed {_field(value, 'failed')} "
                      f"provider {_field(value, 'provider')}", file=self.out, flush=True)
            self.last_state = drops
        return False


NOTHING_S, NOTHING_REPEAT_S = 5.0, 60.0   # until the first message: say so after 5 s, then every minute


def run(args):
    import zmq

    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 1000)
    # a message far beyond any tap's size drops the connection (ZeroMQ reconnects) instead of
    # being buffered; up to that, an oversized one is received and counted
    sock.setsockopt(zmq.MAXMSGSIZE, 16 * MAX_PAYLOAD)
    for topic in args.topics:
        sock.subscribe(topic.encode())
    sock.connect(args.address)
    print(f"monitoring {args.address} (topics: {', '.join(args.topics)}); Ctrl-C to stop", file=sys.stderr, flush=True)
    monitor = Monitor(save, args.json)
    last_msg = started = time.monotonic()
    heard, next_nothing = 0, started + NOTHING_S
    try:
        while True:
            if not sock.poll(200):
                now = time.monotonic()
                if args.timeout and now - last_msg > args.timeout:
                    print(f"no message for {args.timeout:g} s: exiting", file=sys.stderr)
                    break
                if not heard and now >= next_nothing:  # a wrong address or a link not running looks like this
                    print(f"nothing received from {args.address} in {now - started:.0f} s: is a flowgraph or "
                          "diffsem rx publishing its taps there (--taps)?", file=sys.stderr, flush=True)
                    next_nothing = now + NOTHING_REPEAT_S
                continue
            last_msg = time.monotonic()
            heard += 1
            if monitor.handle(sock.recv_multipart()) and args.count and monitor.frames >= args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(0)
        if monitor.bad:
            print(f"ignored messages by kind: {json.dumps(monitor.bad)}", file=sys.stderr)
    if not heard:
        print(f"no message received from {args.address}", file=sys.stderr)
        return 1
    return 0
