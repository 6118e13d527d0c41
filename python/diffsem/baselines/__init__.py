"""Reference schemes the semantic link is measured against (issue 5).

* ``linear``     — SoftCast-style linear analog transmission (PCA, MSE-optimal power, LMMSE).
* ``digital``    — the separation approach: image codec + convolutional code + QAM, with the
  cliff; the pure parts live here, the gr-fec / OFDM parts in ``gnuradio.diffsem.digital_link``.
* ``separation`` — the ideal separation bound: the best codec quality that fits k·log2(1+SNR)
  bits, i.e. what a capacity-achieving channel code would deliver.

Every scheme follows the evaluation Scheme interface (``name, k, steps, encode, decode``) so
the sweep engine can run it on ``diffsem.channel.transmit`` as well as through GNU Radio.
"""
from __future__ import annotations


def make_scheme(name: str, k: int, **kwargs):
    """Build a baseline Scheme by name: "linear" or "digital"."""
    if name == "linear":
        from .linear import LinearScheme
        return LinearScheme(k, **kwargs)
    if name == "digital":
        from .digital import DigitalScheme
        return DigitalScheme(k, **kwargs)
    raise ValueError(f"unknown baseline {name!r}: choose linear or digital")
