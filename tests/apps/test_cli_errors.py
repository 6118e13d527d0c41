"""Every command-line error is one sentence naming the argument, exit code 2, no traceback, and
no hang: each app with bad values (out of range, NaN, infinities, negative or zero counts,
malformed or taken addresses, unwritable paths, a model card with a wrong field)."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffsem_apps import cli

ROOT = Path(__file__).resolve().parents[2]
BAD = [  # (command line, the argument the sentence must name)
    ("tx --count -5", "--count"), ("tx --count 0", "--count"), ("tx --count many", "--count"),
    ("tx --snr nan", "--snr"), ("tx --snr inf", "--snr"), ("tx --samp-rate -1", "--samp-rate"),
    ("tx --freq inf", "--freq"), ("tx --address garbage", "--address"), ("tx --output /proc/x.sigmf", "--output"),
    ("tx --amplitude 5", "--amplitude"), ("tx --first -1", "--first"), ("tx --max-batch 0", "--max-batch"),
    ("tx --rate -1", "--rate"), ("tx --seed -3", "--seed"), ("tx --cfo nan", "--cfo"),
    ("tx --start-delay -inf", "--start-delay"), ("tx --timing-offset -2", "--timing-offset"),
    ("rx --count -5", "--count"), ("rx --samp-rate -1", "--samp-rate"), ("rx --freq inf", "--freq"),
    ("rx --record /proc/x.sigmf", "--record"), ("rx --image-folder /proc/x", "--image-folder"),
    ("rx --taps garbage", "--taps"), ("rx --taps tcp://127.0.0.1:99999", "--taps"),
    ("rx --address tcp://:5", "--address"), ("rx --max-queue 0", "--max-queue"),
    ("rx --idle-timeout nan", "--idle-timeout"), ("rx --frames -1", "--frames"),
    ("rx --duration -inf", "--duration"), ("rx --record-seconds -1", "--record-seconds"),
    ("channel --in garbage", "--in"), ("channel --out tcp://x", "--out"), ("channel --snr nan", "--snr"),
    ("channel --duration -1", "--duration"),
    ("monitor --address garbage", "--address"), ("monitor --count -1", "--count"),
    ("monitor --timeout nan", "--timeout"), ("monitor --save /proc/x", "--save"),
    ("demo --first 20000", "--first"), ("demo --n -5", "--n"), ("demo --n 0", "--n"), ("demo --snr nan", "--snr"),
    ("demo --show 0", "--show"), ("demo --sync-threshold 2", "--sync-threshold"), ("demo --taps garbage", "--taps"),
    ("demo --rate inf", "--rate"),
    ("demo --n 10001", "--n"), ("demo --n some", "--n"),
    ("bench link --images 0", "--images"), ("bench link --images 20000", "--images"), ("bench link --snr nan", "--snr"),
    ("bench link --decoder diffusion --steps 3", "--steps"), ("bench link --max-batch 0", "--max-batch"),
    ("bench phy --frames 0", "--frames"), ("bench phy --symbols 5000", "--symbols"),
    ("bench decoder --batch 0", "--batch"), ("bench decoder --min-time nan", "--min-time"),
    ("eval --snr nan", "--snr"), ("eval --n 0", "--n"), ("eval --n 20000", "--n"), ("eval --batch 0", "--batch"),
    ("eval --temperature -1", "--temperature"), ("eval --k 0", "--k"),
    ("sweep --n -1", "--n"), ("sweep --snr inf", "--snr"), ("sweep --jobs 0", "--jobs"),
    ("fuzz --pdus 0", "--pdus"),
]


@pytest.mark.parametrize("line,arg", BAD, ids=[b[0] for b in BAD])
def test_bad_argument_is_one_sentence_and_exit_code_2(line, arg, capsys):
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as done:
        cli.main(line.split())
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("diffsem") and "error:" in last and arg in last, last
    assert time.monotonic() - t0 < 20


def _run(args, timeout=120, **kw):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'python'}:{ROOT / 'gr-diffsem'}"}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "diffsem_apps.cli", *args], capture_output=True, text=True,
                       timeout=timeout, env=env, cwd=ROOT, **kw)
    return p, time.monotonic() - t0


def _check_one_sentence(p, *words):
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("diffsem"), last
    for word in words:
        assert word in last, last


def test_a_taken_taps_address_is_one_sentence():
    zmq = pytest.importorskip("zmq")
    sock = zmq.Context.instance().socket(zmq.PUB)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        p, seconds = _run(["rx", "--source", "sim", "--count", "1", "--decoder", "deepjscc", "--no-classifier",
                           "--taps", f"tcp://127.0.0.1:{port}"])
    finally:
        sock.close(0)
    _check_one_sentence(p, str(port))
    assert seconds < 120


def test_a_wrong_decoder_step_count_is_one_sentence():
    p, _ = _run(["bench", "link", "--decoder", "diffusion:3", "--images", "1"])
    _check_one_sentence(p, "steps")


def test_a_card_whose_temperature_is_not_a_number_names_the_file(tmp_path):
    for name in ("encoder_k128", "student_k128_s2"):
        for ext in (".json", ".onnx"):
            shutil.copy(ROOT / "models" / f"{name}{ext}", tmp_path / f"{name}{ext}")
    card = json.loads((tmp_path / "student_k128_s2.json").read_text())
    card["default_temperature"] = "hot"
    (tmp_path / "student_k128_s2.json").write_text(json.dumps(card))
    p, _ = _run(["bench", "link", "--images", "1", "--models-dir", str(tmp_path)])
    _check_one_sentence(p, "student_k128_s2.json", "default_temperature")


@pytest.mark.parametrize("line,arg", [("eval --impairment burst --n 4", "--impairment"),
                                      ("eval --resume --n 4", "--resume"),
                                      ("sweep --impairment narrowband --n 4", "--impairment"),
                                      ("sweep --cfo 0.1 --n 4", "--cfo")])
def test_a_combination_that_cannot_run_is_a_usage_error(line, arg, capsys):
    """Found after parsing, before any work: exit 2 and one sentence naming the argument (an
    impairment kind with no impaired fraction would have run every point unimpaired)."""
    assert cli.main(line.split()) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("diffsem") and "error:" in last and arg in last, last


def test_a_channel_subscribed_to_itself_is_refused(capsys):
    assert cli.main(["channel", "--in", "tcp://127.0.0.1:5999", "--out", "tcp://127.0.0.1:5999"]) == 2
    assert "subscribe to itself" in capsys.readouterr().err


@pytest.mark.parametrize("module,make", [("gnuradio.uhd", "uhd_endpoint"), ("gnuradio.soapy", "soapy_endpoint")])
def test_a_missing_sdr_module_says_what_to_install(monkeypatch, module, make):
    import sys

    import gnuradio

    from diffsem_apps import endpoints
    monkeypatch.setitem(sys.modules, module, None)   # import fails as if not installed...
    monkeypatch.delattr(gnuradio, module.split(".")[1], raising=False)   # ...even if imported before
    with pytest.raises(endpoints.EndpointError, match="not installed.*apt install"):
        getattr(endpoints, make)("rx", 1e6, 2.45e9, 30.0)
