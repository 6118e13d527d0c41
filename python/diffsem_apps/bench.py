"""`diffsem bench <target>`: benchmarks print figures (one JSON line); they are not tests."""
from __future__ import annotations

import importlib

# target -> (module providing add_arguments(parser) and run(args), what it prints)
TARGETS = {
    "phy": ("diffsem_apps.bench_phy", "analog OFDM loopback against stock ofdm_tx/rx (Msps)"),
    "rx": ("diffsem_apps.bench_rx", "the receiver fed at an SDR's rate: samples dropped, frames decoded"),
    "decoder": ("diffsem.experiments.bench_decoder", "exported decoders under ONNX Runtime (images/s)"),
    "train": ("diffsem.nn.bench_train", "a recipe's stages timed for a few steps: projected hours"),
    "link": ("diffsem_apps.bench_link", "the whole semantic loopback flowgraph (images/s, latency)"),
    "soak": ("diffsem_apps.bench_soak", "the loopback for minutes: RSS, queues, counters, accounting"),
}


def add_arguments(parser):
    sub = parser.add_subparsers(dest="target", metavar="TARGET")
    sub.required = True
    for name, (module, summary) in TARGETS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        try:
            importlib.import_module(module).add_arguments(p)
        except ImportError as exc:  # keep the other targets usable
            p.set_defaults(_import_error=str(exc))


def run(args):
    if getattr(args, "_import_error", None):
        raise SystemExit(f"diffsem bench {args.target}: cannot load {TARGETS[args.target][0]}: {args._import_error}")
    return importlib.import_module(TARGETS[args.target][0]).run(args)
