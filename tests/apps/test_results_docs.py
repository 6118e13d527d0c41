"""The results pages and the README's headline table are what `diffsem report results` makes
from the rows in docs/results/ (no hand-edited number drifts from its rows)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_results_pages_match_their_rows():
    out = subprocess.run([sys.executable, "-m", "diffsem_apps.cli", "report", "results", "--check"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr + "\nrun: diffsem report results"


def test_results_table_script_prints_the_decoder_tables():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_table.py"),
                          str(ROOT / "docs" / "results" / "eval_models.jsonl")], capture_output=True, text=True)
    assert out.returncode == 0 and "| " in out.stdout, out.stderr
