"""`diffsem bench train <recipe>`: how long the recipe takes on this machine, without training it.

Runs `--steps` training steps of every stage (jscc, ablation, teacher, each distillation round) in
a scratch run folder, each stage on the weights the previous one left, and projects each stage's
wall time as (median seconds per step, the first step left out) x (steps in the stage). Prints one
JSON line: per stage its steps, seconds per step and projected hours, and the total. A benchmark,
not a test: the pace depends on the machine and on what else runs on it (the load average before
and after is printed beside it).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from diffsem.args import UsageError


def add_arguments(parser):
    parser.add_argument("recipe", help="a recipe YAML (models/recipes/*.yaml)")
    parser.add_argument("--steps", type=int, default=6, help="steps timed per stage (default 6; >= 2)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")


def project(summary: dict) -> dict:
    """Per-stage pace and projected hours from a step-limited run's summary."""
    stages = {}
    for name, log in summary.get("stages", {}).items():
        pace = log.get("pace")
        if not pace:
            continue
        hours = pace["s_per_step"] * pace["steps_in_stage"] / 3600
        stages[name] = {"s_per_step": round(pace["s_per_step"], 3), "steps_in_stage": pace["steps_in_stage"],
                        "projected_h": round(hours, 2)}
    return {"stages": stages, "total_h": round(sum(s["projected_h"] for s in stages.values()), 2)}


def run(args):
    import torch

    from diffsem.nn.train import STAGES, hardware_string, load_recipe, pick_device, train_recipe
    if args.steps < 2:
        raise UsageError("--steps must be at least 2 (the first step is not timed)")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_recipe(args.recipe)
    if cfg.get("kind") == "classifier":
        raise UsageError("a classifier recipe has one stage; time it with diffsem train")
    device = pick_device(args.device)
    load_before = os.getloadavg()[0]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="diffsem-bench-train-") as tmp:
        summary = train_recipe(cfg, Path(tmp), device, stages=STAGES, progress=False, step_limit=args.steps)
    report = {"bench": "train", "recipe": cfg["recipe_path"], "host": platform.node(),
              "hardware": hardware_string(device), "torch_threads": torch.get_num_threads(),
              "steps_timed": args.steps, **project(summary), "bench_s": round(time.time() - t0, 1),
              "load_avg_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}}
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    import argparse
    p = argparse.ArgumentParser()
    add_arguments(p)
    sys.exit(run(p.parse_args()))
