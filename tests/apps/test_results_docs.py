"""The results pages and the README's headline table are what scripts/make_results_docs.py makes
from the rows in docs/results/ (no hand-edited number drifts from its rows)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_results_pages_match_their_rows():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_results_docs.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr + "\nrun: python scripts/make_results_docs.py"
