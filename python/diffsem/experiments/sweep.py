"""`diffsem sweep`: a resumable grid of schemes x k x channels x SNRs, one worker process per point.

    diffsem sweep --scheme digital linear deepjscc student separation --steps 1 2 --k 128 32 \\
        --channel awgn --snr -5 -2.5 0 2.5 5 --n 300 --csv runs/sweep.csv --plots runs/plots

Grid coordinates (the resume key, all written in every CSV row): path, scheme, steps,
temperature, k, channel, cfo, snr_db, n, seed. `temperature` is the sampling temperature of a
teacher/student point (--temperature, else the model card's `default_temperature`), so a rerun
after a card's temperature changed recomputes those points instead of keeping stale rows. A
point is

* path "library": the scheme over diffsem.channel.transmit (diffsem.experiments.evaluate.evaluate_point:
  the same seeded noise draws for every scheme), or
* path "flowgraph": the GNU Radio PHY over channel_sim, which also takes --cfo (carrier offset
  in subcarrier spacings). This library has no GNU Radio in it: the flowgraph runner is passed
  in (`flowgraph=`) by the `diffsem sweep` command of the apps (diffsem_apps.sweep),

scored by diffsem.experiments.evaluate.score (PSNR per image on [0,1], SSIM, accuracy and FID-FMNIST of the
in-project classifier). "separation" is the ideal separation bound (offline: the best codec
setting that fits k*log2(1+SNR) bits; AWGN only). The digital baseline adapts its mode to the
point's SNR (both ends know it), the neural encoders are given the SNR as in training.

Points run in a process pool (--jobs, default 2; each worker caches data and models) or, with
--scheduler tcp://host:port, on an existing Dask distributed cluster. Rows are appended to the
CSV as points finish; a rerun skips the points already there, so a killed sweep resumes.
"""
from __future__ import annotations

import csv
import functools
import logging
import math
import os
import socket
import sys
import time
from pathlib import Path
from diffsem import args as checks

log = logging.getLogger("diffsem.experiments.sweep")

SCHEMES = ("digital", "linear", "deepjscc", "deepjscc_nonv", "teacher", "student", "separation")
NEURAL = ("deepjscc", "deepjscc_nonv", "teacher", "student")
CHANNELS = ("awgn", "rayleigh", "selective")
PATHS = ("library", "flowgraph")
KEY_FIELDS = ("path", "scheme", "steps", "temperature", "k", "channel", "cfo", "snr_db", "n", "seed")
METRIC_FIELDS = ("psnr", "ssim", "accuracy", "fid", "hf_ratio", "delivered", "mode", "nonfinite")
INFO_FIELDS = ("seconds", "finished_at", "worker")
FIELDS = KEY_FIELDS + METRIC_FIELDS + INFO_FIELDS


# --- the grid ----------------------------------------------------------------------------------

_FLOAT_KEYS = ("cfo", "snr_db", "temperature")
_INT_KEYS = ("steps", "k", "n", "seed")


def _fmt(field: str, value) -> str:
    """Canonical text of a grid coordinate, so that keys read back from the CSV compare equal."""
    if value is None or value == "":
        return ""
    if field in _FLOAT_KEYS:
        return repr(float(value))
    if field in _INT_KEYS:
        return str(int(float(value)))
    return str(value)


def point_key(point: dict) -> tuple:
    return tuple(_fmt(f, point.get(f)) for f in KEY_FIELDS)


def point_temperature(scheme: str, k: int, steps, temperature=None):
    """The sampling temperature a teacher/student point runs at (None for the other schemes)."""
    if scheme not in ("teacher", "student"):
        return None
    if temperature is not None:
        return float(temperature)
    from diffsem.runtime.naming import card_temperature
    return card_temperature(scheme, k, steps)


def make_points(schemes, steps, ks, channels, snrs, n: int, seed: int, path: str = "library",
                cfos=(0.0,), teacher_steps=None, temperature=None) -> list[dict]:
    """Every grid point, in a stable order (k, channel, cfo, scheme, steps, SNR)."""
    points = []
    for k in ks:
        for channel in channels:
            for cfo in cfos:
                for scheme in schemes:
                    if scheme == "separation" and (channel != "awgn" or path != "library" or cfo):
                        continue  # an offline AWGN bound: one curve, no channel simulated
                    if scheme == "student":
                        step_list = list(steps)
                    elif scheme == "teacher":
                        step_list = [teacher_steps]
                    else:
                        step_list = [None]
                    for st in step_list:
                        for snr in snrs:
                            points.append({"path": path, "scheme": scheme, "steps": st,
                                           "temperature": point_temperature(scheme, k, st, temperature),
                                           "k": int(k),
                                           "channel": channel, "cfo": float(cfo), "snr_db": float(snr),
                                           "n": int(n), "seed": int(seed)})
    return points


