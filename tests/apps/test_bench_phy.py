"""`diffsem bench phy` runs end to end on a few frames and prints its one JSON line (the figures
themselves are benchmarks, not tests)."""
import json

from diffsem_apps import cli


def test_bench_phy_prints_one_json_line(capsys):
    assert cli.main(["bench", "phy", "--frames", "20"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    out = json.loads(line)
    for key in ("ours_msps", "stock_msps", "ratio", "ours_rx_only_msps", "stock_rx_only_msps", "rx_only_ratio"):
        assert out[key] > 0, key
    assert out["ours"]["frames_received"] == 20 and out["ours"]["rx_only"]["frames_received"] == 20
    assert out["ours"]["mse_db"] < -15  # the frames checked after the clock are the ones sent (20 dB AWGN)
    assert out["stock"]["frames_received"] >= 19  # the stock padder holds the last burst's tail
