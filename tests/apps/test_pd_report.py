"""`diffsem report pd`: one figure per k from eval rows of two model generations."""
import json

from diffsem_apps import pd_report


def _row(models, scheme, psnr, fid, steps=None, temperature=None, k=8, snr=5.0):
    return {"models": models, "scheme": scheme, "steps": steps, "temperature": temperature, "k": k,
            "channel": "awgn", "snr_db": snr, "psnr": psnr, "fid": fid}


def test_pd_report_draws_each_generation(tmp_path, capsys):
    rows = [_row("0.1", "deepjscc", 22.0, 40.0), _row("0.1", "student", 21.0, 15.0, 1, 0.9),
            _row("0.2", "deepjscc", 24.0, 10.0)] + [
        _row("0.2", "student", 24.0 - t, 10.0 - 5 * t, 1, t) for t in (0.0, 0.5, 1.0)]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert pd_report.main([str(src), "--out", str(tmp_path), "--k", "8", "--snr", "5"]) == 0
    png = tmp_path / "pd_k8.png"
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
