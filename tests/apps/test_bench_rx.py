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



def test_bench_rx_with_an_interferer_reports_it_and_receives_the_frames(capsys):
    """Every burst with channel_sim's narrowband interferer 10 dB above the signal: 6 tones of
    10 / 52 of the signal's power each, during the bursts only; the frames still arrive (at a
    pace this machine holds)."""
    import numpy as np

    from diffsem_apps.bench_rx import make_recording
    clean, starts, burst = make_recording(1e5, 20, 128, 15.0, 0)
    hit, _, _ = make_recording(1e5, 20, 128, 15.0, 0, "narrowband", 0.125, -10.0)
    inside = np.zeros(clean.size, bool)
    for s0 in starts:
        inside[s0:s0 + burst] = True
    added = np.abs(hit - clean) ** 2
    assert not added[~inside].any()
    pad = 320  # ofdm_analog_tx's padding either side: no interferer there
    assert 0.9 < added[inside].mean() * burst / (burst - 2 * pad) / (6 * 10 / 52) < 1.1
    assert cli.main(["bench", "rx", "--samp-rate", "1e5", "--seconds", "1", "--images-per-s", "20",
                     "--snr", "15", "--impairment", "narrowband", "--sir", "-10"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines() if line.startswith("{")][0]
    assert (out["impairment"], out["sir_db"], out["fraction"]) == ("narrowband", -10.0, 0.125)
    assert out["frames_received"] >= out["frames_on_air"] - 1 == 19
