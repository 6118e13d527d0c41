"""`diffsem report refresh`: the plan narrows every command to one k, the commands parse with
the real command lines, and new rows replace exactly the shipped models' rows of that k."""
import argparse
import csv
import importlib
import json
import shlex

import pytest

from diffsem_apps import refresh
from diffsem_apps.cli import COMMANDS


def _command_lines(command: str) -> list[list[str]]:
    """The shell lines of a step as argument lists, `E="..."` variables expanded."""
    variables, lines = {}, []
    for line in command.replace("\\\n", " ").splitlines():
        if "=" in line.split(" ", 1)[0] and line[0].isupper():
            name, value = line.split("=", 1)
            variables[name] = shlex.split(value)[0]
            continue
        for name, value in variables.items():
            line = line.replace(f"${name}", value)
        lines.append(shlex.split(line))
    return lines


@pytest.mark.parametrize("k", [32, 128])
def test_every_step_is_narrowed_to_one_k_and_parses(k):
    parsed = 0
    for step in refresh.plan(k):
        for argv in _command_lines(step.command):
            assert argv[0] == "diffsem", argv
            if "--k" in argv and argv[1] in ("eval", "sweep"):  # the pages measured over both k keep both
                i = argv.index("--k")
                assert argv[i + 1:i + 3] != ["128", "32"] and argv[i + 1] == str(k), (step.what, argv)
            if argv[1] in ("eval", "sweep", "calibrate"):
                p = argparse.ArgumentParser()
                importlib.import_module(COMMANDS[argv[1]][0]).add_arguments(p)
                args = p.parse_args(argv[2:])  # SystemExit if the registry drifted from the command line
                if hasattr(args, "k") and argv[1] != "calibrate":
                    assert list(args.k) == [k]
                parsed += 1
    assert parsed >= 10


def _row(k, scheme="deepjscc", **kw):
    return {"scheme": scheme, "k": k, "snr_db": 10.0, **kw}


def test_new_rows_replace_the_shipped_rows_of_one_k_in_place(tmp_path):
    path = tmp_path / "rows.jsonl"
    old = [_row(128, psnr=1), _row(32, psnr=2), _row(32, psnr=3, models="0.1"), _row(128, psnr=4), _row(32, psnr=5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    removed, added = refresh.replace_jsonl_rows(path, [_row(32, psnr=20), _row(32, psnr=50)], 32)
    assert (removed, added) == (2, 2)
    got = [json.loads(line)["psnr"] for line in path.read_text().splitlines()]
    assert got == [1, 20, 50, 3, 4]  # k = 128 and the labelled generation untouched
    with pytest.raises(ValueError):
        refresh.replace_jsonl_rows(path, [_row(128, psnr=9)], 32)
    with pytest.raises(ValueError):
        refresh.replace_jsonl_rows(path, [_row(32, psnr=9, models="0.1")], 32)


def test_a_sweep_keeps_the_baselines_and_the_other_k(tmp_path):
    path = tmp_path / "sweep.csv"
    rows = [_row(32, "digital"), _row(32, "deepjscc"), _row(32, "student"), _row(128, "student"), _row(32, "linear")]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["scheme", "k", "snr_db"])
        w.writeheader()
        w.writerows(rows)
    assert refresh.drop_sweep_rows(path, 32) == 2
    with path.open(newline="") as f:
        left = [(r["scheme"], r["k"]) for r in csv.DictReader(f)]
    assert left == [("digital", "32"), ("student", "128"), ("linear", "32")]


def test_a_step_that_prints_no_rows_leaves_the_file_alone(tmp_path):
    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    rows = results / "rows.jsonl"
    rows.write_text(json.dumps(_row(32, psnr=1)) + "\n")
    with pytest.raises(RuntimeError, match="no rows"):
        refresh.run_step(refresh.Step("nothing", "echo not a row", "rows.jsonl", "jsonl"), 32, tmp_path)
    assert json.loads(rows.read_text())["psnr"] == 1
    new = json.dumps(_row(32, psnr=7))
    refresh.run_step(refresh.Step("one row", f"echo '{new}'", "rows.jsonl", "jsonl"), 32, tmp_path)
    assert json.loads(rows.read_text())["psnr"] == 7


def test_only_the_steps_between_the_lone_ones_run_together():
    groups = [[i for i, _ in batch] for batch in refresh.batches(list(enumerate(refresh.plan(128), 1)))]
    assert groups == [[1], [2], list(range(3, 13)), [13], [14]]
    # resuming inside the parallel steps keeps the order of what is left
    steps = [(i, s) for i, s in enumerate(refresh.plan(32), 1) if i >= 11]
    assert [[i for i, _ in b] for b in refresh.batches(steps)] == [[11, 12], [13], [14]]


def _wait_for(name):  # a step that writes its own file, then needs the other's within 20 s
    other = "b" if name == "a" else "a"
    return (f"echo {name} > {name}; for i in $(seq 200); do [ -e {other} ] && break; sleep 0.1; done; "
            f"[ -e {other} ]; echo {name} saw {other}")


def test_jobs_run_steps_side_by_side_and_a_failure_stops_after_its_batch(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    both = [(1, refresh.Step("a", _wait_for("a"))), (2, refresh.Step("b", _wait_for("b")))]
    assert refresh.run_batch(both, 32, tmp_path, 2, logs) == []  # one at a time, a would wait for b in vain
    assert (logs / "step_1.log").read_text().strip() == "a saw b"
    failing = [(3, refresh.Step("fails", "echo trying; exit 3")), (4, refresh.Step("runs anyway", "echo ok > ran"))]
    assert refresh.run_batch(failing, 32, tmp_path, 2, logs) == [3]
    assert (tmp_path / "ran").read_text().strip() == "ok" and "trying" in (logs / "step_3.log").read_text()


def test_keep_copies_the_replaced_rows_labelled_before_anything_runs(tmp_path):
    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    rows = [{"scheme": "deepjscc", "k": 128, "psnr": 27.0}, {"scheme": "deepjscc", "k": 32, "psnr": 23.0},
            {"scheme": "deepjscc", "k": 128, "psnr": 24.0, "models": "0.1"}]
    (results / "deepjscc_full.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (results / "fill.jsonl").write_text(json.dumps({"scheme": "student", "k": 128, "psnr": 26.0}) + "\n")
    assert refresh.keep_rows(tmp_path, 128, "joint erasure training", "old.jsonl") == 2
    kept = [json.loads(line) for line in (results / "old.jsonl").read_text().splitlines()]
    assert [(r["scheme"], r["psnr"], r["models"]) for r in kept] == [("deepjscc", 27.0, "joint erasure training"),
                                                                    ("student", 26.0, "joint erasure training")]
    with pytest.raises(FileExistsError):
        refresh.keep_rows(tmp_path, 128, "again", "old.jsonl")
    with pytest.raises(SystemExit):   # rows already rewritten by step 1: nothing left to keep
        refresh.main(["--k", "128", "--root", str(tmp_path), "--from-step", "3", "--keep", "x", "y.jsonl"])
