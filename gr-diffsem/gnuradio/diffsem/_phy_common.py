"""Shared helpers of the analog OFDM blocks: layout from block parameters, counters, block loading."""
from __future__ import annotations

import threading

import pmt

from diffsem.ofdm import DEFAULT_LAYOUT, OfdmLayout

LEN_TAG = "packet_len"       # tagged-stream length key inside the TX (symbols per burst)


def load_block(name: str, module: str | None = None):
    """The block class `name` of this package. Importing a block module whose name equals its
    class (ofdm_analog_tx.py defines ofdm_analog_tx) binds the package attribute to the module;
    this re-binds it to the class so `diffsem.<name>(...)` (GRC's generated code) keeps working."""
    import importlib
    import sys
    package = __name__.rsplit(".", 1)[0]
    cls = getattr(importlib.import_module(f"{package}.{module or name}"), name)
    setattr(sys.modules[package], name, cls)
    return cls


def make_layout(fft_len=None, cp_len=None, occupied_carriers=None, pilot_carriers=None,
                pilot_symbols=None) -> OfdmLayout:
    """OfdmLayout from block parameters; None keeps the 802.11a-like default. Carrier lists may be
    given flat or, as gr-digital does, as a one-element list of lists."""
    def flat(x):
        if x is None:
            return None
        x = list(x)
        if x and isinstance(x[0], (list, tuple)):
            if len(x) != 1:
                raise ValueError("one carrier set per frame is supported (a single list)")
            x = list(x[0])
        return tuple(x)

    d = DEFAULT_LAYOUT
    layout = OfdmLayout(
        fft_len=int(fft_len or d.fft_len), cp_len=int(d.cp_len if cp_len is None else cp_len),
        data_carriers=flat(occupied_carriers) or d.data_carriers,
        pilot_carriers=flat(pilot_carriers) if pilot_carriers is not None else d.pilot_carriers,
        pilot_symbols=flat(pilot_symbols) if pilot_symbols is not None else d.pilot_symbols)
    if len(layout.pilot_carriers) != len(layout.pilot_symbols):
        raise ValueError("need one pilot symbol per pilot carrier")
    half = layout.fft_len // 2
    carriers = list(layout.data_carriers) + list(layout.pilot_carriers)
    if len(set(carriers)) != len(carriers) or any(not -half <= k < half or k == 0 for k in carriers):
        raise ValueError(f"carriers must be distinct, non-DC, within [-{half}, {half})")
    return layout


# pybind's init_*vector copies a Python list about 3x faster than a numpy array: callers pass
# `array.tolist()` on the per-frame paths.


class Counters:
    """Thread-safe named counters (message handlers and Python callers run in different threads)."""

    def __init__(self, *names):
        self._lock = threading.Lock()
        self._values = {n: 0 for n in names}

    def incr(self, name, by=1):
        with self._lock:
            self._values[name] = self._values.get(name, 0) + by

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._values)

    def to_pmt(self):
        d = pmt.make_dict()
        for k, v in self.snapshot().items():
            d = pmt.dict_add(d, pmt.intern(k), pmt.from_long(v))
        return d
