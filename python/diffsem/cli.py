"""The `diffsem` command. Each subcommand lives in its own module, imported only when used
(so `diffsem monitor` does not pay for torch and `diffsem train` does not need GNU Radio).

A subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "train": ("diffsem.train", "train a model from a recipe (resumable from checkpoints)"),
    "export": ("diffsem.export", "export a trained run to ONNX + model cards (checked against PyTorch)"),
    "eval": ("diffsem.evaluate", "evaluate schemes over SNRs/channels, JSON lines (+ CSV, plots, mosaic)"),
    "calibrate": ("diffsem.calibration", "choose sampling temperatures from validation eval rows (+ write cards)"),
    "bench": ("diffsem.bench", "benchmarks: phy | decoder | link (figures, not tests)"),
    "sweep": ("diffsem.sweep", "SNR/channel/k sweep over all schemes, resumable CSV + plots"),
    "demo": ("diffsem.demo", "the loopback demo over the simulated channel (the README's main job)"),
    "monitor": ("diffsem.monitor", "subscribe to a running link's ZMQ taps and print/save what they carry"),
    # radio apps (GNU Radio): endpoints sim | zmq | file (SigMF) | SDR; see docs/radio.md
    "tx": ("gnuradio.diffsem._apps_cli_tx", "transmitter app: images -> semantic encoder -> OFDM -> endpoint"),
    "channel": ("gnuradio.diffsem._apps_cli_channel", "channel app for the three-process ZMQ link"),
    "rx": ("gnuradio.diffsem._apps_cli_rx", "receiver app: endpoint -> OFDM RX -> decoder -> images, metrics"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diffsem", description="gr-diffsem command-line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    argv = sys.argv[1:] if argv is None else argv
    wanted = argv[0] if argv else None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the module that will run
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
