"""`diffsem demo` and `diffsem bench link` over the tiny exported models: the mosaic, metrics and
plot the demo writes, a missing model named in one sentence, the benchmark's one JSON line."""
from __future__ import annotations

from support import TINY_K

K = TINY_K


def test_demo_writes_mosaic_metrics_and_plot(tiny_models, tmp_path):
    import json

    from diffsem_apps.cli import main

    out = tmp_path / "demo"
    # "all" from --first 9994: the last 6 test images
    rc = main(["demo", "--out", str(out), "--k", str(K), "--models-dir", str(tiny_models), "--first", "9994",
               "--n", "all", "--show", "4",
               "--snr", "20", "--channel", "awgn", "--steps", "1", "--provider", "cpu", "--taps", "off"])
    assert rc == 0
    from PIL import Image

    with Image.open(out / "mosaic.png") as im:  # original + DeepJSCC + diffusion rows, 4 columns
        assert im.height > 3 * 28 * 3 and im.width > 4 * 28 * 3
    assert (out / "psnr_accuracy_vs_snr.png").stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 6 and {p["decoder"] for p in metrics["points"]} == {"diffusion s1", "deepjscc"}
    for p in metrics["points"]:
        assert p["accounting"]["sent"] == 6 == p["accounting"]["decoded"] + p["accounting"]["crc_dropped"]
        assert abs(p["delta_psnr_db"]) < 0.5  # the PHY adds no hidden loss (tiny linear models, 20 dB)
        assert p["in_flowgraph"]["n"] == 6 and p["snr_est_db_mean"] is not None
    assert metrics["command"].startswith("diffsem demo --out") and "--n 6" in metrics["command"]


def test_bench_link_prints_one_json_line(tiny_models, capsys):
    import argparse
    import json

    from diffsem_apps import bench_link

    parser = argparse.ArgumentParser()
    bench_link.add_arguments(parser)
    args = parser.parse_args(["--images", "4", "--k", str(K), "--models-dir", str(tiny_models), "--provider", "cpu",
                              "--snr", "20", "--decoder", "diffusion:1"])
    assert bench_link.run(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["drained"] and result["drops"] == 0 and result["throughput_pass"]["decoded"] == 4
    assert result["images_per_s"] > 0 and result["ofdm_msps"] > 0 and result["samples_per_image"] > 0
    assert result["latency_pass"]["latency_ms_p99"] >= result["latency_pass"]["latency_ms_p50"] > 0


def test_bench_link_counts_all_as_the_test_split():
    import argparse

    from diffsem import data
    from diffsem_apps import bench_link

    parser = argparse.ArgumentParser()
    bench_link.add_arguments(parser)
    assert parser.parse_args(["--images", "ALL"]).images == 0
    assert data.count_of("test", 0, 0) == 10000 and data.count_of("test", 0, 16384) == 10000
    assert data.count_of("test", 9994, 0) == 6 and data.count_of("test", 0, 64) == 64


def test_demo_without_models_says_which_file_is_missing(tmp_path, capsys):
    from diffsem_apps.cli import main

    rc = main(["demo", "--out", str(tmp_path / "demo"), "--models-dir", str(tmp_path / "none"), "--n", "2",
               "--snr", "10", "--channel", "awgn", "--taps", "off"])
    assert rc == 2
    assert "encoder_k128.json: model card not found" in capsys.readouterr().err


def test_demo_with_an_interferer_hits_both_paths_alike(tmp_path):
    """--impairment narrowband (the shipped k = 32 models, 20 images): channel_sim's interferer in
    the flowgraph and the same cells offline; both lose quality against the clean run, and still
    agree with each other."""
    import json

    from diffsem_apps.cli import main

    common = ["--k", "32", "--first", "9980", "--n", "20", "--show", "2",
              "--snr", "20", "--channel", "awgn", "--steps", "1", "--provider", "cpu", "--taps", "off"]
    psnr = {}
    for name, extra in (("clean", []), ("jammed", ["--impairment", "narrowband", "--fraction", "0.125", "--sir", "0"])):
        assert main(["demo", "--out", str(tmp_path / name)] + common + extra) == 0
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        point = next(p for p in metrics["points"] if p["decoder"] == "deepjscc")
        assert point["impairment"] == (None if name == "clean" else ["narrowband", 0.125, 0.0])
        assert point["accounting"]["decoded"] == 20
        assert abs(point["delta_psnr_db"]) < 0.5
        psnr[name] = (point["in_flowgraph"]["psnr"], point["offline"]["psnr"])
    assert psnr["jammed"][0] < psnr["clean"][0] - 0.5 and psnr["jammed"][1] < psnr["clean"][1] - 0.5
