"""Temperature calibration rules (diffsem.nn.calibration, `diffsem calibrate`) on synthetic eval rows
and on the shipped validation sweep."""
from __future__ import annotations

import json

import pytest

from diffsem import models_dir
from diffsem.nn import calibration
from diffsem.nn.calibration import CalibrationError, calibrate, choose
from diffsem.runtime.cards import load_card, write_card

POINTS = [("awgn", None, 0.0), ("awgn", None, 10.0), ("rayleigh", "perfect", 0.0)]


def _row(scheme, psnr, fid, acc=0.8, steps=None, temperature=None, k=8, point=POINTS[0], **extra):
    ch, csi, snr = point
    r = {"scheme": scheme, "steps": steps, "k": k, "channel": ch, "snr_db": snr, "psnr": psnr,
         "accuracy": acc, "fid": fid, "n": 100, "seed": 0, "split": "val", **extra}
    if csi:
        r["csi"] = csi
    if temperature is not None:
        r["temperature"] = temperature
    return r


def _sweep(k=8):
    """A perception-distortion family: higher T, lower PSNR and lower FID. The teacher costs 2 T^2 dB
    against DeepJSCC (T 0.8: 1.28 dB, T 0.9: 1.62 dB) and its FID is 100 (1.5 - T); the student at T
    equals the teacher at T - 0.05 (a few-step sampler is a little blunter)."""
    rows = []
    for i, pt in enumerate(POINTS):
        rows.append(_row("deepjscc", 20.0 + i, 100.0, k=k, point=pt))
        for t in (0.7, 0.8, 0.9):
            rows.append(_row("teacher", 20.0 + i - 2.0 * t * t, 100.0 * (1.5 - t), steps=32, temperature=t, k=k,
                             point=pt))
        for t in (0.75, 0.8, 0.85, 0.9):
            ts = t - 0.05
            rows.append(_row("student", 20.0 + i - 2.0 * ts * ts, 100.0 * (1.5 - ts), steps=2, temperature=t,
                             k=k, point=pt))
    return rows


def test_the_rule_takes_the_sharpest_temperature_within_the_psnr_budget():
    c = choose(_sweep(), 8, "teacher", 32, max_psnr_cost_db=1.5)
    assert c.temperature == 0.8 and c.worst["psnr_cost_db"] == pytest.approx(1.28)
    assert [ok for _, _, ok in c.candidates] == [True, True, False]
    assert choose(_sweep(), 8, "teacher", 32, max_psnr_cost_db=2.0).temperature == 0.9
    over = choose(_sweep(), 8, "teacher", 32, max_psnr_cost_db=0.5)  # none within 0.5 dB: the cheapest
    assert over.temperature == 0.7 and over.rule.endswith(calibration.OVER_BUDGET)
    assert not any(ok for _, _, ok in over.candidates)
    # the student is a little blunter at equal T, so the same budget buys it a higher T
    s = choose(_sweep(), 8, "student", 2, max_psnr_cost_db=1.5)
    assert s.temperature == 0.9 and s.worst["psnr_cost_db"] == pytest.approx(1.445)


def test_a_missing_point_or_a_test_row_is_refused():
    rows = [r for r in _sweep() if not (r["scheme"] == "student" and r["snr_db"] == 10.0)]
    with pytest.raises(CalibrationError, match="no rows cover"):
        choose(rows, 8, "student", 2)
    with pytest.raises(CalibrationError, match="no DeepJSCC rows"):
        choose(_sweep(), 16, "teacher", 32)
    rows = _sweep()
    rows[0]["split"] = "test"
    with pytest.raises(CalibrationError, match="validation split only"):
        choose(rows, 8, "teacher", 32)
    rows = _sweep()
    del rows[0]["split"]                  # a row that does not say which split it was measured on
    with pytest.raises(CalibrationError, match="without a 'split' key"):
        choose(rows, 8, "teacher", 32)


def test_cli_writes_the_choice_and_its_record_into_the_cards(tmp_path, capsys, run_command):
    for name, role, steps in (("teacher_k8", "teacher", 32), ("student_k8_s2", "student", 2)):
        (tmp_path / f"{name}.onnx").write_bytes(b"x")
        write_card(tmp_path / f"{name}.json", {"name": name, "role": role, "k": 8, "steps": steps,
                                               "file": f"{name}.onnx", "sha256": "0" * 64, "bytes": 1})
    rows_path = tmp_path / "val.jsonl"
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in _sweep()))
    assert run_command("diffsem.nn.calibration", [str(rows_path), "--k", "8", "--steps", "2", "--write-cards",
                     "--max-psnr-cost", "1.5", "--models", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "teacher_k8: T = 0.8" in out and "student_k8_s2: T = 0.9" in out
    teacher, student = load_card(tmp_path / "teacher_k8.json"), load_card(tmp_path / "student_k8_s2.json")
    assert teacher["default_temperature"] == 0.8 and student["default_temperature"] == 0.9
    rec = student["temperature_calibration"]
    assert rec["split"] == "val" and rec["n"] == 100 and rec["grid"] == [0.75, 0.8, 0.85, 0.9]
    assert "deepjscc_k8" in rec["target"] and len(rec["points"]) == len(POINTS)


SHIPPED_SWEEP = models_dir().parent / "docs" / "results" / "temperature_val.jsonl"


@pytest.mark.skipif(not SHIPPED_SWEEP.exists(), reason="validation sweep not present")
def test_shipped_cards_carry_what_the_rules_choose_on_the_shipped_sweep():
    rows = [json.loads(line) for line in SHIPPED_SWEEP.read_text().splitlines() if line.strip()]
    choices = calibrate(rows)
    assert len(choices) == 8   # teacher and students 1, 2, 4 at both k
    for choice in choices:
        card = load_card(models_dir() / f"{choice.name}.json")
        assert card["default_temperature"] == choice.temperature, choice.name
        assert card["temperature_calibration"]["rule"] == choice.rule
        if not choice.rule.endswith(calibration.OVER_BUDGET):
            assert choice.worst["psnr_cost_db"] <= calibration.MAX_PSNR_COST_DB
