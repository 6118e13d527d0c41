"""SigMF record and replay: the RX records its input (one annotation per detected frame), the
replay decodes the same frames, and the shipped test vector decodes to its expected frames and
quality."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import support

from diffsem_apps import cli
from diffsem_apps.endpoints import EndpointError, sigmf_replay

DATA = str(support.DATA / "sigmf")
VECTOR = os.path.join(DATA, "awgn15_k32_8frames")
COUNT, K, SNR_DB = 8, 32, 15.0


def rx_report(argv, capsys) -> dict:
    assert cli.main(["rx", *argv, "--k", str(K), "--seed", "0", "--no-classifier", "--threads", "1"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def check_accounting(rep, frames):
    assert rep["sent"] == COUNT and rep["decoded"] == frames
    assert rep["sent"] == (rep["decoded"] + rep["crc_dropped"] + rep["queue_dropped"] + rep["bad_input"]
                           + rep["failed"] + rep["lost"])


def test_record_then_replay_decodes_the_same_frames(tmp_path, capsys):
    path = str(tmp_path / "capture")
    recorded = rx_report(["--source", "sim", "--snr", str(SNR_DB), "--count", str(COUNT), "--record", path,
                          "--samp-rate", "2e6", "--freq", "2.412e9", "--gain", "20"], capsys)
    check_accounting(recorded, COUNT)
    assert recorded["annotations"] == COUNT

    from sigmf import sigmffile
    rec = sigmffile.fromfile(path + ".sigmf-meta")  # validates the meta and the data's sha512
    assert rec.get_global_field("core:sample_rate") == 2e6
    assert rec.get_global_field("core:datatype") == "cf32_le"
    assert rec.get_global_field("diffsem:gains") == {"gain_db": 20.0}
    assert rec.get_captures()[0]["core:frequency"] == 2.412e9
    samples = rec.read_samples()
    assert samples.size == recorded["samples"] and np.all(np.isfinite(samples))
    annotations = rec.get_annotations()
    assert [a["diffsem:seq"] for a in annotations] == list(range(COUNT))
    # the TX puts burst i (1200 samples at k=32, 320 of them leading zeros) at 1200 i + 320
    starts = np.array([a["core:sample_start"] for a in annotations])
    assert np.all(np.abs(starts - (1200 * np.arange(COUNT) + 320)) <= 16), starts
    assert all(abs(a["diffsem:snr_db"] - SNR_DB) < 2.0 for a in annotations)
    # annotated spans hold the bursts: their power is the unit-power OFDM, the gaps only noise
    burst = np.concatenate([samples[a["core:sample_start"] + 16:a["core:sample_start"] + a["core:sample_count"] - 16]
                            for a in annotations])
    assert 0.8 < np.mean(np.abs(burst) ** 2) < 1.3

    replayed = rx_report(["--source", "file", "--input", path, "--count", str(COUNT)], capsys)
    check_accounting(replayed, COUNT)
    assert replayed["stopped"] == "all frames accounted for"
    assert abs(replayed["avg_psnr_db"] - recorded["avg_psnr_db"]) < 0.1  # same samples and seeds; batching moves ~0.005 dB


def test_shipped_vector_decodes_to_its_expected_quality(capsys):
    expected = json.load(open(VECTOR + ".json"))
    assert os.path.getsize(VECTOR + ".sigmf-data") < 2 << 20
    rep = rx_report(["--source", "file", "--input", VECTOR, "--count", str(COUNT), "--throttle"], capsys)
    check_accounting(rep, expected["expected_frames"])
    assert abs(rep["avg_psnr_db"] - expected["expected_avg_psnr_db"]) <= expected["psnr_tolerance_db"], rep
    assert rep["rx"]["header_crc_fail"] == 0


def test_replay_refuses_missing_or_invalid_recordings(tmp_path, capsys):
    with pytest.raises(EndpointError, match="no SigMF recording"):
        sigmf_replay(str(tmp_path / "absent"))
    (tmp_path / "bad.sigmf-meta").write_text('{"global": {"core:datatype": 7}}')
    with pytest.raises(EndpointError, match="not valid"):
        sigmf_replay(str(tmp_path / "bad"))
    assert cli.main(["rx", "--source", "file", "--input", str(tmp_path / "absent"), "--k", str(K)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("diffsem-rx:")]
    assert len(lines) == 1 and "no SigMF recording" in lines[0]


def copy_as(tmp_path, name, datatype, convert, poison=0):
    """The test vector re-encoded as `datatype` (as an 8- or 16-bit SDR capture would hold it)."""
    meta = json.load(open(VECTOR + ".sigmf-meta"))
    samples = np.fromfile(VECTOR + ".sigmf-data", np.complex64)
    if poison:
        samples[1200 * 3 + 700:1200 * 3 + 700 + poison] = np.nan  # in the gap after frame 3
    iq = np.stack((samples.real, samples.imag), axis=1).ravel()
    convert(iq).tofile(str(tmp_path / f"{name}.sigmf-data"))
    meta["global"]["core:datatype"] = datatype
    meta["global"].pop("core:sha512", None)
    (tmp_path / f"{name}.sigmf-meta").write_text(json.dumps(meta))
    return str(tmp_path / name)


@pytest.mark.parametrize("datatype,convert", [
    ("ci16_le", lambda x: np.clip(np.round(x * 8192), -32768, 32767).astype("<i2")),
    ("ci8", lambda x: np.clip(np.round(x * 48), -128, 127).astype(np.int8))])
def test_integer_recordings_replay(tmp_path, capsys, datatype, convert):
    path = copy_as(tmp_path, datatype, datatype, convert)
    expected = json.load(open(VECTOR + ".json"))
    rep = rx_report(["--source", "file", "--input", path, "--count", str(COUNT)], capsys)
    check_accounting(rep, COUNT)  # replay scale is arbitrary: the RX estimates the gain per frame
    assert abs(rep["avg_psnr_db"] - expected["expected_avg_psnr_db"]) < 1.0, rep


def test_nonfinite_samples_are_zeroed_and_counted(tmp_path, capsys):
    path = copy_as(tmp_path, "poisoned", "cf32_le", lambda x: x.astype("<f4"), poison=50)
    rep = rx_report(["--source", "file", "--input", path, "--count", str(COUNT)], capsys)
    assert rep["nonfinite_samples"] == 50
    check_accounting(rep, COUNT)


def test_record_limit_keeps_whole_frames_only(tmp_path, capsys):
    path = str(tmp_path / "short")
    rep = rx_report(["--source", "sim", "--count", "4", "--record", path, "--record-seconds", "0.002"], capsys)
    assert rep["decoded"] == 4  # the limit is on the recording, not on the reception
    from sigmf import sigmffile
    rec = sigmffile.fromfile(path + ".sigmf-meta")
    assert rec.read_samples().size == 2000  # 2 ms at 1 Msps
    annotations = rec.get_annotations()
    assert rep["annotations"] == len(annotations) == 1  # frame 1 (1514..2074) does not fit whole
    assert all(a["core:sample_start"] + a["core:sample_count"] <= 2000 for a in annotations)


def test_a_tx_recording_replays_with_the_tx_settings_and_its_clean_frames_decode(tmp_path, capsys):
    """`tx --sink file` then `rx --source file` and nothing else: the RX takes the images, k and
    sample rate from the recording, and frames with next to no noise (an SNR estimate of ~150 dB)
    are decoded at the decoders' range edge, not refused."""
    path = str(tmp_path / "tx")
    assert cli.main(["tx", "--sink", "file", "--output", path, "--count", "3", "--first", "5", "--k", str(K),
                     "--samp-rate", "2e6", "--threads", "1"]) == 0
    capsys.readouterr()
    assert cli.main(["rx", "--source", "file", "--input", path, "--no-classifier", "--threads", "1"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (rep["k"], rep["first"], rep["count"], rep["samp_rate"]) == (K, 5, 3, 2e6)
    assert rep["sent"] == rep["decoded"] == 3 and rep["bad_input"] == 0 and rep["lost"] == 0
    assert rep["avg_psnr_db"] > 20.0


def test_the_rx_app_salvages_with_the_links_k_unless_told_not_to():
    """Every frame of a link has --k symbols, so the RX app decodes a header whose CRC fails with
    the length known (counted as salvaged) by default; --no-salvage drops it."""
    from diffsem_apps import radio
    parser = __import__("argparse").ArgumentParser()
    radio.add_rx_arguments(parser)
    for extra, fixed in (([], K), (["--no-salvage"], 0)):
        args = parser.parse_args(["--source", "file", "--input", VECTOR, "--k", str(K), *extra])
        args.app = "rx"
        app = radio.RxApp(args)
        assert app.rx.receiver.fixed_k == fixed
