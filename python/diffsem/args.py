"""Argument types of every `diffsem` command, in one place: each refuses a bad value with one
sentence that argparse prints after the argument's name ("argument --count: ..."), exit code 2.
NaN and infinities are refused wherever a number is expected; counts are positive ("all" has
its own spelling where a command accepts it). `UsageError` is what a command raises for a bad
combination found after parsing: the `diffsem` entry point prints its sentence, exit code 2.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
from pathlib import Path

ALL = "all"


class UsageError(ValueError):
    """A command line that cannot run (its sentence names the argument)."""


def _number(text, kind=float):
    try:
        value = kind(str(text).strip())
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _at_least(kind, lo, strict: bool, what: str):
    def check(text):
        value = _number(text, kind)
        if value < lo or (strict and value == lo):
            raise argparse.ArgumentTypeError(f"{text!r} must be {what}")
        return value
    check.__name__ = what
    return check


finite_float = _at_least(float, -math.inf, False, "a finite number")
positive_float = _at_least(float, 0.0, True, "a number greater than 0")
nonnegative_float = _at_least(float, 0.0, False, "a number, 0 or more")
positive_int = _at_least(int, 0, True, "a whole number greater than 0")
nonnegative_int = _at_least(int, 0, False, "a whole number, 0 or more")


def count_or_all_upto(most: int | None = None):
    """A positive count (at most `most` when given), or "all" (returned as 0, what the image
    source and the RX read as "no limit" / "not known"; diffsem.data.count_of turns it into a
    number of images)."""
    what = "a whole number greater than 0" if most is None else f"a whole number in 1..{most}"

    def check(text):
        if str(text).strip().lower() == ALL:
            return 0
        value = _number(text, int)
        if value <= 0 or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"{text!r} must be {what}, or '{ALL}'")
        return value
    check.__name__ = f"count or '{ALL}'"
    return check


count_or_all = count_or_all_upto()


def _in_range(kind, lo, hi, show):
    def check(text):
        value = _number(text, kind)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} must be in {show(lo)}..{show(hi)}")
        return value
    check.__name__ = f"{'integer' if kind is int else 'number'} in {show(lo)}..{show(hi)}"
    return check


def int_range(lo: int, hi: int):
    """An integer in lo..hi."""
    return _in_range(int, lo, hi, str)


def float_range(lo: float, hi: float):
    """A finite number in lo..hi."""
    return _in_range(float, lo, hi, lambda v: f"{v:g}")


_ZMQ = re.compile(r"^(tcp://(\*|[A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(\*|\d{1,5})|ipc://.+|inproc://.+)$")


def zmq_address(text) -> str:
    """A ZeroMQ endpoint: tcp://host:port (port 0..65535 or *), ipc://path or inproc://name."""
    text = str(text).strip()
    m = _ZMQ.match(text)
    port = text.rsplit(":", 1)[-1] if text.startswith("tcp://") else "0"
    if not m or (port != "*" and int(port) > 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is not a ZMQ address such as tcp://127.0.0.1:5610")
    return text


def optional_zmq_address(text) -> str:
    """zmq_address, or "" for off (also spelled "off" or "none")."""
    return "" if str(text).strip().lower() in ("", "off", "none") else zmq_address(text)


def _writable_dir(folder: Path) -> bool:
    """Whether files can be made in `folder` (or in the first existing ancestor, where the
    missing folders would be made): tried, since permission bits do not tell (root, /proc)."""
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    if not folder.is_dir():
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def writable_file(text) -> str:
    """A file path that can be written ("" = none): its folder exists or can be made, writable."""
    if str(text) == "":
        return ""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    if (path.exists() and not os.access(path, os.W_OK)) or not _writable_dir(path.parent):
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written (no such folder or no permission)")
    return str(text)


def writable_dir(text) -> str:
    """A folder that exists and is writable, or can be made ("" = none)."""
    if str(text) == "":
        return ""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    if not _writable_dir(path):
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written (no permission)")
    return str(text)
