"""The one experiment grid: the cartesian product k x channel x cfo x scheme x steps x
temperature x csi x impaired fraction x SNR (at one n, seed and path), each point a dict whose
`point_key` over KEY_FIELDS is the resume key of the rows written for it. `diffsem eval` and
`diffsem sweep` both walk it; which points a scheme has comes from its Kind
(diffsem.experiments.schemes.KINDS: its steps, whether its temperature is a coordinate, the
channels and paths it exists on), never from its name.

The impairment axis (`--impairment`, `--fraction`, `--sir`): a partial-frame impairment of
diffsem.channel (erasure, burst, narrowband, truncation) hitting that fraction of each frame,
the same for every scheme. A point at fraction 0 is unimpaired whatever the kind (impairment
"none", the key of rows written before the axis existed: diffsem.experiments.rows.MISSING).
"""
from __future__ import annotations

from diffsem.experiments import rows as rowfile
from diffsem.experiments.schemes import KINDS

KEY_FIELDS = ("path", "scheme", "steps", "temperature", "k", "channel", "cfo", "impairment", "fraction", "sir_db",
              "snr_db", "n", "seed")
IMPAIRMENT_KINDS = ("erasure", "burst", "narrowband", "truncation")  # of diffsem.channel.IMPAIRMENTS
DEFAULT_SIR_DB = 0.0


def impairment_fields(kind: str = "erasure", fraction: float = 0.0, sir_db: float = DEFAULT_SIR_DB) -> dict:
    """A point's impairment coordinates: impairment "none" at fraction 0 (nothing is hit, whatever
    the kind), sir_db only where it matters (narrowband)."""
    fraction = float(fraction)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"impaired fraction {fraction} outside [0, 1]")
    if not fraction:
        return {"impairment": "none", "fraction": 0.0, "sir_db": None}
    return {"impairment": kind, "fraction": fraction,
            "sir_db": float(sir_db) if kind == "narrowband" else None}


def point_impairment(point: dict):
    """The (kind, fraction, sir_db) a point hands to diffsem.channel.transmit, or None for a point
    made without the impairment axis."""
    if point.get("impairment") in (None, ""):
        return None
    sir = point.get("sir_db")
    return (point["impairment"], float(point.get("fraction") or 0.0),
            DEFAULT_SIR_DB if sir in (None, "") else float(sir))


def add_impairment_arguments(parser) -> None:
    """--impairment, --fraction, --sir: the impairment axis of `diffsem eval` and `diffsem sweep`."""
    from diffsem import args as checks
    parser.add_argument("--impairment", choices=IMPAIRMENT_KINDS, default=None,
                        help="partial-frame impairment of the points with --fraction > 0 (default erasure; diffsem.channel: "
                             "erasure: each symbol lost with that probability; burst: whole OFDM symbols; "
                             "narrowband: an interferer on that fraction of the data carriers; truncation: "
                             "the frame's tail)")
    parser.add_argument("--fraction", nargs="+", type=checks.float_range(0.0, 1.0), default=[0.0],
                        help="impaired fraction(s) of each frame: every point runs at each (default 0: none)")
    parser.add_argument("--sir", type=checks.float_range(-50.0, 100.0), default=DEFAULT_SIR_DB,
                        help="narrowband: signal-to-interference ratio per hit cell, dB (row key sir_db)")


def settle_impairment(args, fraction_options=("fraction",)) -> None:
    """args.impairment as given, else "erasure"; a kind named with no fraction above 0 (in any of
    `fraction_options`) would run every point unimpaired: a UsageError."""
    from diffsem.args import UsageError
    if args.impairment is not None and not any(any(_as_list(getattr(args, o, 0.0))) for o in fraction_options):
        flags = " or ".join("--" + o.replace("_", "-") for o in fraction_options)
        raise UsageError(f"--impairment {args.impairment} needs {flags} above 0 (the impaired share of each frame)")
    args.impairment = args.impairment or "erasure"


def _as_list(value):
    return value if isinstance(value, (list, tuple)) else [value]


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
                cfos=(0.0,), teacher_steps=None, temperature=None, csis=("perfect",),
                impairment: str = "erasure", fractions=(0.0,), sir_db: float = DEFAULT_SIR_DB) -> list[dict]:
    """Every grid point, in a stable order (k, channel, cfo, scheme, steps, temperature, csi,
    fraction, SNR). temperature: None (each card's), one value or a list (a calibration sweep);
    csis: the receiver's channel knowledge on fading channels (an AWGN point has csi None);
    impairment, fractions, sir_db: the impairment axis (impairment_fields)."""
    temps = list(temperature) if isinstance(temperature, (list, tuple)) else [temperature]
    impairments = [impairment_fields(impairment, f, sir_db) for f in dict.fromkeys(float(f) for f in fractions)]
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
                                for imp in impairments:
                                    for snr in snrs:
                                        points.append({"path": path, "scheme": scheme, "steps": st,
                                                       "temperature": point_temperature(scheme, k, st, t),
                                                       "k": int(k), "channel": channel, "csi": csi,
                                                       "cfo": float(cfo), **imp, "snr_db": float(snr),
                                                       "n": int(n), "seed": int(seed)})
    return points
