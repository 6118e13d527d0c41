"""`diffsem measure controls` on a few images: each control loses the student's PSNR cost (to the
bisection's 0.01 dB), the student runs at its card's temperature, the page names its command."""
import json

from diffsem.runtime.naming import card_temperature
from diffsem_apps import measure_controls


def test_controls_match_the_students_psnr_cost(tmp_path, capsys):
    page = tmp_path / "controls.md"
    argv = ["--k", "32", "--snr", "10", "--steps", "1", "--n", "24", "--markdown", str(page)]
    assert measure_controls.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by = {r["scheme"]: r for r in rows}
    assert set(by) == {"deepjscc", "student", "deepjscc+noise", "deepjscc+unsharp"}
    cost = by["deepjscc"]["psnr"] - by["student"]["psnr"]
    assert abs(by["student"]["psnr_cost_db"] - cost) < 1e-3
    assert by["student"]["temperature"] == card_temperature("student", 32, 1)
    for name, param in measure_controls.CONTROLS:
        c = by[name]
        assert c["reached"] and c[param] > 0
        assert abs((by["deepjscc"]["psnr"] - c["psnr"]) - cost) <= 0.05
        assert c["n"] == 24 and c["steps"] == 1
    for r in rows:  # the robust classifier scores every image set, and it reads the images
        assert 0.5 < r["accuracy_robust"] <= 1.0
    text = page.read_text()
    assert "diffsem measure controls --k 32 --snr 10" in text.splitlines()[2]
    assert "| 10 |" in text and "beats both controls on FID at" in text
    assert "robust accuracy %" in text and "on robust accuracy at" in text
