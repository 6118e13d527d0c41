"""Reference schemes the semantic link is measured against.

* ``linear``     — SoftCast-style linear analog transmission (PCA, MSE-optimal power, LMMSE).
* ``digital``    — the separation approach: image codec + convolutional code + QAM, with the
  cliff; the pure parts live here, the gr-fec / OFDM parts in the blocks ``digital_link_tx`` /
  ``digital_link_rx``.
* ``separation`` — the ideal separation bound: the best codec quality that fits k·log2(1+SNR)
  bits, i.e. what a capacity-achieving channel code would deliver.

Every scheme follows the Scheme interface of diffsem.experiments.schemes (``name, k, steps,
encode, decode``, and where it needs them ``at_snr``, ``row_fields``, ``offline``, ``link``), so
the one experiment runner takes it on ``diffsem.channel.transmit`` as well as through GNU Radio
without asking its name.
"""
from __future__ import annotations


def make_scheme(name: str, k: int, **kwargs):
    """Build a baseline Scheme by name: "linear", "digital" or "separation"."""
    if name == "linear":
        from diffsem.baselines.linear import LinearScheme
        return LinearScheme(k, **kwargs)
    if name == "digital":
        from diffsem.baselines.digital import DigitalScheme
        return DigitalScheme(k, **kwargs)
    if name == "separation":
        from diffsem.baselines.separation import SeparationScheme
        return SeparationScheme(k, **kwargs)
    raise ValueError(f"unknown baseline {name!r}: choose linear, digital or separation")


_classifier_cache: dict = {}


def classifier_accuracy(images, labels) -> float | None:
    """Accuracy of the shipped in-project classifier on images [B,1,28,28], or None (said once
    on stderr) while models/classifier.* is not there."""
    if "net" not in _classifier_cache:
        try:
            from diffsem.nn.classifier import load_classifier
            _classifier_cache["net"] = load_classifier()
        except Exception as exc:  # missing or mismatching card: accuracy is reported as null
            import sys
            print(f"diffsem.baselines: no classifier for accuracy ({exc}); reporting null", file=sys.stderr)
            _classifier_cache["net"] = None
    net = _classifier_cache["net"]
    if net is None:
        return None
    import numpy as np
    from diffsem.nn.classifier import accuracy
    return round(float(accuracy(net, np.asarray(images, np.float32), np.asarray(labels))), 4)
