"""The USRP and HackRF flowgraphs: each compiles with grcc, wires the burst handling its driver expects,
and its generated script, run with no such radio attached, exits non-zero within seconds with one
sentence naming the radio (no traceback). The RX scripts, with the radio block swapped for a SigMF
replay, decode the shipped test vector; the HackRF RX's DC blocker is measured against a DC offset. No hardware is needed (or used: the scripts are pointed at
a serial number no radio has, so an attached radio cannot change the outcome)."""
import subprocess
import sys

import pytest
from support import DATA, REPO, grcc, import_script

HW = {"usrp_tx": "USRP", "usrp_rx": "USRP", "hackrf_tx": "HackRF", "hackrf_rx": "HackRF"}
ABSENT = "serial=diffsem-no-such-radio"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """grcc output for every hardware flowgraph: {name: path of the generated script}."""
    return {name: grcc(name, tmp_path_factory.mktemp(name)) for name in HW}


@pytest.mark.parametrize("name", sorted(HW))
def test_no_radio_one_sentence(generated, name):
    proc = subprocess.run([sys.executable, str(generated[name]), "--dev-args", ABSENT], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "Traceback" not in text, text
    ours = [line for line in text.splitlines() if line.startswith(f"{name}:")]
    assert len(ours) == 1, text
    sentence = ours[0]
    assert f"without a {HW[name]}" in sentence and ABSENT in sentence, sentence
    assert sentence.rstrip().endswith("run again."), sentence


@pytest.mark.parametrize("name", sorted(HW))
def test_settings_are_command_line_options(generated, name):
    proc = subprocess.run([sys.executable, str(generated[name]), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    gains = {"usrp_tx": ["--tx-gain", "--antenna", "--amplitude"], "usrp_rx": ["--rx-gain", "--antenna", "--taps"],
             "hackrf_tx": ["--vga", "--amp", "--amplitude"], "hackrf_rx": ["--lna", "--vga", "--amp", "--taps"]}[name]
    for option in ["--freq", "--samp-rate", "--dev-args", "--k"] + gains:
        assert option in proc.stdout, f"{name} --help lacks {option}"
    assert "2.45G" in proc.stdout  # the 2.4 GHz ISM bench default


def test_tx_bursts_are_length_tagged(generated):
    """Both TX scripts hand the driver one burst per packet_len-tagged image (UHD: tx_sob/tx_eob;
    gr-soapy: SOAPY_SDR_END_BURST), and every script probes its radio before building blocks."""
    usrp_tx = generated["usrp_tx"].read_text()
    sink_call = usrp_tx.split("uhd.usrp_sink(", 1)[1].split("self.uhd_usrp_sink_0.set_samp_rate", 1)[0]
    assert "'packet_len'" in sink_call  # usrp_sink's length_tag_name argument
    assert "self.soapy_hackrf_sink_0.set_length_tag_name('packet_len')" in generated["hackrf_tx"].read_text()
    for name, path in generated.items():
        code = path.read_text()
        probe, first_block = code.index("snippets_init_before_blocks(self)"), code.index("# Blocks")
        assert probe > first_block and probe < code.index("# Connections"), name
        assert "require_radio(" in code


def test_hackrf_rx_blocks_dc_before_sync(generated):
    code = generated["hackrf_rx"].read_text()
    assert "filter.dc_blocker_cc(128, True)" in code
    assert "self.connect((self.soapy_hackrf_source_0, 0), (self.filter_dc_blocker_xx_0, 0))" in code
    assert "self.connect((self.filter_dc_blocker_xx_0, 0), (self.diffsem_ofdm_analog_rx_0, 0))" in code


def test_require_radio_in_process():
    from diffsem_apps.sdr_check import require_radio, soapy_hackrf_args
    assert soapy_hackrf_args("") == "driver=hackrf"
    assert soapy_hackrf_args(" serial=0000abcd, ") == "driver=hackrf,serial=0000abcd"
    with pytest.raises(SystemExit) as exc:
        require_radio("hackrf_rx", "hackrf", "rx", ABSENT)
    assert str(exc.value).startswith("hackrf_rx: cannot start without a HackRF (") and "driver=hackrf," + ABSENT in str(exc.value)
    with pytest.raises(ValueError):
        require_radio("x", "pluto", "rx")
    with pytest.raises(ValueError):
        require_radio("x", "uhd", "both")


def test_dc_blocker_removes_a_dc_offset():
    """A DC term ~10 dB below the burst power (HackRF-like) makes the detector fire on noise
    (the receiver itself skips the DC carrier and re-estimates the channel, so frames still
    decode); the HackRF RX's DC blocker removes the false syncs and costs nothing on a clean signal."""
    from diffsem_apps.measure_frontend import dc_offset_run
    with_dc = dc_offset_run(20.0, 0.3, False, n_frames=30)
    blocked = dc_offset_run(20.0, 0.3, True, n_frames=30)
    assert with_dc["decoded"] >= 29 and with_dc["false_triggers"] > 20, with_dc
    # without any DC the detector's threshold (0.2) gives ~0.2 false triggers per frame at 20 dB
    assert blocked["decoded"] >= 29 and blocked["mse_db"] < -19.3 and blocked["false_triggers"] <= 15, blocked
    assert blocked["false_triggers"] < with_dc["false_triggers"] / 2 and blocked["header_crc_fail"] == 0, blocked
    assert blocked["snr_est_db"] == pytest.approx(20.0, abs=0.5)


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load_generated(generated, name, monkeypatch):
    """The grcc-generated script `name` as a module, with the radio check passed (its radio block
    is swapped for a stand-in by the caller)."""
    from diffsem_apps import sdr_check
    module = import_script(generated[name], f"{name}_generated")
    monkeypatch.setattr(sdr_check, "require_radio", lambda *a, **k: None)
    return module


@pytest.mark.parametrize("name", ["usrp_rx", "hackrf_rx"])
def test_rx_flowgraph_decodes_a_recording(generated, name, tmp_path, monkeypatch):
    """The generated RX script with its radio block swapped for a replay of the shipped SigMF test vector
    (AWGN 15 dB, k = 32, 8 frames): the chain after the radio decodes it to the recorded quality."""
    import json
    import time
    import types

    from gnuradio import gr
    from diffsem_apps.endpoints import sigmf_replay

    vector = DATA / "sigmf" / "awgn15_k32_8frames"
    expected = json.loads(vector.with_suffix(".json").read_text())

    class replayed_radio(gr.hier_block2):
        """Stands in for the radio block: plays the recording; the radio setters are accepted and ignored."""

        def __init__(self, *args, **kwargs):
            gr.hier_block2.__init__(self, "replayed_radio", gr.io_signature(0, 0, 0),
                                    gr.io_signature(1, 1, gr.sizeof_gr_complex))
            self.replay = sigmf_replay(str(vector))
            self.connect(self.replay, self)

        def __getattr__(self, attr):
            if attr.startswith("set_"):
                return lambda *a, **k: None
            return super().__getattr__(attr)  # gr.hier_block2 delegates the rest to its C++ block

    module = _load_generated(generated, name, monkeypatch)
    if name == "usrp_rx":
        module.uhd = types.SimpleNamespace(usrp_source=replayed_radio, stream_args=lambda **k: None)
    else:
        module.soapy = types.SimpleNamespace(source=replayed_radio)
    tb = getattr(module, name)(k=32, n_images=expected["expected_frames"], out_dir=str(tmp_path),
                               taps=f"tcp://127.0.0.1:{_free_port()}", samp_rate=1e6)
    metrics = tb.diffsem_link_metrics_0
    tb.start()
    try:
        deadline = time.monotonic() + 60
        while metrics.summary()["frames_scored"] < expected["expected_frames"] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        tb.stop()
        tb.wait()
    summary = metrics.summary()
    print(name, json.dumps(summary))  # shown with pytest -s
    assert summary["frames_scored"] == expected["expected_frames"], summary
    assert summary["avg_psnr_db"] == pytest.approx(expected["expected_avg_psnr_db"], abs=expected["psnr_tolerance_db"])
    assert len(list(tmp_path.glob("*.png"))) >= expected["expected_frames"]


@pytest.mark.parametrize("name", ["usrp_tx", "hackrf_tx"])
def test_tx_flowgraph_sends_tagged_bursts(generated, name, monkeypatch):
    """The generated TX script with its radio block swapped for a capture: one packet_len-tagged burst
    per image reaches the radio, scaled by --amplitude (unit-power bursts -> rms = amplitude), and at the
    default amplitude nothing reaches the DAC's full scale (OFDM peaks, the scrambled header's
    included, stay ~10 dB over rms)."""
    import time
    import types

    import numpy as np
    import pmt
    from gnuradio import blocks, gr

    class captured_radio(gr.hier_block2):
        """Stands in for the radio sink: keeps the samples and tags; radio setters are ignored."""

        def __init__(self, *args, **kwargs):
            gr.hier_block2.__init__(self, "captured_radio", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                    gr.io_signature(0, 0, 0))
            self.capture = blocks.vector_sink_c()
            self.connect(self, self.capture)

        def __getattr__(self, attr):
            if attr.startswith("set_"):
                return lambda *a, **k: None
            return super().__getattr__(attr)

    module = _load_generated(generated, name, monkeypatch)
    if name == "usrp_tx":
        module.uhd = types.SimpleNamespace(usrp_sink=captured_radio, stream_args=lambda **k: None)
        radio = "uhd_usrp_sink_0"
    else:
        module.soapy = types.SimpleNamespace(sink=captured_radio)
        radio = "soapy_hackrf_sink_0"
    n_images, amplitude = 4, 0.18  # the flowgraphs' default
    tb = getattr(module, name)(k=32, n_images=n_images, rate=50.0)
    capture = getattr(tb, radio).capture
    burst_tags = lambda: [t for t in capture.tags() if pmt.symbol_to_string(t.key) == "packet_len"]
    tb.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tags = burst_tags()
            if len(tags) == n_images and len(capture.data()) >= tags[-1].offset + pmt.to_long(tags[-1].value):
                break
            time.sleep(0.1)
    finally:
        tb.stop()
        tb.wait()
    tags, samples = burst_tags(), np.asarray(capture.data())
    assert len(tags) == n_images
    lengths = {pmt.to_long(t.value) for t in tags}
    assert len(lengths) == 1 and samples.size == n_images * lengths.pop()  # bursts back to back, nothing else
    active = samples[np.abs(samples) > 0]
    assert np.sqrt(np.mean(np.abs(active) ** 2)) == pytest.approx(amplitude, rel=0.15)
    assert max(np.abs(samples.real).max(), np.abs(samples.imag).max()) < 1.0  # fc32 full scale, per component
