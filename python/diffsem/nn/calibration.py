"""`diffsem calibrate`: choose the diffusion decoders' sampling temperatures on the validation split.

The temperature scales the sampler's source noise; it is the perception-distortion knob (more
noise: sharper images, lower FID-FMNIST, lower PSNR). The velocity networks are conditioned on
the temperature they sample at (trained over [0, 1]), so every decoder, teacher and students
alike, gets its own by one rule, applied to the rows of
`diffsem eval --split val --scheme deepjscc teacher student --temperature T1 T2 ...`:

* **The sharpest temperature within the PSNR budget**: the highest temperature whose PSNR cost
  against DeepJSCC (same encoder, images, channel and SNR) is at most `max_psnr_cost_db`
  (0.8 dB) at every point. Sharper costs more PSNR than the link budget allows; blunter gives
  away perceptual quality for PSNR nobody asked for. Where no temperature on the grid meets the
  budget, the cheapest is taken and the card's record says so (`OVER_BUDGET` in its rule).

Choices are made on validation rows only (never on the test set) and written into the model
cards as `default_temperature` plus a `temperature_calibration` record, which `diffsem eval`,
`Scheme` and the `diffusion_decoder` block then use. `within_teacher_bar` is the
student-vs-teacher bar the results pages check students against.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

MAX_PSNR_COST_DB = 0.8
MAX_DPSNR_DB = 0.5          # the student-vs-teacher bar: PSNR within 0.5 dB,
MAX_ACC_DROP = 0.01         # accuracy at most 1 point lower,
BAR_FID_RATIO = 1.10        # FID-FMNIST within 10 %
RULE = "highest T whose PSNR cost against DeepJSCC is <= {cost} dB at every point"
OVER_BUDGET = "; no T meets it: the T of the lowest cost"


class CalibrationError(ValueError):
    """No temperature on the grid satisfies the rule, or the rows do not cover what it needs."""


def within_teacher_bar(dpsnr: float, dacc: float, fid_ratio: float, max_fid_ratio: float = BAR_FID_RATIO) -> bool:
    """A student against its teacher: PSNR within MAX_DPSNR_DB either way, accuracy and FID no worse
    than the bar (a student may be better)."""
    eps = 1e-9  # rows carry rounded metrics
    return abs(dpsnr) <= MAX_DPSNR_DB + eps and dacc >= -MAX_ACC_DROP - eps and fid_ratio <= max_fid_ratio + eps


@dataclass
class Choice:
    name: str                    # card name: teacher_k128, student_k32_s2
    k: int
    temperature: float
    rule: str
    target: str                  # what it was compared against
    worst: dict                  # worst case over the points at the chosen temperature
    candidates: list = field(default_factory=list)   # (temperature, worst, ok) for every grid value

    def record(self, rows) -> dict:
        """The card's `temperature_calibration` entry."""
        pts = _points(rows, self.k)
        ns = sorted({r["n"] for r in rows if r["k"] == self.k})
        seeds = sorted({r.get("seed", 0) for r in rows if r["k"] == self.k})
        return {"split": "val", "n": ns[0] if len(ns) == 1 else ns, "seed": seeds[0] if len(seeds) == 1 else seeds,
                "points": [f"{ch}{'/' + csi if csi else ''} {snr:g} dB" for ch, csi, snr in pts],
                "grid": [c[0] for c in self.candidates], "rule": self.rule, "target": self.target,
                "worst_at_choice": {key: round(v, 4) for key, v in self.worst.items()},
                "doc": "docs/design/decisions.md#sampling-temperature", "command": "diffsem calibrate"}


def _key(r):
    return (r["scheme"], r.get("steps"), r.get("temperature"), r["k"], r["channel"], r.get("csi") or "",
            float(r["snr_db"]))


def _index(rows) -> dict:
    idx = {}
    for r in rows:
        if "split" not in r:
            raise CalibrationError("a row without a 'split' key: calibrate only on rows that say they are "
                                   "the validation split (diffsem eval --split val writes it)")
        if r["split"] != "val":
            raise CalibrationError(f"a {r['split']!r} row: calibrate on the validation split only "
                                   "(diffsem eval --split val)")
        idx[_key(r)] = r
    return idx


def _points(rows, k):
    """(channel, csi, snr) of the DeepJSCC rows at k: the points every candidate must cover."""
    pts = sorted({(r["channel"], r.get("csi") or "", float(r["snr_db"])) for r in rows
                  if r["scheme"] == "deepjscc" and r["k"] == k})
    if not pts:
        raise CalibrationError(f"no DeepJSCC rows for k={k}: the rules compare against them")
    return pts


def _temperatures(rows, scheme, k, steps):
    return sorted({r["temperature"] for r in rows if r["scheme"] == scheme and r["k"] == k
                   and r.get("steps") == steps and r.get("temperature") is not None})


