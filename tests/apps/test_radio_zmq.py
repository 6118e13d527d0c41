"""The three-process ZMQ radio: TX, channel and RX as separate OS processes on 127.0.0.1, against
the single-flowgraph loopback (LoopbackSim) on the same images, SNR and seed; SDR endpoints
without a device fail with one sentence."""
from __future__ import annotations

import pytest
from support import App, free_ports

SNR_DB, COUNT, K, SEED = 15.0, 16, 128, 0


def loopback_reference():
    """The single-flowgraph loopback on the same images / SNR / seed."""
    from gnuradio.diffsem.harness import LoopbackSim
    tb = LoopbackSim(k=K, snr_db=SNR_DB, decoders=["diffusion:2"], count=COUNT, seed=SEED, classifier_card="none",
                     max_queue=COUNT)
    assert tb.run_until_drained(timeout_s=120, quiet_s=10)
    return tb.report()["decoders"][0]


def test_three_process_zmq_link_matches_loopback():
    tx_port, rx_port = free_ports(2)
    tx_addr, rx_addr = f"tcp://127.0.0.1:{tx_port}", f"tcp://127.0.0.1:{rx_port}"
    common = ["--snr", str(SNR_DB), "--seed", str(SEED)]
    link = ["--k", str(K), "--count", str(COUNT), "--threads", "1"]
    apps = []
    try:
        # subscribers first, publishers last: the SUB sockets connect to addresses nobody has bound
        # yet and ZMQ reconnects once the TX / the channel come up
        apps.append(App("rx", "--source", "zmq", "--address", rx_addr, *common, *link, "--no-classifier",
                        "--idle-timeout", "15", "--duration", "150"))
        apps.append(App("channel", "--in", tx_addr, "--out", rx_addr, *common, "--duration", "170"))
        rx, channel = apps
        reference = loopback_reference()  # meanwhile the apps load their models
        rx.wait_ready(90)
        channel.wait_ready(90)
        apps.append(App("tx", "--sink", "zmq", "--address", tx_addr, "--samp-rate", "500e3", *common, *link,
                        "--start-delay", "3"))  # PUB drops until the channel has subscribed
        tx_report = apps[2].report(timeout=120)
        rx_report = rx.report(timeout=150)
    finally:
        for app in apps:
            app.kill()

    assert tx_report["sent"] == COUNT and tx_report["frames"] == COUNT
    assert tx_report["filler"]["bursts_out"] == COUNT and tx_report["filler"]["dropped"] == 0
    acc = rx_report
    assert acc["sent"] == COUNT
    assert acc["sent"] == (acc["decoded"] + acc["crc_dropped"] + acc["queue_dropped"] + acc["bad_input"]
                           + acc["failed"] + acc["lost"])
    assert acc["decoded"] >= COUNT - 1, acc  # 15 dB AWGN: headers survive
    assert acc["stopped"] == "all frames accounted for"
    assert abs(acc["avg_psnr_db"] - reference["avg_psnr_db"]) < 0.5, (acc["avg_psnr_db"], reference["avg_psnr_db"])


@pytest.mark.parametrize("endpoint,device", [("uhd", "USRP"), ("soapy", "SoapySDR")])
def test_sdr_endpoint_without_device_is_one_sentence(endpoint, device, capsys):
    from diffsem_apps import cli
    args = ["--device-args", "type=b200" if endpoint == "uhd" else "driver=hackrf"]
    assert cli.main(["rx", "--source", endpoint, *args, "--count", "all"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("diffsem-rx:")]
    assert len(err) == 1 and f"no {device}" in err[0], err
    assert cli.main(["tx", "--sink", endpoint, *args]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("diffsem-tx:")]
    assert len(err) == 1 and f"no {device}" in err[0] and "Traceback" not in err[0], err


def test_taken_address_is_one_sentence(capsys):
    import zmq
    from diffsem_apps import cli
    (port,) = free_ports(1)
    ctx = zmq.Context.instance()
    squatter = ctx.socket(zmq.PUB)
    squatter.bind(f"tcp://127.0.0.1:{port}")
    try:
        assert cli.main(["channel", "--out", f"tcp://127.0.0.1:{port}", "--duration", "1"]) == 2
    finally:
        squatter.close(0)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("diffsem-channel:")]
    assert len(lines) == 1 and "cannot publish samples" in lines[0]


def test_burst_filler_sends_bursts_whole_and_zeros_between():
    import numpy as np
    import pmt
    from gnuradio import blocks, gr
    from diffsem_apps.endpoints import burst_filler

    filler = burst_filler(max_queue=2)
    bursts = [np.full(n, v, np.complex64) for n, v in ((300, 1 + 1j), (500, 2.0), (700, 3j))]
    for b in bursts + [bursts[0]]:  # 4 bursts into a queue of 2 before the flowgraph runs
        filler.to_basic_block()._post(pmt.intern("pdus"), pmt.cons(pmt.PMT_NIL, pmt.init_c32vector(b.size, b.tolist())))
    filler.to_basic_block()._post(pmt.intern("pdus"), pmt.intern("not a pdu"))
    tb = gr.top_block()
    head, sink = blocks.head(gr.sizeof_gr_complex, 4000), blocks.vector_sink_c()
    tb.connect(filler, head, sink)
    tb.run()
    out = np.asarray(sink.data())
    stats = filler.stats()
    assert stats["dropped"] == 2 and stats["bad_pdu"] == 1 and stats["bursts_out"] == 2
    # the two newest bursts, back to back, then zeros: nothing cut, nothing invented
    np.testing.assert_array_equal(out[:700], bursts[2])
    np.testing.assert_array_equal(out[700:1000], bursts[0])
    assert len(out) == 4000 and not np.any(out[1000:])


def test_any_start_order_with_a_looping_tx():
    """TX first, then channel, then RX, all launched at once: the SUB sockets reconnect, the RX waits
    for samples, and a looping TX (a beacon) reaches it whatever process comes up last."""
    tx_port, rx_port = free_ports(2)
    tx_addr, rx_addr = f"tcp://127.0.0.1:{tx_port}", f"tcp://127.0.0.1:{rx_port}"
    apps = []
    try:
        apps.append(App("tx", "--sink", "zmq", "--address", tx_addr, "--samp-rate", "250e3", "--k", "32",
                        "--count", "4", "--loop", "--rate", "10", "--start-delay", "0", "--threads", "1"))
        apps.append(App("channel", "--in", tx_addr, "--out", rx_addr, "--snr", "20", "--duration", "150"))
        apps.append(App("rx", "--source", "zmq", "--address", rx_addr, "--k", "32", "--count", "all", "--frames", "6",
                        "--no-classifier", "--threads", "1", "--duration", "120"))
        rx = apps[2].report(timeout=150)
    finally:
        for app in apps:
            app.kill()
    assert rx["stopped"] == "6 frames decoded", rx
    assert rx["decoded"] >= 6 and rx["rx"]["headers_ok"] >= 6
