"""`diffsem sweep`: diffsem.experiments.sweep's grid, with the flowgraph path ("--path flowgraph": the GNU
Radio PHY over channel_sim) that the core library cannot run itself.

The flowgraph is the channel path handed to the core's one runner (diffsem.experiments.sweep.run_point
-> evaluate.evaluate_point), so rows, scores and the CSV are the library path's. Which radio a
scheme takes is its `link` (diffsem.experiments.schemes): "digital_link" runs digital_link_tx ->
channel_sim -> digital_link_rx (gnuradio.diffsem.harness.run_loopback) in the mode link
adaptation picks for the point's SNR; "ofdm_analog" goes through ofdm_analog_tx/rx
(harness.scheme_loopback), the encoder told the point's SNR where it takes one, as on the
library path.
"""
from __future__ import annotations

from gnuradio.diffsem import harness

from diffsem.experiments import sweep
from diffsem.experiments.schemes import encode_at

add_arguments = sweep.add_arguments


class KnownSnrEncoder:
    """A Scheme whose encoder is told the point's SNR (as in training and on the library path)."""

    def __init__(self, scheme, snr_db: float):
        self._scheme, self._snr = scheme, float(snr_db)
        self.name, self.k, self.steps = scheme.name, scheme.k, scheme.steps
        if hasattr(scheme, "encode_snr_db"):  # a neural codec: its decoder is told the encoder's SNR
            self.encode_snr_db = self._snr

    def encode(self, images):
        return encode_at(self._scheme, images, self._snr)

    def decode(self, *args, **kwargs):
        return self._scheme.decode(*args, **kwargs)


def run_flowgraph(point: dict, scheme, images) -> tuple:
    """One "flowgraph" point of the sweep -> (reconstructions, extra row fields)."""
    snr, channel, seed, cfo = point["snr_db"], point["channel"], point["seed"], point["cfo"]
    link = getattr(scheme, "link", "ofdm_analog")
    if link == "digital_link":
        mode = scheme.mode_for(snr).name
        # A mode whose k symbols cannot hold the frame's own fields runs like any other: the TX
        # refuses each image and sends an idle frame, the RX shows grey ("no_image"), as on the library path.
        recons, metas, _, _ = harness.run_loopback(images, point["k"], mode, snr, channel, seed, cfo=cfo)
        delivered = sum(1 for m in metas if m.get("status") == "ok") / max(len(images), 1)
        return recons, {"mode": mode, "delivered": round(delivered, 4)}
    if link != "ofdm_analog":
        raise ValueError(f"{point['scheme']}: no radio path (link {link!r})")
    recons, received = harness.scheme_loopback(KnownSnrEncoder(scheme, snr), images, snr, channel, seed, cfo=cfo)
    return recons, {"delivered": round(float(received.mean()), 4) if len(received) else 0.0}


def run(args) -> int:
    return sweep.run(args, flowgraph=run_flowgraph)
