"""The one experiment grid: the cartesian product k x channel x cfo x scheme x steps x
temperature x csi x SNR (at one n, seed and path), each point a dict whose `point_key` over
KEY_FIELDS is the resume key of the rows written for it. `diffsem eval` and `diffsem sweep`
both walk it; which points a scheme has comes from its Kind (diffsem.experiments.schemes.KINDS:
its steps, whether its temperature is a coordinate, the channels and paths it exists on), never
from its name.
"""
from __future__ import annotations

from diffsem.experiments import rows as rowfile
from diffsem.experiments.schemes import KINDS

KEY_FIELDS = ("path", "scheme", "steps", "temperature", "k", "channel", "cfo", "snr_db", "n", "seed")


def point_key(point: dict) -> tuple:
    return rowfile.key(point, KEY_FIELDS)


def point_temperature(scheme: str, k: int, steps, temperature=None):
    """The sampling temperature a point of a sampling scheme runs at (None for the others):
    `temperature` when given, else the model card's."""
    if not KINDS[scheme].samples:
        return None
    if temperature is not None:
        return float(temperature)
    from diffsem.runtime.naming import card_temperature
    return card_temperature(scheme, k, steps)


def make_points(schemes, steps, ks, channels, snrs, n: int, seed: int, path: str = "library",
                cfos=(0.0,), teacher_steps=None, temperature=None, csis=("perfect",)) -> list[dict]:
    """Every grid point, in a stable order (k, channel, cfo, scheme, steps, temperature, csi, SNR).
    temperature: None (each card's), one value or a list (a calibration sweep); csis: the
    receiver's channel knowledge on fading channels (an AWGN point has csi None)."""
    temps = list(temperature) if isinstance(temperature, (list, tuple)) else [temperature]
    points = []
    for k in ks:
        for channel in channels:
            for cfo in cfos:
                for scheme in schemes:
                    kind = KINDS[scheme]
                    if not kind.exists(channel, path, cfo):
                        continue
                    for st in kind.step_options(steps, teacher_steps):
                        for t in (temps if kind.samples else [None]):
                            for csi in (csis if channel != "awgn" else [None]):
                                for snr in snrs:
                                    points.append({"path": path, "scheme": scheme, "steps": st,
                                                   "temperature": point_temperature(scheme, k, st, t),
                                                   "k": int(k), "channel": channel, "csi": csi,
                                                   "cfo": float(cfo), "snr_db": float(snr),
                                                   "n": int(n), "seed": int(seed)})
    return points
