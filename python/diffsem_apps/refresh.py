"""`diffsem report refresh --k K`: recompute every generated result that depends on the k = K
models, after new ones were exported into models/ (`diffsem export RECIPE`).

    diffsem report refresh --k 32 --dry-run   # the plan: each step's command and the file it rewrites
    diffsem report refresh --k 32             # run it; --from-step N resumes after a failed step
    diffsem report refresh --k 32 --jobs 2    # steps 3-12 two at a time (each log in --log-dir)
    diffsem report refresh --k 32 --keep "joint erasure training" k32_joint_erasure.jsonl
                                              # first keep the replaced models' rows, labelled

Run from the repository's root. In order, because the students are evaluated at their cards'
temperatures:
  1. the temperature sweep on the validation split for K, then `diffsem calibrate --write-cards`;
  2. the rows behind the generated pages (decoders, codec, ablation): K's rows replaced in place;
  3. the sweeps behind cliff.md: K's rows of the learned schemes removed, the sweep recomputes them;
  4. the decoders against the erased fraction (fill.jsonl, fill_test.jsonl; `diffsem report fill`
     redraws their figures);
  5. the pages measured over both k at once: controls.md, posterior.md;
  6. the per-image reliability mapping (models/reliability.json: one file for every model, each
     fit bound to its model file's sha256);
  7. `diffsem report results`.
Steps 3-12 (2-6 above: each writes its own files and reads only the cards) do not depend on one
another: `--jobs N` runs N of them at once, which on a few cores pays where a step uses one
thread (the fill, reliability and 10 000-image sweep steps); the first two steps and the last two
(which read what the others wrote) still run alone, in order.
Rows of other k, of the baselines that use no learned model, and of earlier model generations
(`models_0.1_test.jsonl`, rows with a `models` label, pd_rows.jsonl, erasure_training.jsonl,
erasure_students*.jsonl)
are left as they are. Hand-written pages that quote numbers are listed at the end to re-read.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from diffsem.experiments.rows import read_rows, rewrite_rows
from diffsem_apps import results_docs as rd
from diffsem_apps import results_table as rt

ALL_K = "--k 128 32"
LEARNED_SCHEMES = {"deepjscc", "deepjscc_nonv", "teacher", "student"}  # a row of these depends on the models
CMD_CONTROLS = "diffsem measure controls --n 10000 --markdown docs/results/controls.md"
CMD_POSTERIOR = "diffsem measure posterior --n 100 --markdown docs/results/posterior.md"
CMD_FILL = ("diffsem eval --scheme deepjscc student linear digital --steps 1 2 --k 128 32 --channel awgn --snr 10 \\\n"
            "    --impairment erasure --fraction 0 0.1 0.25 0.5 --n 500 --seed 0 --threads 1")
CMD_FILL_10K = ("diffsem eval --scheme deepjscc student --steps 2 --k 128 32 --channel awgn --snr 10 \\\n"
                "    --impairment erasure --fraction 0 0.25 --n 10000 --seed 0 --threads 1")
CMD_RELIABILITY = ("diffsem measure reliability --fit-n 2000 --test-n 1000 --k 32,128 "
                   "--decoders deepjscc,student_s1,student_s2,student_s4 --threads 1")
FIGURES_BY_HAND = ("docs/figures/demo_mosaic.png (bash scripts/demo.sh)",
                   "docs/figures/eval_mosaic_k32.png and fill_mosaic_k32.png (their commands in docs/results/)",
                   "docs/figures/pd_k*.png (a new generation's rows in pd_rows.jsonl)")
HAND_WRITTEN = ("README.md", "docs/results/README.md", "docs/results/fill.md", "docs/results/generative_fill.md",
                "docs/design/decisions.md", "docs/guide/training.md")


@dataclass
class Step:
    what: str
    command: str
    rows: str | None = None  # the row file under docs/results/ whose rows of K it replaces
    kind: str = "run"        # run: the command writes its own output | jsonl: its stdout are the rows | sweep
    alone: bool = False      # reads what other steps write (or writes what they read): never beside another


def for_k(command: str, k: int) -> str:
    if ALL_K not in command:
        raise ValueError(f"command has no '{ALL_K}' to narrow: {command}")
    return command.replace(ALL_K, f"--k {k}")


def plan(k: int) -> list[Step]:
    calib_rows, calibrate = rd.CMD_CALIB.rsplit("\n", 1)
    return [
        Step("validation temperature sweep", for_k(calib_rows, k), "temperature_val.jsonl", "jsonl", alone=True),
        Step("card temperatures", calibrate, alone=True),
        Step("codec and ablation, 10 000 test images", for_k(rd.CMD_FULL, k), "deepjscc_full.jsonl", "jsonl"),
        Step("decoders, 1000 test images", for_k(rd.CMD_EVAL, k), "eval_models.jsonl", "jsonl"),
        Step("decoders, 10 000 test images", for_k(rd.CMD_DECODERS_10K, k), "decoders_test.jsonl", "jsonl"),
        Step("the cliff sweep", for_k(rd.CMD_CLIFF, k), "cliff.csv", "sweep"),
        Step("the cliff sweep, 10 000 test images", for_k(rd.CMD_CLIFF_10K, k), "cliff_test.csv", "sweep"),
        Step("decoders against the erased fraction", for_k(CMD_FILL, k), "fill.jsonl", "jsonl"),
        Step("the erasure targets, 10 000 test images", for_k(CMD_FILL_10K, k), "fill_test.jsonl", "jsonl"),
        Step("controls (both k)", CMD_CONTROLS),
        Step("posterior (both k)", CMD_POSTERIOR),
        Step("reliability mapping (both k)", CMD_RELIABILITY),
        Step("fill figures", "diffsem report fill docs/results/fill.jsonl --out docs/figures --k 128 32 --snr 10",
             alone=True),
        Step("generated pages", "diffsem report results", alone=True),
    ]


def keep_rows(root: Path, k: int, label: str, name: str) -> int:
    """The rows of k's models that the plan's row files hold, labelled `models: label`, into a new
    docs/results/NAME (a generation being replaced stays comparable: the pages read labelled rows).
    Returns the count; refuses to overwrite."""
    out = root / "docs" / "results" / name
    if out.exists():
        raise FileExistsError(f"{out} exists: keep the rows under another name, or leave out --keep")
    kept = []
    for step in plan(k):
        path = root / "docs" / "results" / (step.rows or "")
        if step.rows and step.rows.endswith(".jsonl") and path.exists():
            kept += [{**r, "models": label} for r in rt.load(path) if _current(r, k)]
    out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return len(kept)


def _current(row: dict, k: int) -> bool:
    """A row of the shipped models for k: rows of other model generations carry a `models` label."""
    return int(row.get("k", -1)) == k and not row.get("models")


def replace_jsonl_rows(path: Path, new_rows: list[dict], k: int) -> tuple[int, int]:
    """The shipped models' rows for k in `path` replaced by `new_rows`, at the place of the first
    one (the pages read rows in file order); labelled rows of other generations kept. Returns
    (removed, added)."""
    if not all(_current(r, k) for r in new_rows):
        raise ValueError(f"new rows for {path.name} include a k other than {k} or a labelled generation")
    old = rt.load(path) if path.exists() else []
    at = next((i for i, r in enumerate(old) if _current(r, k)), len(old))  # old[:at] holds none of them
    kept_after = [r for r in old[at:] if not _current(r, k)]
    path.write_text("".join(json.dumps(r) + "\n" for r in old[:at] + new_rows + kept_after))
    return len(old) - at - len(kept_after), len(new_rows)


def drop_sweep_rows(path: Path, k: int) -> int:
    """Remove K's rows of the learned schemes from a sweep CSV, so that re-running the sweep
    (which skips the points already in its CSV) recomputes exactly those. Returns the count."""
    rows = read_rows(path)
    if not rows:
        return 0
    fields = list(rows[0])  # a DictReader row's keys: the file's header, in order
    keep = [r for r in rows if not (int(float(r["k"])) == k and r["scheme"] in LEARNED_SCHEMES)]
    rewrite_rows(path, fields, keep)
    return len(rows) - len(keep)


def _environment() -> dict:
    env = dict(os.environ)  # `diffsem` of this interpreter's environment first on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_step(step: Step, k: int, root: Path, log=None) -> None:
    """Run one step; `log` (an open file): where the command's own output goes instead of the
    terminal (a step beside others)."""
    first, *more = step.command.splitlines()
    print(f"[refresh k={k}] {step.what}: {first}{' ...' if more else ''}", flush=True)
    rows_path = root / "docs" / "results" / step.rows if step.rows else None
    if step.kind == "sweep":
        print(f"[refresh k={k}]   {drop_sweep_rows(rows_path, k)} rows of {step.rows} to recompute", flush=True)
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run(["bash", "-ec", step.command], cwd=root, env=_environment(), check=True,
                       stdout=out if step.kind == "jsonl" else log, stderr=log)
        if step.kind == "jsonl":
            out.seek(0)
            new = [json.loads(line) for line in out if line.strip().startswith("{")]
            if not new:
                raise RuntimeError(f"{step.what}: the command printed no rows; {step.rows} left as it was")
            removed, added = replace_jsonl_rows(rows_path, new, k)
            print(f"[refresh k={k}]   {step.rows}: {removed} rows replaced by {added}", flush=True)


def batches(steps: list[tuple[int, Step]]) -> list[list[tuple[int, Step]]]:
    """The numbered steps in the order they may run: each `alone` step by itself, the runs of
    steps between them together."""
    out: list[list[tuple[int, Step]]] = []
    for i, step in steps:
        if step.alone or not out or out[-1][-1][1].alone:
            out.append([(i, step)])
        else:
            out[-1].append((i, step))
    return out


def run_batch(batch: list[tuple[int, Step]], k: int, root: Path, jobs: int, log_dir: Path) -> list[int]:
    """Run a batch, `jobs` steps at a time, each step's output in log_dir/step_N.log when more
    than one runs; every step runs even if another fails. Returns the numbers of those that failed."""
    def one(item):
        i, step = item
        print(f"[refresh k={k}] step {i} started", flush=True)
        try:
            if jobs > 1 and len(batch) > 1:
                with open(log_dir / f"step_{i}.log", "w") as log:
                    run_step(step, k, root, log)
            else:
                run_step(step, k, root)
        except (subprocess.CalledProcessError, RuntimeError, ValueError) as err:
            print(f"[refresh k={k}] step {i} ({step.what}) FAILED: {err}", flush=True)
            return i
        print(f"[refresh k={k}] step {i} done", flush=True)
        return None

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(batch)))) as pool:
        return [i for i in pool.map(one, batch) if i is not None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="diffsem report refresh", description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, required=True, choices=(32, 128), help="the k whose models changed")
    ap.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    ap.add_argument("--from-step", type=int, default=1, help="resume at this step (1-based)")
    ap.add_argument("--step", type=int, nargs="+", default=None, help="run only these steps (1-based)")
    ap.add_argument("--jobs", type=int, default=1, help="steps run at once where they may (default 1)")
    ap.add_argument("--log-dir", type=Path, default=None,
                    help="with --jobs > 1, where each step's output goes (default: a new temporary folder)")
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="the repository's root (default: here)")
    ap.add_argument("--keep", nargs=2, metavar=("LABEL", "FILE"), default=None,
                    help="before step 1, copy the rows of the models being replaced, labelled LABEL, into "
                         "docs/results/FILE (a new file)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    if not (root / "docs" / "results").is_dir():
        ap.error(f"{root} has no docs/results/: run from the repository's root or give --root")
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    steps = [(i, step) for i, step in enumerate(plan(args.k), 1)
             if i >= args.from_step and (not args.step or i in args.step)]
    if args.dry_run:
        for batch in batches(steps):
            together = " (these may run together with --jobs)" if len(batch) > 1 else ""
            for i, step in batch:
                target = f"  -> docs/results/{step.rows} (k = {args.k} rows)" if step.rows else ""
                print(f"# {i}. {step.what}{target}{together if i == batch[0][0] else ''}\n{step.command}\n")
        return 0
    if args.keep:
        if args.from_step != 1 or args.step:
            ap.error("--keep copies the rows before step 1 rewrites them: run it from step 1")
        n = keep_rows(root, args.k, *args.keep)
        print(f"[refresh k={args.k}] kept {n} rows labelled {args.keep[0]!r} in docs/results/{args.keep[1]}", flush=True)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="diffsem_refresh_"))
    if args.jobs > 1:
        log_dir.mkdir(parents=True, exist_ok=True)
        print(f"[refresh k={args.k}] the steps' output: {log_dir}/step_N.log", flush=True)
    for batch in batches(steps):
        failed = run_batch(batch, args.k, root, args.jobs, log_dir)
        if failed:
            print(f"[refresh k={args.k}] stopped: step(s) {' '.join(map(str, failed))} failed; "
                  f"rerun them with --step, then --from-step {batch[-1][0] + 1}", file=sys.stderr)
            return 1
    print("re-read the hand-written pages that quote these numbers: " + ", ".join(HAND_WRITTEN))
    print("figures drawn by hand-run commands: " + "; ".join(FIGURES_BY_HAND))
    return 0


if __name__ == "__main__":
    sys.exit(main())
