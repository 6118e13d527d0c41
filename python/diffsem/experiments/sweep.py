"""`diffsem sweep`: a resumable grid of schemes x k x channels x SNRs, one worker process per point.

    diffsem sweep --scheme digital linear deepjscc student separation --steps 1 2 --k 128 32 \\
        --channel awgn --snr -5 -2.5 0 2.5 5 --n 300 --csv runs/sweep.csv --plots runs/plots

Grid coordinates (the resume key, all written in every CSV row): path, scheme, steps,
temperature, k, channel, cfo, impairment, fraction, sir_db, snr_db, n, seed. `temperature` is the
sampling temperature of a teacher/student point (--temperature, else the model card's
`default_temperature`), so a rerun after a card's temperature changed recomputes those points
instead of keeping stale rows. The impairment axis (--impairment, --fraction, --sir) is
diffsem.experiments.grid's, on the library path only. A point is

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

import functools
import logging
import os
import socket
import sys
import time
from pathlib import Path
from diffsem import args as checks

from diffsem.experiments import grid
from diffsem.experiments import rows as rowfile
from diffsem.experiments.grid import KEY_FIELDS, make_points, point_key, settle_impairment  # noqa: F401 (the sweep's grid)
from diffsem.experiments.plots import markdown_table, path_table, write_plots  # noqa: F401 (the sweep's reports)
from diffsem.experiments.schemes import ALL_SCHEMES
from diffsem.args import UsageError

log = logging.getLogger("diffsem.experiments.sweep")

SCHEMES = ALL_SCHEMES
CHANNELS = ("awgn", "rayleigh", "selective")
PATHS = ("library", "flowgraph")
METRIC_FIELDS = ("psnr", "ssim", "accuracy", "fid", "hf_ratio", "delivered", "mode", "nonfinite")
INFO_FIELDS = ("seconds", "finished_at", "worker")
FIELDS = KEY_FIELDS + METRIC_FIELDS + INFO_FIELDS
REQUIRED = ("path", "scheme", "k", "snr_db", "seed", "finished_at")  # a row without one was cut short


# --- the CSV (diffsem.experiments.rows under FIELDS) -----------------------------------------------

def read_rows(path) -> list[dict]:
    """Rows of a sweep CSV; rows cut short (a sweep killed while writing) are dropped with a warning."""
    return rowfile.read_rows(path, REQUIRED)


def RowWriter(path) -> rowfile.RowWriter:
    """The sweep CSV's writer: FIELDS header, flushed and fsynced per row, older headers upgraded."""
    return rowfile.RowWriter(path, FIELDS, REQUIRED)


# --- one point (runs in a worker process) -------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _test_set(n: int):
    from diffsem import data
    images, labels = data.load("test")
    return images[:n], labels[:n]


@functools.lru_cache(maxsize=16)
def _scheme(name: str, k: int, steps):
    from diffsem.experiments.schemes import make_scheme
    return make_scheme(name, k, steps=steps, backend="onnx")


def run_point(point: dict, flowgraph=None) -> dict:
    """Compute one grid point; returns the CSV row (grid coordinates + metrics + timing).
    flowgraph(point, scheme, images) -> (recons, extra row fields) runs a "flowgraph" point: it
    is the channel path handed to the same runner (evaluate.evaluate_point) as the library's."""
    from diffsem.experiments import evaluate
    t0 = time.perf_counter()
    images, labels = _test_set(point["n"])
    scheme = _scheme(point["scheme"], point["k"], point["steps"])
    if point.get("temperature") not in (None, ""):
        scheme.temperature = float(point["temperature"])
    extra: dict = {}
    if point["path"] == "library" and point["cfo"]:
        raise ValueError("--cfo needs --path flowgraph (the library channel has no carrier offset)")
    if point["path"] != "library" and flowgraph is None:
        raise ValueError("--path flowgraph needs GNU Radio: run it through the `diffsem sweep` command")

    def through_flowgraph(scheme_, images_):
        recons, fields = flowgraph(point, scheme_, images_)
        extra.update(fields)
        return recons
    channel_path = None if point["path"] == "library" else through_flowgraph
    metrics = evaluate.evaluate_point(scheme, images, labels, point["channel"], point["snr_db"],
                                      point.get("csi") or "perfect", point["seed"], channel_path=channel_path,
                                      impairment=grid.point_impairment(point))
    row = dict(point)
    row.update({k_: metrics.get(k_) for k_ in METRIC_FIELDS})
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
    grid.add_impairment_arguments(parser)
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
        raise UsageError("--n must be positive")
    settle_impairment(args)
    if args.path == "library" and any(args.cfo):
        raise UsageError("--cfo needs --path flowgraph (the library channel has no carrier offset)")
    if args.path != "library" and any(args.fraction):
        raise UsageError("--fraction > 0 needs --path library (the flowgraph path takes no impairment)")
    bad_steps = [s for s in args.steps if s not in (1, 2, 4)]
    if "student" in args.scheme and bad_steps:
        raise UsageError(f"student steps must be 1, 2 or 4, not {bad_steps}")
    points = make_points(args.scheme, args.steps, args.k, args.channel, args.snr, args.n, args.seed, args.path,
                         args.cfo, args.teacher_steps, args.temperature, impairment=args.impairment,
                         fractions=args.fraction, sir_db=args.sir)
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
                for fraction in dict.fromkeys(args.fraction):
                    hit = f", {100 * fraction:g} % {args.impairment}" if fraction else ""
                    print(f"\nk = {k}, {channel}{hit}, {args.path} (PSNR dB / accuracy)\n"
                          + markdown_table(rows, k, channel, args.path, fraction))
    if args.compare_paths:
        print("\nflowgraph vs library (PSNR dB)\n" + path_table(read_rows(args.csv)))
    return 1 if counts["failed"] else 0
