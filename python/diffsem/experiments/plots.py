"""The one plotting and table module of the experiments: figures and markdown tables from rows
(dicts as `diffsem eval` prints them or as read back from any CSV of diffsem.experiments.rows:
values may be numbers or their text).

A curve is one label (`label`: the scheme's display name, plus its step count where it has one)
and its style comes from tables keyed by scheme name (`STYLE`, `STEP_COLORS`); a scheme that is
in neither is drawn in matplotlib's next colour. Nothing here asks a scheme's name what to do.
"""
from __future__ import annotations

import math
from pathlib import Path

from diffsem.experiments.schemes import ALL_SCHEMES as ORDER  # table columns in this order

DISPLAY_NAMES = {"separation": "separation bound"}
STYLE = {"digital": dict(color="tab:red", marker="s"), "linear": dict(color="tab:gray", marker="^"),
         "deepjscc": dict(color="tab:blue", marker="o"), "deepjscc_nonv": dict(color="tab:cyan", marker="o"),
         "teacher": dict(color="tab:purple", marker="D"), "student": dict(color="tab:green", marker="v"),
         "separation": dict(color="black", ls="--", marker="")}
STEP_COLORS = {"student": {1: "tab:green", 2: "tab:olive", 4: "tab:brown"}}

PANELS = {"psnr": "PSNR (dB, mean per image, [0,1])", "ssim": "SSIM",
          "accuracy": "classifier accuracy on reconstructions", "fid": "FID-FMNIST (not Inception-FID)"}
SWEEP_PANELS = ("psnr", "ssim", "accuracy", "fid")
EVAL_PANELS = ("psnr", "accuracy", "fid")


def num(value) -> float:
    """A row value as a float (NaN for None, '' or text that is not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def steps_of(row):
    """The row's step count, or None where the scheme has none (None, '' or 0)."""
    steps = row.get("steps")
    if steps in (None, ""):
        return None
    s = int(float(steps))
    return s or None


def label(row) -> str:
    """A curve's name: the scheme's display name, with '(n steps)' when it has steps."""
    name = DISPLAY_NAMES.get(row["scheme"], row["scheme"])
    s = steps_of(row)
    return name if s is None else f"{name} ({s} step{'' if s == 1 else 's'})"


def style(row) -> dict:
    st = dict(STYLE.get(row["scheme"], {}))
    color = STEP_COLORS.get(row["scheme"], {}).get(steps_of(row) or 1)
    if color:
        st["color"] = color
    return st


def _cfo(r) -> float:
    """The row's carrier offset; 0 where it has none (eval rows, library path)."""
    cfo = num(r.get("cfo"))
    return cfo if math.isfinite(cfo) else 0.0


def impairment(r) -> tuple[str, float]:
    """The row's (impairment, fraction); ("none", 0.0) where it has none (rows made before the
    impairment axis, and every point at fraction 0)."""
    fraction = num(r.get("fraction"))
    if not math.isfinite(fraction) or not fraction:
        return "none", 0.0
    return r.get("impairment") or "none", fraction


def _impairment_tag(r) -> str:
    kind, fraction = impairment(r)
    return f"_{kind}{100 * fraction:g}" if fraction else ""


def impairment_text(r) -> str:
    """', 25 % erasure' (', 12.5 % narrowband at 0 dB SIR'); '' for a row where nothing is hit."""
    kind, fraction = impairment(r)
    sir = num(r.get("sir_db"))
    return (f", {100 * fraction:g} % {kind}" + (f" at {sir:g} dB SIR" if math.isfinite(sir) else "")) if fraction else ""


def _group_key(r) -> tuple:
    return (r.get("path") or "library", int(float(r["k"])), r["channel"], r.get("csi") or "", _cfo(r),
            _impairment_tag(r))


