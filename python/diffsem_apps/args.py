"""Argument types of the command-line apps, in one place: each refuses a bad value with one
sentence that argparse prints after the argument's name ("argument --count: ..."), exit code 2.
NaN and infinities are refused wherever a number is expected; counts are positive ("all" has
its own spelling where a command accepts it)."""
from __future__ import annotations

import argparse
import math

ALL = "all"


def _number(text, kind=float):
    try:
        value = kind(str(text).strip())
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def finite_float(text) -> float:
    return _number(text, float)


def positive_float(text) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def nonnegative_float(text) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def positive_int(text) -> int:
    value = _number(text, int)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number greater than 0")
    return value


def nonnegative_int(text) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number, 0 or more")
    return value


def count_or_all(text):
    """A positive count, or "all" (returned as None: no limit)."""
    if str(text).strip().lower() == ALL:
        return None
    value = _number(text, int)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number greater than 0, or '{ALL}'")
    return value


def int_range(lo, hi):
    """An integer in lo..hi."""
    def check(text) -> int:
        value = _number(text, int)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} must be in {lo}..{hi}")
        return value
    check.__name__ = f"integer in {lo}..{hi}"
    return check


def float_range(lo, hi):
    """A finite number in lo..hi."""
    def check(text) -> float:
        value = _number(text, float)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {lo:g} and {hi:g}")
        return value
    check.__name__ = f"number in {lo:g}..{hi:g}"
    return check
