"""The SigMF recorder refuses bad frame metadata with a counter, and stop() always leaves a valid
meta file (also for an empty recording: a ZMQ source whose peer never sent a sample)."""
import json

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from diffsem_apps.endpoints import sigmf_recorder
from gnuradio.diffsem.harness import dict_to_pmt


def _frame(meta):
    return pmt.cons(dict_to_pmt(meta) if isinstance(meta, dict) else meta, pmt.init_c32vector(1, [0j]))


def test_bad_frame_metadata_is_counted_and_the_good_frame_annotated(tmp_path):
    tb = gr.top_block()
    rec = sigmf_recorder(str(tmp_path / "r"), 1e6, frame_samples=lambda n: 80 * n)
    src = blocks.vector_source_c(np.zeros(20000, np.complex64).tolist())
    tb.connect(src, rec)
    bad = [{"sample_offset": -5, "n_symbols": 128}, {"sample_offset": 1.5, "n_symbols": 128},
           {"sample_offset": 10, "n_symbols": 2.5}, {"sample_offset": 10, "n_symbols": 99999},
           {"sample_offset": "x"}, {"n_symbols": 128}, pmt.from_long(3)]
    msgs = [_frame(m) for m in bad]
    msgs.append(_frame({"sample_offset": 100, "n_symbols": 64, "seq": 3, "snr_db": float("nan")}))
    msgs.append(pmt.cons(pmt.dict_add(pmt.make_dict(), pmt.intern("sample_offset"), pmt.from_uint64(2 ** 63 + 1)),
                         pmt.init_c32vector(1, [0j])))
    for m in msgs:
        rec.to_basic_block()._post(pmt.intern("frames"), m)
    tb.run()
    rec.stop()
    assert rec.counters.snapshot()["bad_pdu"] == len(bad) + 1
    assert rec.counters.snapshot()["frames"] == 1
    meta = json.loads((tmp_path / "r.sigmf-meta").read_text())
    assert len(meta["annotations"]) == 1 and meta["annotations"][0]["core:sample_start"] == 100


def test_an_empty_recording_still_gets_its_meta(tmp_path):
    rec = sigmf_recorder(str(tmp_path / "empty"), 1e6)
    assert rec.stop() is True
    assert rec.stop() is True  # idempotent, never raises
    meta = json.loads((tmp_path / "empty.sigmf-meta").read_text())
    assert meta["global"]["core:sample_rate"] == 1e6 and meta["annotations"] == []


@pytest.mark.parametrize("kw", [{"samp_rate": -1}, {"samp_rate": float("nan")}, {"center_freq": float("inf")},
                                {"max_samples": -3}])
def test_bad_recorder_arguments_are_one_sentence(tmp_path, kw):
    args = {"samp_rate": 1e6, **kw}
    with pytest.raises(ValueError, match="sigmf_recorder: "):
        sigmf_recorder(str(tmp_path / "x"), **args)


def test_rx_recording_a_zmq_source_with_no_peer_writes_its_report_and_meta(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody publishes there
    env = {**os.environ, "PYTHONPATH": f"{root / 'python'}:{root / 'gr-diffsem'}"}
    p = subprocess.run([sys.executable, "-m", "diffsem_apps.cli", "rx", "--source", "zmq", "--address",
                        f"tcp://127.0.0.1:{port}", "--record", str(tmp_path / "rec"), "--duration", "2",
                        "--decoder", "deepjscc", "--no-classifier"], capture_output=True, text=True, timeout=120,
                       env=env, cwd=root)
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report["stopped"] == "duration" and report["samples"] == 0
    meta = json.loads((tmp_path / "rec.sigmf-meta").read_text())
    assert meta["annotations"] == [] and meta["global"]["core:datatype"] == "cf32_le"
