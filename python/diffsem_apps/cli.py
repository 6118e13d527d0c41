"""The `diffsem` command. Each subcommand lives in its own module, imported only when used
(so `diffsem monitor` does not pay for torch and `diffsem train` does not need GNU Radio).

A subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``; the radio apps
share one module (``ADDERS[name]`` and ``run``). Grouped commands (`diffsem measure phy`,
`diffsem report impairments`, `diffsem baseline digital`, ...) hand their arguments to the
module's own ``main(argv)``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, one-line help[, radio app name])
COMMANDS = {
    "train": ("diffsem.nn.train", "train a model from a recipe (resumable from checkpoints)"),
    "export": ("diffsem.nn.export", "export a trained run to ONNX + model cards (checked against PyTorch)"),
    "eval": ("diffsem.experiments.evaluate", "evaluate schemes over SNRs/channels, JSON lines (+ CSV, plots, mosaic)"),
    "calibrate": ("diffsem.nn.calibration", "choose sampling temperatures from validation eval rows (+ write cards)"),
    "bench": ("diffsem_apps.bench", "benchmarks: phy | rx | decoder | train | link | soak (figures, not tests)"),
    "sweep": ("diffsem_apps.sweep", "SNR/channel/k sweep over all schemes, resumable CSV + plots"),
    "demo": ("diffsem_apps.demo", "the loopback demo over the simulated channel (the README's main job)"),
    "fuzz": ("diffsem_apps.fuzz", "hostile PDUs into every block with a message input (deaths, stalls, counters)"),
    "monitor": ("diffsem.link.monitor", "subscribe to a running link's ZMQ taps and print/save what they carry"),
    # radio apps (GNU Radio): endpoints sim | zmq | file (SigMF) | SDR; see docs/guide
    "tx": ("diffsem_apps.radio", "transmitter app: images -> semantic encoder -> OFDM -> endpoint", "tx"),
    "channel": ("diffsem_apps.radio", "channel app for the three-process ZMQ link", "channel"),
    "rx": ("diffsem_apps.radio", "receiver app: endpoint -> OFDM RX -> decoder -> images, metrics", "rx"),
}

# group -> {target: module with main(argv)}: measurements and reports that print JSON lines / write files
GROUPS = {
    "measure": {"phy": "diffsem_apps.measure_phy",          # analog OFDM PHY figures (loss, MSE, SNR estimate)
                "links": "diffsem_apps.measure_links",      # baselines through the GNU Radio PHY vs the library
                "frontend": "diffsem_apps.measure_frontend",  # DC offset / DC blocker, TX PAPR per symbol
                "reliability": "diffsem_apps.measure_reliability",  # per-image reliability: fit + calibration
                "controls": "diffsem_apps.measure_controls",  # diffusion decoders vs noise / sharpening at equal PSNR
                "posterior": "diffsem_apps.measure_posterior"},  # are the diffusion decoders posterior samplers?
    "report": {"pd": "diffsem_apps.pd_report",             # perception-distortion figure per model generation
               "fill": "diffsem_apps.fill_report",         # decoders against the impaired fraction of the frame
               "impairments": "diffsem_apps.impairment_report",  # PAPR, clipping, ADC study
               "results": "diffsem_apps.results_docs",          # docs/results/*.md + README table from the rows
               "blocks": "diffsem_apps.blocks_doc",             # docs/guide/blocks.md's ports and parameters from grc/
               "refresh": "diffsem_apps.refresh"},              # recompute the rows of one k after new models
    "baseline": {"digital": "diffsem.baselines.digital.cli",     # calibrate / curves of the digital baseline
                 "linear": "diffsem.baselines.linear",          # fit the PCA basis / curves
                 "separation": "diffsem.baselines.separation"},  # the separation bound
}
GROUP_HELP = {"measure": "measurements: phy | links | frontend | reliability | controls | posterior (JSON lines)",
              "report": "reports: pd (perception-distortion figure) | fill (metrics vs impaired fraction) | impairments (JSON + markdown + figures) | results (docs/results pages) | blocks (the block guide's tables) | refresh (recompute one k's rows)",
              "baseline": "baseline tools: digital | linear | separation"}


# errors that mean "this command line cannot run" (a bad value found after parsing, a model card,
# an address already taken, a folder that cannot be written): one sentence, exit code 2
USAGE_ERRORS = (ValueError, LookupError, OSError)


def _one_sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "…"


def run_guarded(command: str, fn, *args) -> int:
    """fn(*args) as a command: a usage error (USAGE_ERRORS, or zmq's ZMQError: a bad or taken
    address) is one sentence on stderr and exit code 2, any other failure one sentence and exit
    code 1; DIFFSEM_TRACEBACK=1 shows the traceback instead."""
    try:
        return int(fn(*args) or 0)
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the point: no traceback for a user's mistake
        if os.environ.get("DIFFSEM_TRACEBACK"):
            raise
        usage = isinstance(exc, USAGE_ERRORS) or type(exc).__name__ == "ZMQError"
        kind = "error" if usage else f"failed ({type(exc).__name__})"
        print(f"diffsem {command}: {kind}: {_one_sentence(exc)}", file=sys.stderr)
        return 2 if usage else 1


def _run_group(group: str, argv: list[str]) -> int:
    targets = GROUPS[group]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in targets:
        print(f"usage: diffsem {group} {{{','.join(targets)}}} [options]  ({GROUP_HELP[group]})",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return run_guarded(f"{group} {argv[0]}", importlib.import_module(targets[argv[0]]).main, argv[1:])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in GROUPS:
        return _run_group(argv[0], argv[1:])
    parser = argparse.ArgumentParser(prog="diffsem", description="gr-diffsem command-line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = argv[0] if argv else None
    for name, (module, help_text, *app) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the module that will run
            mod = importlib.import_module(module)
            if app:
                p.description = mod.DESCRIPTIONS[app[0]]
                mod.ADDERS[app[0]](p)
                p.set_defaults(app=app[0])
            else:
                mod.add_arguments(p)
    for group, help_text in GROUP_HELP.items():
        sub.add_parser(group, help=help_text, add_help=False)
    args = parser.parse_args(argv)
    return run_guarded(args.command, importlib.import_module(COMMANDS[args.command][0]).run, args)


if __name__ == "__main__":
    sys.exit(main())
