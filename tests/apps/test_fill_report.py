"""`diffsem report fill`: a figure and a markdown table per k from eval rows at several impaired
fractions, of two model generations."""
import json

import pytest

from diffsem_apps import fill_report


def _row(scheme, fraction, psnr, accuracy, models=None, steps=None, k=8):
    row = {"scheme": scheme, "steps": steps, "k": k, "channel": "awgn", "snr_db": 10.0, "psnr": psnr,
           "accuracy": accuracy, "fid": 50.0 + 100 * fraction, "n": 4, "seed": 0,
           "impairment": "erasure" if fraction else "none", "fraction": fraction}
    return dict(row, models=models) if models else row


def test_fill_report_draws_and_tabulates_each_decoder(tmp_path, capsys):
    rows = [_row("deepjscc", f, 23 - 6 * f, 0.8 - 0.4 * f) for f in (0.0, 0.25, 0.5)]
    rows += [_row("student", f, 22 - 5 * f, 0.85 - 0.3 * f, steps=2) for f in (0.0, 0.25, 0.5)]
    rows += [_row("deepjscc", f, 22 - 12 * f, 0.8 - 0.8 * f, models="0.1") for f in (0.0, 0.25)]
    rows += [_row("deepjscc", 0.0, 30.0, 0.9, k=16), dict(_row("deepjscc", 0.0, 30.0, 0.9), snr_db=20.0)]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert fill_report.main([str(src), "--out", str(tmp_path), "--k", "8", "--snr", "10"]) == 0
    png = tmp_path / "fill_k8.png"
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "| decoder | 0 % | 25 % | 50 % |" in out
    assert "| deepjscc [current] | 23.00 / 80.0 / 50.0 | 21.50 / 70.0 / 75.0 | 20.00 / 60.0 / 100.0 |" in out
    assert "| student (2 steps) [current] | +0.00 / +0.0 |" not in out  # 0 % is the reference, not a column
    assert "| student (2 steps) [current] | -1.25 / -7.5 | -2.50 / -15.0 |" in out
    assert "| deepjscc [0.1] | -3.00 / -20.0 | – |" in out


def test_generations_put_each_generation_beside_the_baseline(tmp_path, capsys):
    def clean(psnr, models=None, channel="awgn", csi=None, snr=10.0):
        return dict(_row("deepjscc", 0.0, psnr, 0.8, models=models), channel=channel, csi=csi, snr_db=snr, n=100)
    rows = [clean(20.0), clean(20.5, "without"), clean(20.6, "decoder only"),
            clean(15.0, channel="rayleigh", csi="estimated", snr=0.0), clean(15.2, "without", "rayleigh", "estimated", 0.0),
            dict(_row("deepjscc", 0.25, 18.0, 0.7), n=100), dict(_row("deepjscc", 0.25, 17.0, 0.6, models="without"), n=100),
            dict(clean(99.0, "without"), n=4)]  # another n: not read
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert fill_report.main([str(src), "--generations", "without", "--k", "8", "--n", "100"]) == 0
    out = capsys.readouterr().out
    assert "| awgn | - | 10 dB | 20.00 / 80.0 | 20.60 / 80.0 | 20.50 / 80.0 | -0.50 | +0.10 |" in out
    assert "| rayleigh | estimated | 0 dB | 15.00 / 80.0 | – | 15.20 / 80.0 | -0.20 | – |" in out
    assert "| shipped | 20.00 / 80.00 / 50.00 | 18.00 / 70.00 / 75.00 | 2.00 | 10.00 |" in out
    assert "| without | 20.50 / 80.00 / 50.00 | 17.00 / 60.00 / 75.00 | 3.50 | 20.00 |" in out
    with pytest.raises(ValueError, match="no rows of generation"):
        fill_report.generations_tables(rows, 8, "missing", n=100)


def test_generations_of_a_sampler_read_the_rows_of_its_step_count(tmp_path, capsys):
    def row(psnr, steps, models=None):
        return dict(_row("student", 0.0, psnr, 0.8, models=models, steps=steps), n=100)
    rows = [row(20.0, 1), row(21.0, 2), row(20.3, 1, "new"), row(21.05, 2, "new")]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert fill_report.main([str(src), "--generations", "shipped", "--scheme", "student", "--steps", "2",
                             "--k", "8", "--n", "100"]) == 0
    out = capsys.readouterr().out
    assert "(student (2 steps), k = 8" in out
    assert "| awgn | - | 10 dB | 21.05 / 80.0 | 21.00 / 80.0 | +0.05 |" in out
