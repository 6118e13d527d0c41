"""`diffsem channel` (python/diffsem/cli.py convention: add_arguments + run); the app is gnuradio.diffsem.apps."""
from .apps import add_channel_arguments as add_arguments, run_named


def run(args) -> int:
    return run_named("channel", args)
