"""`diffsem bench decoder`: speed of every exported decoder in models/ under ONNX Runtime.

Prints one JSON line: for each card with role deepjscc_decoder / teacher / student, images/s
and latency at batch 1 and 64 (from the fastest of repeated runs after warm-up, the one least
disturbed by other jobs; the median latency beside it), MFLOPs per image
counted from the ONNX graph, and the fraction of a matmul peak measured in the same run with the
same runtime and thread count (a 1024^3 fp32 MatMul through ONNX Runtime, measured before and
after the decoders, the higher kept; numpy's is reported beside it). The 1-minute load average
before and after is printed too: on a shared machine, compare runs only at similar load.
`student_vs_teacher_b64` gives student images/s over the teacher's (same k) at batch 64.

FLOPs are 2 x multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul nodes (the rest --
activations, norms, adds -- is small next to them and not counted), with shapes from ONNX shape
inference at batch 1, corrected by the shapes seen in one batch-1 run of the graph (exporters'
GroupNorm patterns defeat static inference); nodes inside a Loop body count trip-count times
when the count is a constant. A benchmark, not a test: numbers depend on the machine and its load.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from diffsem import args as checks
from diffsem.runtime.cards import BATCH, DECODER_ROLES, find_cards, load_card
from diffsem.runtime.flops import count_flops
from diffsem.runtime.onnx_model import cpu_name

log = logging.getLogger("diffsem.experiments.bench_decoder")


def _timeit(fn, min_time: float, min_runs: int = 5, warmup: int = 2) -> tuple[float, float]:
    """(fastest, median) seconds per call after warm-up; runs until min_time has passed and
    min_runs are done (3 runs and one warm-up when a single call already takes longer than
    min_time). The fastest run is the one least disturbed by other jobs (timeit's rule)."""
    t0 = time.perf_counter()
    fn()
    if time.perf_counter() - t0 > min_time:
        warmup, min_runs = 1, 3
    for _ in range(warmup - 1):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def matmul_peak(n: int = 1024, threads: int | None = None, provider: str = "auto", min_time: float = 1.0) -> dict:
    """Measured fp32 matmul GFLOP/s: an n x n x n MatMul through ONNX Runtime and through numpy."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from diffsem.runtime import resolve_providers

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "peak.onnx"
        onnx.save(model, str(path))
        # TensorRT would spend its engine build here for nothing: CUDA or CPU measure the same GEMM.
        chain = [p for p in resolve_providers(provider if provider != "tensorrt" else "cuda",
                                              ort.get_available_providers())]
        sess = ort.InferenceSession(str(path), options, providers=chain)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    t_ort = _timeit(lambda: sess.run(["c"], {"a": a, "b": b}), min_time)[0]
    t_np = _timeit(lambda: a @ b, min_time)[0]
    return {"n": n, "ort_gflops": round(flops / t_ort / 1e9, 2), "numpy_gflops": round(flops / t_np / 1e9, 2),
            "ort_provider": sess.get_providers()[0]}


def bench_model(card_path, batches, provider: str, threads: int | None, min_time: float) -> dict:
    """images/s and latency of one decoder at each batch size, with its FLOPs per image."""
    from diffsem.runtime import OnnxModel

    card = load_card(card_path)
    entry = {"name": card["name"], "role": card["role"], "k": card.get("k"), "steps": card.get("steps"),
             "file": card["file"]}
    model = OnnxModel(card_path, provider=provider, threads=threads, max_batch=max(batches))
    flops, skipped = count_flops(model.path)
    entry.update(provider=model.provider, mflops_per_image=round(flops / 1e6, 4), flops_per_image=int(flops))
    if skipped:  # e.g. {"Conv (shape unknown)": 3}
        reasons: dict = {}
        for item in skipped:
            key = f"{item.split(' ', 1)[0]} {item[item.rfind('('):]}"
            reasons[key] = reasons.get(key, 0) + 1
        entry["flops_not_counted"] = reasons
    fixed = [d for s in model.inputs.values() for d in s["shape"][:1] if d != BATCH]
    entry["images_per_s"], entry["latency_ms"], entry["latency_ms_median"] = {}, {}, {}
    for b in batches:
        if fixed and b != fixed[0]:
            entry["images_per_s"][str(b)] = None  # a static-batch graph runs only its own batch
            entry.setdefault("note", f"static batch {fixed[0]}")
            continue
        feeds = model.example_inputs(b)
        seconds, median = _timeit(lambda: model(**feeds), min_time)
        ips = b / seconds
        entry["images_per_s"][str(b)] = round(ips, 2)
        entry["latency_ms"][str(b)] = round(seconds * 1e3, 3)
        entry["latency_ms_median"][str(b)] = round(median * 1e3, 3)
    return entry


def add_arguments(parser) -> None:
    parser.add_argument("--models", type=Path, default=None, help="folder of cards (default: models/)")
    parser.add_argument("--batch", nargs="+", type=checks.int_range(1, 4096), default=[1, 64])
    parser.add_argument("--provider", choices=("auto", "tensorrt", "cuda", "cpu"), default="auto")
    parser.add_argument("--threads", type=checks.positive_int, default=None, help="ORT intra-op threads (default: ORT's choice)")
    parser.add_argument("--min-time", type=checks.float_range(0.01, 3600.0), default=2.0, help="seconds of timed runs per measurement")
    parser.add_argument("--name", nargs="+", default=None, help="only cards whose name contains one of these")
    parser.add_argument("--peak-size", type=checks.int_range(16, 16384), default=1024, help="n of the n^3 matmul peak measurement")


def run(args) -> int:
    import onnxruntime as ort

    from diffsem import models_dir

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    folder = args.models or models_dir()
    cards = [c for c in find_cards(folder, roles=DECODER_ROLES)
             if not args.name or any(s in c.stem for s in args.name)]
    if not cards:
        print(f"diffsem bench decoder: no decoder cards (roles {', '.join(DECODER_ROLES)}) in {folder}",
              file=sys.stderr)
        return 1
    # The peak is measured before and after the decoders and the higher one kept: on a shared
    # machine a peak taken during someone else's burst would inflate every fraction.
    load_before = os.getloadavg()[0]
    peak = matmul_peak(args.peak_size, args.threads, args.provider, args.min_time / 2)
    report = {"bench": "decoder", "host": platform.node(), "cpu": cpu_name(), "cpus": os.cpu_count(),
              "onnxruntime": ort.__version__, "threads": args.threads, "peak": peak, "decoders": []}
    failures = 0
    flops_of = {}
    for card in cards:
        try:
            entry = bench_model(card, args.batch, args.provider, args.threads, args.min_time)
            flops_of[entry["name"]] = entry["flops_per_image"]
            report["decoders"].append(entry)
        except Exception as exc:  # noqa: BLE001 - one bad model does not hide the others' figures
            failures += 1
            log.error("%s: %s", card.name, exc)
            report["decoders"].append({"name": card.stem, "error": str(exc)})
    peak_after = matmul_peak(args.peak_size, args.threads, args.provider, args.min_time / 2)
    peak["ort_gflops_after"] = peak_after["ort_gflops"]
    peak["ort_gflops_used"] = best = max(peak["ort_gflops"], peak_after["ort_gflops"])
    report["load_avg_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    for entry in report["decoders"]:
        if "images_per_s" in entry:
            entry["peak_fraction"] = {b: (round(flops_of[entry["name"]] * ips / (best * 1e9), 4) if ips else None)
                                      for b, ips in entry["images_per_s"].items()}
    teachers = {d["k"]: d for d in report["decoders"] if d.get("role") == "teacher"}
    ratio = {}
    for d in report["decoders"]:
        t = teachers.get(d.get("k"))
        if d.get("role") == "student" and t and d["images_per_s"].get("64") and t["images_per_s"].get("64"):
            ratio[d["name"]] = round(d["images_per_s"]["64"] / t["images_per_s"]["64"], 2)
    if ratio:
        report["student_vs_teacher_b64"] = ratio
    print(json.dumps(report), flush=True)
    return 1 if failures else 0
