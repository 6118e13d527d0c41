"""`diffsem bench rx` plays a stream at a radio's pace into the receiver and prints one JSON line
per rate (figures, not a test: only that it runs and reports its fields)."""
import json

from diffsem_apps import cli


def test_bench_rx_prints_one_line_per_rate(capsys):
    assert cli.main(["bench", "rx", "--samp-rate", "1e5,2e5", "--seconds", "1", "--images-per-s", "20"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines() if line.startswith("{")]
    assert [line["samp_rate"] for line in lines] == [1e5, 2e5]
    for out in lines:
        assert out["frames_on_air"] == 20
        assert out["samples_played"] + out["samples_dropped"] >= out["samp_rate"]
        for key in ("frames_received", "overflows", "holds"):
            assert key in out
