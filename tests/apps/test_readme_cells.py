"""Two cells of the README's headline table reproduce: the same `diffsem sweep` point, re-run at
the row's n and seed, gives the row that docs/results/cliff.csv holds (the table is generated
from it by scripts/make_results_docs.py)."""
import csv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIFF = ROOT / "docs" / "results" / "cliff.csv"


def _row(rows, **key):
    found = [r for r in rows if all(str(r[k]) == str(v) for k, v in key.items())]
    assert found, f"no row {key} in {CLIFF}"
    return found[-1]


@pytest.mark.parametrize("scheme,extra", [("deepjscc", []), ("student", ["--steps", "1"])])
def test_headline_cell_reproduces(scheme, extra, tmp_path, run_command):
    shipped = list(csv.DictReader(CLIFF.open()))
    key = dict(path="library", scheme=scheme, k="128", channel="awgn", snr_db="10.0")
    if scheme == "student":
        key["steps"] = "1"
    want = _row(shipped, **key)
    out = tmp_path / "cell.csv"
    status = run_command("diffsem_apps.sweep", ["--scheme", scheme, *extra, "--k", "128", "--channel", "awgn",
                                                "--snr", "10", "--n", want["n"], "--seed", want["seed"],
                                                "--csv", out, "--quiet", "--jobs", "1"])
    assert status == 0
    got = _row(list(csv.DictReader(out.open())), **key)
    assert abs(float(got["psnr"]) - float(want["psnr"])) < 0.05
    assert abs(float(got["accuracy"]) - float(want["accuracy"])) <= 0.01
    assert abs(float(got["fid"]) - float(want["fid"])) < 0.02 * float(want["fid"])
