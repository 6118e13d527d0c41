"""`diffsem measure links`: the baselines through the GNU Radio PHY (digital: digital_link_tx /
digital_link_rx with gr-fec; linear: the analog OFDM PHY) against the library channel
(diffsem.channel.transmit) on the same images, one JSON line per SNR."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import numpy as np
from gnuradio import gr
from gnuradio.diffsem import harness

from diffsem.baselines import digital as core
from diffsem.metrics import psnr


def compare_paths(k: int, snrs, n: int, seed: int = 0, channel: str = "awgn", mode: str | None = None,
                  margin_db: float = 0.0):
    """Flowgraph vs library channel on the same images and mode: one dict per SNR."""
    import torch
    from diffsem import data
    from diffsem.channel import transmit
    images, _ = data.load("test")
    images = images[:n]
    for snr in snrs:
        m = core.mode_by_name(mode) if mode else (core.mode_for_snr(float(snr), margin_db=margin_db) or core.MODES[0])
        t0 = time.time()
        rec, metas, txs, rxs = harness.run_loopback(images, k, m.name, float(snr), channel, seed)
        t_fg = time.time() - t0
        scheme = core.DigitalScheme(k, mode=m.name)
        g = torch.Generator().manual_seed(seed)
        s_hat, nv = transmit(torch.from_numpy(scheme.encode(images)), float(snr), channel, generator=g)
        lib = scheme.decode(s_hat.numpy(), np.full(n, float(snr)), nv.numpy())
        status = [mt.get("status") for mt in metas]
        snr_est = [mt["snr_db"] for mt in metas if isinstance(mt.get("snr_db"), float)]
        yield {"k": k, "channel": channel, "snr_db": float(snr), "mode": m.name, "margin_db": margin_db,
               "n": n, "seed": seed,
               "psnr_flowgraph": round(float(np.mean(psnr(rec, images))), 3),
               "psnr_library": round(float(np.mean(psnr(lib, images))), 3),
               "ok_flowgraph": status.count("ok") + status.count("no_image"),
               "ok_library": scheme.last_stats["ok"] + scheme.last_stats["no_image"],
               "lost_flowgraph": status.count("lost"), "crc_fail_flowgraph": status.count("crc_fail"),
               "snr_est_db": round(float(np.mean(snr_est)), 2) if snr_est else None,
               "flowgraph_seconds": round(t_fg, 2)}


def compare_linear(k: int, snrs, n: int, seed: int = 0, channel: str = "awgn"):
    """The linear baseline through the semantic PHY vs the library channel, same images."""
    import torch
    from diffsem import data
    from diffsem.baselines.linear import LinearScheme
    from diffsem.channel import transmit
    images, _ = data.load("test")
    images = images[:n]
    scheme = LinearScheme(k)
    for snr in snrs:
        t0 = time.time()
        fg, received = harness.scheme_loopback(scheme, images, float(snr), channel, seed)
        t_fg = time.time() - t0
        g = torch.Generator().manual_seed(seed)
        s_hat, nv = transmit(torch.from_numpy(scheme.encode(images)), float(snr), channel, generator=g)
        lib = scheme.decode(s_hat.numpy(), np.full(n, float(snr)), nv.numpy())
        p_fg = psnr(fg, images)
        yield {"scheme": "linear", "k": k, "channel": channel, "snr_db": float(snr), "n": n, "seed": seed,
               "psnr_flowgraph": round(float(p_fg.mean()), 3),
               "psnr_flowgraph_received": round(float(p_fg[received].mean()), 3) if received.any() else None,
               "psnr_library": round(float(np.mean(psnr(lib, images))), 3),
               "received": int(received.sum()), "flowgraph_seconds": round(t_fg, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsem measure links",
                                description="baselines through the GNU Radio PHY (digital: + gr-fec) vs the "
                                            "library channel, JSON lines")
    p.add_argument("--k", type=int, nargs="+", default=[128])
    p.add_argument("--snr", type=float, nargs="+", default=[4, 6, 8, 10, 12, 14, 16, 20, 25])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channel", default="awgn")
    p.add_argument("--scheme", choices=("digital", "linear"), default="digital")
    p.add_argument("--mode", default=None, help="fixed mode instead of link adaptation")
    p.add_argument("--margin", type=float, default=0.0, help="link adaptation back-off (dB) over the thresholds")
    p.add_argument("--verbose", action="store_true", help="keep GNU Radio's info log (one line per bad header)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.verbose:  # stdout is for the JSON lines; the stock header parser logs every failure there
        gr.logging().set_default_level(gr.log_levels.warn)
    for k in args.k:
        rows = compare_linear(k, args.snr, args.n, args.seed, args.channel) if args.scheme == "linear" else \
            compare_paths(k, args.snr, args.n, args.seed, args.channel, args.mode, args.margin)
        for row in rows:
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