# --- the CSV -------------------------------------------------------------------------------------

def read_rows(path) -> list[dict]:
    """Rows of a sweep CSV; rows cut short (a sweep killed while writing) are dropped with a warning."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    rows, bad = [], 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if any(row.get(k) in (None, "") for k in ("path", "scheme", "k", "snr_db", "seed", "finished_at")):
                bad += 1
                continue
            rows.append(row)
    if bad:
        log.warning("%s: %d incomplete row(s) ignored; those points will be recomputed", path, bad)
    return rows


def _upgrade_header(path: Path) -> None:
    """Rewrite a CSV written with other columns (an older gr-diffsem) under FIELDS, atomically.
    Columns it lacks stay empty: such rows keep their values but match no point that needs them."""
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    if header == list(FIELDS):
        return
    rows = read_rows(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k) or "" for k in FIELDS})
    tmp.replace(path)
    log.warning("%s: columns upgraded to %s (%d rows kept)", path, ", ".join(FIELDS), len(rows))


class RowWriter:
    """Appends rows with the FIELDS header; flushed and fsynced per row so a kill loses at most one."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            _upgrade_header(self.path)
            with open(self.path, "rb") as f:  # a line cut by a kill must not swallow the next row
                f.seek(-1, os.SEEK_END)
                ends_clean = f.read(1) == b"\n"
            if not ends_clean:
                with open(self.path, "a") as f:
                    f.write("\n")
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=FIELDS, extrasaction="ignore")
        if new:
            self._writer.writeheader()

    def write(self, row: dict) -> None:
        self._writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in FIELDS})
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


# --- one point (runs in a worker process) -------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _test_set(n: int):
    from diffsem import data
    images, labels = data.load("test")
    return images[:n], labels[:n]


@functools.lru_cache(maxsize=16)
def _scheme(name: str, k: int, steps):
    if name in ("digital", "linear"):
        from diffsem.baselines import make_scheme
        return make_scheme(name, k)
    from diffsem.experiments.schemes import load_scheme
    return load_scheme(name, k, steps=steps, backend="onnx")


def run_point(point: dict, flowgraph=None) -> dict:
    """Compute one grid point; returns the CSV row (grid coordinates + metrics + timing).
    flowgraph(point, scheme, images) -> (recons, extra row fields) runs a "flowgraph" point."""
    import numpy as np

    from diffsem.experiments import evaluate
    t0 = time.perf_counter()
    images, labels = _test_set(point["n"])
    name, k, snr = point["scheme"], point["k"], point["snr_db"]
    extra: dict = {}
    if name == "separation":
        from diffsem.baselines.separation import reconstruct
        recons, fits = reconstruct(images, k, snr)
        metrics = evaluate.score(recons, images, labels)
        extra["delivered"] = round(sum(1 for f in fits if f is not None and f.codec) / len(fits), 4)
    else:
        scheme = _scheme(name, k, point["steps"])
        if point.get("temperature") not in (None, ""):
            scheme.temperature = float(point["temperature"])
        if name == "digital":
            scheme.link_snr_db = snr
            extra["mode"] = scheme.mode_for(snr).name
        if point["path"] == "library":
            if point["cfo"]:
                raise ValueError("--cfo needs --path flowgraph (the library channel has no carrier offset)")
            metrics = evaluate.evaluate_point(scheme, images, labels, point["channel"], snr, "perfect",
                                              point["seed"])
            if name == "digital":
                st = scheme.last_stats or {}
                if st.get("frames"):
                    extra["delivered"] = round(st.get("ok", 0) / st["frames"], 4)
        else:
            if flowgraph is None:
                raise ValueError("--path flowgraph needs GNU Radio: run it through the `diffsem sweep` command")
            recons, extra_fg = flowgraph(point, scheme, images)
            extra.update(extra_fg)
            metrics = evaluate.score(np.asarray(recons, np.float32), images, labels)
    row = dict(point)
    row.update({k_: metrics.get(k_) for k_ in ("psnr", "ssim", "accuracy", "fid", "hf_ratio", "nonfinite")})
    row.update(extra)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 10**6:06d}Z"
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return row