def _worst(idx, pts, scheme, steps, temp, k, ref_scheme, ref_steps, ref_temp):
    """Worst case over the points of `scheme` against DeepJSCC and against a reference scheme."""
    w = {"psnr_cost_db": -1e9, "fid_reduction": 1e9, "fid_ratio": -1e9, "dpsnr_abs_db": -1e9, "dacc": 1e9}
    for ch, csi, snr in pts:
        row = idx.get((scheme, steps, temp, k, ch, csi, snr))
        dj = idx.get(("deepjscc", None, None, k, ch, csi, snr))
        ref = idx.get((ref_scheme, ref_steps, ref_temp, k, ch, csi, snr)) if ref_scheme else None
        if row is None or dj is None or (ref_scheme and ref is None):
            return None
        w["psnr_cost_db"] = max(w["psnr_cost_db"], dj["psnr"] - row["psnr"])
        w["fid_reduction"] = min(w["fid_reduction"], 1 - row["fid"] / dj["fid"])
        if ref is not None:
            w["fid_ratio"] = max(w["fid_ratio"], row["fid"] / ref["fid"])
            w["dpsnr_abs_db"] = max(w["dpsnr_abs_db"], abs(row["psnr"] - ref["psnr"]))
            w["dacc"] = min(w["dacc"], row["accuracy"] - ref["accuracy"])
    if not ref_scheme:
        for key in ("fid_ratio", "dpsnr_abs_db", "dacc"):
            del w[key]
    return w


def _candidates(rows, k, scheme, steps, passes, ref=(None, None, None)) -> list:
    """(temperature, worst case over the points, passes(worst)) for every temperature of `scheme`
    whose rows, and those of the reference (scheme, steps, temperature) if any, cover every point."""
    idx, pts = _index(rows), _points(rows, k)
    cands = []
    for t in _temperatures(rows, scheme, k, steps):
        w = _worst(idx, pts, scheme, steps, t, k, *ref)
        if w is not None:
            cands.append((t, w, passes(w)))
    return cands


def choose(rows, k: int, scheme: str, steps: int, max_psnr_cost_db: float = MAX_PSNR_COST_DB) -> Choice:
    """The sharpest temperature of `scheme` (teacher or student) within the PSNR budget."""
    cands = _candidates(rows, k, scheme, steps, lambda w: w["psnr_cost_db"] <= max_psnr_cost_db + 1e-9)
    name = f"teacher_k{k}" if scheme == "teacher" else f"student_k{k}_s{steps}"
    if not cands:
        raise CalibrationError(f"{name}: no rows cover every point of the DeepJSCC rows")
    ok = [c for c in cands if c[2]]
    rule = RULE.format(cost=max_psnr_cost_db)
    if ok:
        t, w, _ = max(ok, key=lambda c: c[0])
    else:  # a card needs a temperature: the cheapest, and the record says it is over the budget
        t, w, _ = min(cands, key=lambda c: (c[1]["psnr_cost_db"], c[0]))
        rule += OVER_BUDGET
    return Choice(name, k, t, rule, f"deepjscc_k{k} on the same images and points", w, cands)


def calibrate(rows, ks=(128, 32), steps=(1, 2, 4), max_psnr_cost_db=MAX_PSNR_COST_DB,
              teacher_steps: int = 32) -> list[Choice]:
    choices = []
    for k in ks:
        choices.append(choose(rows, k, "teacher", teacher_steps, max_psnr_cost_db))
        choices.extend(choose(rows, k, "student", n, max_psnr_cost_db) for n in steps)
    return choices


def write_cards(choices, rows, models_folder) -> list[Path]:
    from diffsem.runtime.cards import load_card, write_card
    written = []
    for c in choices:
        path = Path(models_folder) / f"{c.name}.json"
        card = load_card(path)
        card["default_temperature"] = c.temperature
        card["temperature_calibration"] = c.record(rows)
        write_card(path, card)
        written.append(path)
    return written


def format_choices(choices) -> str:
    lines = []
    for c in choices:
        lines.append(f"{c.name}: T = {c.temperature:g}  ({c.rule})")
        for t, w, ok in c.candidates:
            figures = ", ".join(f"{key} {v:+.3f}" for key, v in w.items())
            lines.append(f"    {'*' if t == c.temperature else ' '} T {t:<6g} {'ok ' if ok else 'no '} {figures}")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("rows", help="JSON lines of `diffsem eval --split val` with a --temperature sweep")
    parser.add_argument("--k", nargs="+", type=int, default=[128, 32])
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4], help="student step counts")
    parser.add_argument("--max-psnr-cost", type=float, default=MAX_PSNR_COST_DB,
                        help="dB of PSNR a decoder's temperature may cost against DeepJSCC")
    parser.add_argument("--write-cards", action="store_true",
                        help="write default_temperature and temperature_calibration into the model cards")
    parser.add_argument("--models", default=None, help="model folder (default: models/)")


def run(args) -> int:
    from diffsem import models_dir
    rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines() if line.strip()]
    try:
        choices = calibrate(rows, args.k, args.steps, args.max_psnr_cost)
    except CalibrationError as exc:
        raise SystemExit(f"diffsem calibrate: {exc}")
    print(format_choices(choices))
    if args.write_cards:
        for path in write_cards(choices, rows, args.models or models_dir()):
            print(f"wrote {path}")
    return 0