def write_plots(rows, out_dir, prefix: str = "sweep", panels=SWEEP_PANELS, scatter: bool = True,
                dpi: int = 90) -> list[Path]:
    """Per (path, k, channel, csi, cfo, impairment): the `panels` metrics vs SNR (every scheme on
    one figure), `<prefix>_k<k>_<channel>[_<csi>][_cfo<c>][_<impairment><percent>][_<path>].png`, and with `scatter` a
    perception-distortion scatter (PSNR vs FID, one point per scheme and SNR), `<prefix>_pd_...`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict = {}
    for r in rows:
        groups.setdefault(_group_key(r), []).append(r)
    written = []
    for (path, k, channel, csi, cfo, hit), group in sorted(groups.items()):
        by_label: dict = {}
        for r in group:
            by_label.setdefault(label(r), []).append(r)
        tag = (f"k{k}_{channel}" + (f"_{csi}" if csi else "") + (f"_cfo{cfo:g}" if cfo else "") + hit
               + ("" if path == "library" else f"_{path}"))
        n, seed = group[0]["n"], group[0]["seed"]
        where = (f"k = {k} (k/n = {k / 784:.3f}), {channel}" + (f", {csi} CSI" if csi else "")
                 + (f", CFO {cfo:g} subcarriers" if cfo else "") + impairment_text(group[0]))
        title = where + f", {path} channel, {n} test images, seed {seed}"

        fig, axes = plt.subplots(1, len(panels), figsize=(4.25 * len(panels), 4.0), squeeze=False)
        axes = axes[0]
        for lab, rs in by_label.items():
            rs = sorted(rs, key=lambda r: num(r["snr_db"]))
            snr = [num(r["snr_db"]) for r in rs]
            for ax, key in zip(axes, panels):
                ax.plot(snr, [num(r.get(key)) for r in rs], label=lab, ms=4, **style(rs[0]))
        for ax, key in zip(axes, panels):
            ax.set_xlabel("SNR (dB, Es/N0 per complex symbol)")
            ax.set_title(PANELS[key], fontsize=10)
            ax.grid(alpha=0.3)
            if key == "fid":
                ax.set_yscale("log")
        axes[0].legend(fontsize=8)
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        p = out_dir / f"{prefix}_{tag}.png"
        fig.savefig(p, dpi=dpi)
        plt.close(fig)
        written.append(p)
        if not scatter:
            continue

        fig, ax = plt.subplots(figsize=(6.5, 4.8))
        for lab, rs in by_label.items():
            pts = [(num(r.get("fid")), num(r.get("psnr")), num(r["snr_db"])) for r in rs]
            pts = [q for q in pts if math.isfinite(q[0]) and math.isfinite(q[1])]
            if not pts:
                continue
            st = style(rs[0])
            st.pop("ls", None)
            st["marker"] = st.get("marker") or "x"
            ax.scatter([q[1] for q in pts], [q[0] for q in pts], label=lab, s=18, color=st.get("color"),
                       marker=st["marker"])
        ax.set_yscale("log")
        ax.set_xlabel("PSNR (dB) — distortion: right is better")
        ax.set_ylabel("FID-FMNIST — perception: down is better")
        ax.set_title(f"perception-distortion, {where}\n(one point per SNR)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out_dir / f"{prefix}_pd_{tag}.png"
        fig.savefig(p, dpi=dpi)
        plt.close(fig)
        written.append(p)
    return written


def markdown_table(rows, k: int, channel: str = "awgn", path: str = "library", fraction: float = 0.0) -> str:
    """PSNR / accuracy per SNR (rows) and scheme (columns): the cliff table (of the rows at that
    impaired fraction)."""
    rs = [r for r in rows if int(float(r["k"])) == k and r["channel"] == channel
          and (r.get("path") or "library") == path and not _cfo(r) and impairment(r)[1] == float(fraction)]
    labels = list(dict.fromkeys(label(r) for r in sorted(rs, key=lambda r: ORDER.index(r["scheme"])
                                                         if r["scheme"] in ORDER else 99)))
    snrs = sorted({num(r["snr_db"]) for r in rs})
    cell = {(label(r), num(r["snr_db"])): r for r in rs}
    lines = ["| SNR (dB) | " + " | ".join(labels) + " |", "|---:|" + "---:|" * len(labels)]
    for s in snrs:
        vals = []
        for lab in labels:
            r = cell.get((lab, s))
            vals.append("" if r is None else f"{num(r['psnr']):.2f} / {num(r['accuracy']):.3f}")
        lines.append(f"| {s:g} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def path_table(rows) -> str:
    """Flowgraph vs library PSNR for every point computed both ways (same scheme, k, channel, SNR,
    n, seed; the library path has no CFO so every flowgraph CFO is set beside its zero-CFO twin)."""
    def twin_key(r):
        return (r["scheme"], r["steps"], r.get("temperature") or "", r["k"], r["channel"], num(r["snr_db"]),
                impairment(r), r["n"], r["seed"])

    lib = {twin_key(r): r for r in rows if r["path"] == "library"}
    lines = ["| scheme | k | channel | CFO | SNR (dB) | PSNR flowgraph | PSNR library | difference | "
             "flowgraph frames received |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted((r for r in rows if r["path"] == "flowgraph"),
                    key=lambda r: (r["scheme"], r["steps"], int(r["k"]), r["channel"], num(r["cfo"]), num(r["snr_db"]))):
        twin = lib.get(twin_key(r))
        if twin is None:
            continue
        fg, li = num(r["psnr"]), num(twin["psnr"])
        lines.append(f"| {label(r)} | {r['k']} | {r['channel']} | {num(r['cfo']):g} | {num(r['snr_db']):g} | "
                     f"{fg:.2f} | {li:.2f} | {fg - li:+.2f} | {r.get('delivered') or ''} |")
    return "\n".join(lines)


def perception_distortion(rows, out_path, k: int, snrs=(5.0, 20.0), channel: str = "awgn"):
    """PSNR (x) against FID-FMNIST (y, log) per model generation (`models` row key) at the given
    SNRs: every decoder as a curve over its sampling temperatures (a point where it has none),
    solid for the newest generation, dashed for the others. Down-right is better."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(snrs), figsize=(5.2 * len(snrs), 4.2), squeeze=False)
    gens = sorted({str(r.get("models", "")) for r in rows})
    for ax, snr in zip(axes[0], snrs):
        pts = [r for r in rows if int(r["k"]) == k and r["channel"] == channel and num(r["snr_db"]) == snr]
        for g in gens:
            curves = {}
            for r in pts:
                if str(r.get("models", "")) == g:
                    curves.setdefault((r["scheme"], steps_of(r)), []).append(r)
            for curve in curves.values():
                curve.sort(key=lambda r: num(r.get("temperature") or 0))
                st = style(curve[0])
                st["linestyle"] = "-" if g == gens[-1] else "--"
                st.setdefault("marker", "o")
                ax.plot([num(r["psnr"]) for r in curve], [num(r["fid"]) for r in curve],
                        label=f"{g} {label(curve[0])}".strip(), **st)
        ax.set_yscale("log")
        ax.set_xlabel("PSNR (dB)")
        ax.set_ylabel("FID-FMNIST (log)")
        ax.set_title(f"k = {k}, {channel.upper()} {snr:g} dB")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