def _init_worker(threads: int) -> None:
    """One BLAS/torch thread per worker: --jobs processes share the cores instead of fighting."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")


# --- executors -------------------------------------------------------------------------------

def _results_local(points, jobs: int, threads: int, flowgraph=None):
    """(point, row or exception) as points finish, on a pool of `jobs` spawned worker processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    ctx = multiprocessing.get_context("spawn")  # fork after torch/ORT/GNU Radio threads can deadlock
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(run_point, p, flowgraph): p for p in points}
        try:
            for fut in as_completed(futures):
                exc = fut.exception()
                yield futures[fut], (exc if exc is not None else fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _results_dask(points, scheduler: str, flowgraph=None):
    from distributed import Client, as_completed
    with Client(scheduler, timeout="30s") as client:
        futures = client.map(functools.partial(run_point, flowgraph=flowgraph), points, pure=False)
        index = {f.key: p for f, p in zip(futures, points)}
        try:
            for fut in as_completed(futures):
                try:
                    result = fut.result()
                except Exception as exc:  # noqa: BLE001 - a failed point is logged and counted
                    result = exc
                yield index[fut.key], result
        except BaseException:
            client.cancel(futures)
            raise


def run_sweep(points, csv_path, jobs: int = 2, scheduler: str | None = None, threads: int = 1,
              progress: bool = True, flowgraph=None) -> dict:
    """Run the points not already in `csv_path`, appending rows as they finish. Returns counts.
    flowgraph: the runner of "flowgraph" points (see run_point)."""
    done = {point_key(r) for r in read_rows(csv_path)}
    todo = [p for p in points if point_key(p) not in done]
    skipped = len(points) - len(todo)
    log.info("%d points: %d already in %s, %d to run", len(points), skipped, csv_path, len(todo))
    counts = {"points": len(points), "skipped": skipped, "ran": 0, "failed": 0}
    if not todo:
        return counts
    from tqdm import tqdm
    writer = RowWriter(csv_path)
    results = _results_dask(todo, scheduler, flowgraph) if scheduler else \
        _results_local(todo, max(1, jobs), threads, flowgraph)
    try:
        with tqdm(total=len(todo), desc="sweep", unit="pt", disable=not progress, file=sys.stderr) as bar:
            for point, result in results:
                if isinstance(result, BaseException):
                    counts["failed"] += 1
                    log.error("point %s failed: %s: %s", dict(zip(KEY_FIELDS, point_key(point))),
                              type(result).__name__, result)
                else:
                    writer.write(result)
                    counts["ran"] += 1
                    bar.set_postfix_str(f"{point['scheme']} k={point['k']} {point['snr_db']:g} dB "
                                        f"psnr={result.get('psnr')}")
                bar.update(1)
    finally:
        writer.close()
    return counts


# --- plots ---------------------------------------------------------------------------------------

def _num(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def _label(row) -> str:
    steps = row.get("steps")
    name = {"separation": "separation bound"}.get(row["scheme"], row["scheme"])
    if row["scheme"] in ("student", "teacher") and steps not in (None, ""):
        s = int(float(steps))
        return f"{name} ({s} step{'' if s == 1 else 's'})"
    return name


_STYLE = {"digital": dict(color="tab:red", marker="s"), "linear": dict(color="tab:gray", marker="^"),
          "deepjscc": dict(color="tab:blue", marker="o"), "deepjscc_nonv": dict(color="tab:cyan", marker="o"),
          "teacher": dict(color="tab:purple", marker="D"), "separation": dict(color="black", ls="--", marker="")}
_STUDENT_COLORS = {1: "tab:green", 2: "tab:olive", 4: "tab:brown"}


def _style(row) -> dict:
    if row["scheme"] == "student":
        return dict(color=_STUDENT_COLORS.get(int(float(row["steps"] or 1)), "tab:green"), marker="v")
    return _STYLE.get(row["scheme"], {})


def write_plots(rows, out_dir, prefix: str = "sweep") -> list[Path]:
    """Per (path, k, channel, cfo): PSNR, SSIM, accuracy, FID vs SNR (every scheme on one figure),
    and a perception-distortion scatter (PSNR vs FID, one point per scheme and SNR)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["path"], int(float(r["k"])), r["channel"], _num(r.get("cfo")) or 0.0), []).append(r)
    written = []
    for (path, k, channel, cfo), group in sorted(groups.items()):
        by_label: dict = {}
        for r in group:
            by_label.setdefault(_label(r), []).append(r)
        tag = f"k{k}_{channel}" + (f"_cfo{cfo:g}" if cfo else "") + ("" if path == "library" else f"_{path}")
        n, seed = group[0]["n"], group[0]["seed"]
        title = (f"k = {k} (k/n = {k / 784:.3f}), {channel}" + (f", CFO {cfo:g} subcarriers" if cfo else "")
                 + f", {path} channel, {n} test images, seed {seed}")

        fig, axes = plt.subplots(1, 4, figsize=(17, 4.0))
        panels = (("psnr", "PSNR (dB, mean per image, [0,1])"), ("ssim", "SSIM"),
                  ("accuracy", "classifier accuracy on reconstructions"), ("fid", "FID-FMNIST (not Inception-FID)"))
        for label, rs in by_label.items():
            rs = sorted(rs, key=lambda r: _num(r["snr_db"]))
            snr = [_num(r["snr_db"]) for r in rs]
            for ax, (key, _) in zip(axes, panels):
                ax.plot(snr, [_num(r.get(key)) for r in rs], label=label, ms=4, **_style(rs[0]))
        for ax, (key, name) in zip(axes, panels):
            ax.set_xlabel("SNR (dB, Es/N0 per complex symbol)")
            ax.set_title(name, fontsize=10)
            ax.grid(alpha=0.3)
        axes[3].set_yscale("log")
        axes[0].legend(fontsize=8)
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        p = out_dir / f"{prefix}_{tag}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(p)

        fig, ax = plt.subplots(figsize=(6.5, 4.8))
        for label, rs in by_label.items():
            pts = [(_num(r.get("fid")), _num(r.get("psnr")), _num(r["snr_db"])) for r in rs]
            pts = [q for q in pts if math.isfinite(q[0]) and math.isfinite(q[1])]
            if not pts:
                continue
            st = dict(_style(rs[0]))
            st.pop("ls", None)
            st["marker"] = st.get("marker") or "x"
            ax.scatter([q[1] for q in pts], [q[0] for q in pts], label=label, s=18, color=st.get("color"),
                       marker=st["marker"])
        ax.set_yscale("log")
        ax.set_xlabel("PSNR (dB) — distortion: right is better")
        ax.set_ylabel("FID-FMNIST — perception: down is better")
        ax.set_title(f"perception-distortion, {title.split(', ' + path)[0]}\n(one point per SNR)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out_dir / f"{prefix}_pd_{tag}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(p)
    return written


def markdown_table(rows, k: int, channel: str = "awgn", path: str = "library") -> str:
    """PSNR / accuracy per SNR (rows) and scheme (columns): the README's cliff table."""
    rs = [r for r in rows if int(float(r["k"])) == k and r["channel"] == channel and r["path"] == path
          and not _num(r.get("cfo"))]
    labels = list(dict.fromkeys(_label(r) for r in sorted(rs, key=lambda r: SCHEMES.index(r["scheme"])
                                                          if r["scheme"] in SCHEMES else 99)))
    snrs = sorted({_num(r["snr_db"]) for r in rs})
    cell = {(_label(r), _num(r["snr_db"])): r for r in rs}
    lines = ["| SNR (dB) | " + " | ".join(labels) + " |", "|---:|" + "---:|" * len(labels)]
    for s in snrs:
        vals = []
        for lab in labels:
            r = cell.get((lab, s))
            vals.append("" if r is None else f"{_num(r['psnr']):.2f} / {_num(r['accuracy']):.3f}")
        lines.append(f"| {s:g} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def path_table(rows) -> str:
    """Flowgraph vs library PSNR for every point computed both ways (same scheme, k, channel, SNR,
    n, seed; the library path has no CFO so every flowgraph CFO is set beside its zero-CFO twin)."""
    def twin_key(r):
        return (r["scheme"], r["steps"], r.get("temperature") or "", r["k"], r["channel"], _num(r["snr_db"]),
                r["n"], r["seed"])

    lib = {twin_key(r): r for r in rows if r["path"] == "library"}
    lines = ["| scheme | k | channel | CFO | SNR (dB) | PSNR flowgraph | PSNR library | difference | "
             "flowgraph frames received |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted((r for r in rows if r["path"] == "flowgraph"),
                    key=lambda r: (r["scheme"], r["steps"], int(r["k"]), r["channel"], _num(r["cfo"]), _num(r["snr_db"]))):
        twin = lib.get(twin_key(r))
        if twin is None:
            continue
        fg, li = _num(r["psnr"]), _num(twin["psnr"])
        lines.append(f"| {_label(r)} | {r['k']} | {r['channel']} | {_num(r['cfo']):g} | {_num(r['snr_db']):g} | "
                     f"{fg:.2f} | {li:.2f} | {fg - li:+.2f} | {r.get('delivered') or ''} |")
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--scheme", nargs="+", choices=SCHEMES, default=["digital", "linear", "deepjscc", "student"])
    parser.add_argument("--steps", nargs="+", type=checks.int_range(1, 1000), default=[1, 2], help="student step counts (1, 2, 4)")
    parser.add_argument("--teacher-steps", type=checks.int_range(1, 1000), default=None, help="teacher sampler steps (default: its card's)")
    parser.add_argument("--temperature", type=checks.float_range(0.0, 10.0), default=None,
                        help="sampling temperature of teacher/student points (default: each card's)")
    parser.add_argument("--k", nargs="+", type=checks.positive_int, default=[128, 32], help="complex channel uses per image")
    parser.add_argument("--channel", nargs="+", choices=CHANNELS, default=["awgn"])
    parser.add_argument("--cfo", nargs="+", type=checks.float_range(-32.0, 32.0), default=[0.0],
                        help="carrier frequency offset, subcarrier spacings (flowgraph path only)")
    parser.add_argument("--snr", nargs="+", type=checks.float_range(-50.0, 100.0), default=[-5, -2.5, 0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20,
                                                                 22.5, 25], help="Es/N0 per complex symbol, dB")
    parser.add_argument("--n", type=checks.int_range(1, 10000), default=300, help="first N Fashion-MNIST test images per point")
    parser.add_argument("--seed", type=checks.nonnegative_int, default=0, help="channel/noise/sampler seed (written in every row)")
    parser.add_argument("--path", choices=PATHS, default="library",
                        help="library: diffsem.channel.transmit; flowgraph: the GNU Radio OFDM PHY + channel_sim")
    parser.add_argument("--csv", type=Path, default=Path("runs/sweep.csv"),
                        help="rows are appended here; points already in it are skipped (resume)")
    parser.add_argument("--plots", type=Path, help="write PNG figures to this folder")
    parser.add_argument("--plot-prefix", default="sweep", help="figure file names start with this")
    parser.add_argument("--jobs", type=checks.int_range(1, 256), default=2, help="worker processes (local pool)")
    parser.add_argument("--threads", type=checks.positive_int, default=1, help="BLAS/torch threads per worker")
    parser.add_argument("--scheduler", help="tcp://host:port of a Dask distributed scheduler: run the points there")
    parser.add_argument("--table", action="store_true", help="print the PSNR/accuracy markdown table per k")
    parser.add_argument("--compare-paths", action="store_true",
                        help="print flowgraph vs library PSNR for the points of --csv computed both ways")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log")


def run(args, flowgraph=None) -> int:
    """The `diffsem sweep` command; flowgraph: the runner of --path flowgraph points."""
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    if args.n <= 0:
        raise SystemExit("diffsem sweep: --n must be positive")
    if args.path == "library" and any(args.cfo):
        raise SystemExit("diffsem sweep: --cfo needs --path flowgraph (the library channel has no carrier offset)")
    bad_steps = [s for s in args.steps if s not in (1, 2, 4)]
    if "student" in args.scheme and bad_steps:
        raise SystemExit(f"diffsem sweep: student steps must be 1, 2 or 4, not {bad_steps}")
    points = make_points(args.scheme, args.steps, args.k, args.channel, args.snr, args.n, args.seed, args.path,
                         args.cfo, args.teacher_steps, args.temperature)
    t0 = time.time()
    counts = run_sweep(points, args.csv, args.jobs, args.scheduler, args.threads, progress=not args.quiet,
                       flowgraph=flowgraph)
    log.info("sweep: %s in %.0f s -> %s", counts, time.time() - t0, args.csv)
    print(f'{{"points": {counts["points"]}, "skipped": {counts["skipped"]}, "ran": {counts["ran"]}, '
          f'"failed": {counts["failed"]}, "seconds": {time.time() - t0:.1f}, "csv": "{args.csv}"}}', flush=True)
    wanted = {point_key(p) for p in points}
    rows = [r for r in read_rows(args.csv) if point_key(r) in wanted]
    if args.plots and rows:
        for p in write_plots(rows, args.plots, args.plot_prefix):
            log.info("plot: %s", p)
    if args.table:
        for k in args.k:
            for channel in args.channel:
                print(f"\nk = {k}, {channel}, {args.path} (PSNR dB / accuracy)\n" + markdown_table(rows, k, channel, args.path))
    if args.compare_paths:
        print("\nflowgraph vs library (PSNR dB)\n" + path_table(read_rows(args.csv)))
    return 1 if counts["failed"] else 0
