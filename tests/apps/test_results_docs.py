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


def test_cliff_full_test_names_the_least_lead_and_a_loss():
    from diffsem_apps.results_docs import cliff_full_test

    def row(scheme, snr, psnr):
        return {"scheme": scheme, "steps": "", "k": "128", "channel": "awgn", "path": "library", "cfo": "0.0",
                "impairment": "none", "fraction": "0.0", "snr_db": str(snr), "psnr": str(psnr), "accuracy": "0.9",
                "n": "10000", "seed": "0"}
    ahead = [row("linear", 0, 18.0), row("deepjscc", 0, 22.0), row("linear", 20, 26.0), row("deepjscc", 20, 27.0)]
    assert "at every SNR: +1.00 dB at 20 dB SNR (the least)" in cliff_full_test(ahead)
    behind = ahead[:2] + [row("linear", 20, 27.5), row("deepjscc", 20, 27.0)]
    assert "not at every SNR: -0.50 dB at 20 dB SNR (the least)" in cliff_full_test(behind)