# --- the impairment axis: metrics against the impaired fraction ---------------------------------

FRACTION_PANELS = ("psnr", "accuracy")
GENERATION_LINES = ("-", "--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)))  # one line style per model generation (`models` row key)


def _generation(r) -> str:
    return str(r.get("models") or "")


def _fraction_curves(rows, k: int, snr_db: float, channel: str) -> dict:
    """{(generation, label): rows sorted by fraction} at one (k, channel, SNR), library path."""
    curves: dict = {}
    for r in rows:
        if (int(float(r["k"])) == k and r["channel"] == channel and num(r["snr_db"]) == float(snr_db)
                and (r.get("path") or "library") == "library" and not _cfo(r)):
            curves.setdefault((_generation(r), label(r)), []).append(r)
    gens = sorted({g for g, _ in curves}, key=lambda g: (g != "", g))
    order = {lab: i for i, lab in enumerate(dict.fromkeys(
        label(r) for r in sorted(rows, key=lambda r: ORDER.index(r["scheme"]) if r["scheme"] in ORDER else 99)))}
    return {key: sorted(curves[key], key=lambda r: impairment(r)[1])
            for key in sorted(curves, key=lambda gl: (gens.index(gl[0]), order.get(gl[1], 99)))}


def _impairment_kind(rows) -> str:
    kinds = sorted({impairment(r)[0] for r in rows} - {"none"})
    return "/".join(kinds) or "none"


def curve_name(generation: str, lab: str, current: str = "current") -> str:
    """A curve's name on the fraction figures and tables: the label and its model generation."""
    return f"{lab} [{generation or current}]"


def fraction_figure(rows, path, k: int, snr_db: float, channel: str = "awgn", panels=FRACTION_PANELS,
                    dpi: int = 110) -> Path:
    """The `panels` metrics against the impaired fraction (%) at one (k, channel, SNR): one line
    per decoder (`label`, coloured by `style`) and model generation (line style; rows without
    `models` are the current models)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = _fraction_curves(rows, k, snr_db, channel)
    gens = list(dict.fromkeys(g for g, _ in curves))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False)
    for (gen, lab), rs in curves.items():
        x = [100 * impairment(r)[1] for r in rs]
        st = style(rs[0])
        st["ls"] = GENERATION_LINES[gens.index(gen) % len(GENERATION_LINES)]
        for ax, key in zip(axes[0], panels):
            ax.plot(x, [num(r.get(key)) for r in rs], label=curve_name(gen, lab), ms=4, **st)
    every = [r for rs in curves.values() for r in rs]
    for ax, key in zip(axes[0], panels):
        ax.set_xlabel(f"fraction of the frame's symbols hit (%, {_impairment_kind(every)})")
        ax.set_title(PANELS[key], fontsize=10)
        ax.grid(alpha=0.3)
        if key == "fid":
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=7)
    ns = sorted({str(r["n"]) for r in every})
    seeds = sorted({str(r["seed"]) for r in every})
    fig.suptitle(f"k = {k} (k/n = {k / 784:.3f}), {channel} {snr_db:g} dB, {'/'.join(ns)} test images, "
                 f"seed {'/'.join(seeds)}", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def fraction_table(rows, k: int, snr_db: float, channel: str = "awgn") -> str:
    """PSNR dB / accuracy % / FID-FMNIST per decoder and generation (rows) against the impaired
    fraction (columns), then what each fraction costs against 0 % (PSNR dB / accuracy points)."""
    curves = _fraction_curves(rows, k, snr_db, channel)
    fractions = sorted({impairment(r)[1] for rs in curves.values() for r in rs})
    head = "| decoder | " + " | ".join(f"{100 * f:g} %" for f in fractions) + " |"
    main = [head, "|---|" + "---:|" * len(fractions)]
    cost = ["| decoder | " + " | ".join(f"{100 * f:g} %" for f in fractions if f) + " |",
            "|---|" + "---:|" * sum(1 for f in fractions if f)]
    for (gen, lab), rs in curves.items():
        at = {impairment(r)[1]: r for r in rs}
        cells = ["–" if f not in at else
                 f"{num(at[f]['psnr']):.2f} / {100 * num(at[f]['accuracy']):.1f} / {num(at[f].get('fid')):.1f}"
                 for f in fractions]
        main.append(f"| {curve_name(gen, lab)} | " + " | ".join(cells) + " |")
        base = at.get(0.0)
        deltas = ["–" if base is None or f not in at else
                  f"{num(at[f]['psnr']) - num(base['psnr']):+.2f} / "
                  f"{100 * (num(at[f]['accuracy']) - num(base['accuracy'])):+.1f}" for f in fractions if f]
        cost.append(f"| {curve_name(gen, lab)} | " + " | ".join(deltas) + " |")
    return ("PSNR dB / accuracy % / FID-FMNIST\n\n" + "\n".join(main)
            + "\n\nagainst 0 %: PSNR dB / accuracy points\n\n" + "\n".join(cost))
