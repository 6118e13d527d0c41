"""Block tests of the semantic link: image_source -> semantic_encoder -> (AWGN "air" stand-in)
-> diffusion_decoder -> image_sink / link_metrics / zmq_taps, as message-only flowgraphs over
tiny exported ONNX models; bad input and broken models; frame accounting with queue drops."""
from __future__ import annotations

import json
import time

import numpy as np
import pmt
import pytest
import zmq
from gnuradio import gr

from diffsem.link import taps
from diffsem.runtime import cards, inference
from diffsem.runtime import ModelMismatch, ProviderUnavailable
from gnuradio import diffsem as blocks
from gnuradio.diffsem.harness import dict_to_pmt, make_pdu, pdu_parts
from support import TINY_K

K = TINY_K


class awgn_air(gr.basic_block):
    """Stands in for TX + channel + RX: adds CN(0, sigma^2) and the RX's meta (snr_db, noise_var);
    the frames whose seq is in `lose` are never detected."""

    def __init__(self, snr_db=20.0, seed=5, lose=()):
        gr.basic_block.__init__(self, name="awgn_air", in_sig=None, out_sig=None)
        self.snr_db, self.rng, self.lose = snr_db, np.random.default_rng(seed), set(lose)
        self.received = {}
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def handle(self, msg):
        meta, symbols = pdu_parts(msg)
        if meta["seq"] in self.lose:
            return
        sigma2 = 10 ** (-self.snr_db / 10)
        noise = (self.rng.standard_normal(symbols.size) + 1j * self.rng.standard_normal(symbols.size)) * np.sqrt(sigma2 / 2)
        rx = (symbols + noise).astype(np.complex64)
        self.received[meta["seq"]] = rx
        out = {"seq": meta["seq"], "snr_db": self.snr_db, "noise_var": np.full(symbols.size, sigma2, np.float32)}
        self.message_port_pub(pmt.intern("out"), make_pdu(out, rx))


def _wait(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _link(tiny_models, tmp_path, count=8, mode="diffusion", lose=(), **decoder_kw):
    tb = gr.top_block()
    src = blocks.image_source("fashion-mnist", "test", first=0, count=count, loop=False, rate=0)
    enc = blocks.semantic_encoder(k=K, models_dir=str(tiny_models), provider="cpu")
    air = awgn_air(lose=lose)
    dec = blocks.diffusion_decoder(k=K, mode=mode, steps=1, models_dir=str(tiny_models), provider="cpu", seed=3,
                                   **decoder_kw)
    sink = blocks.image_sink(str(tmp_path / "rx"), mosaic_every=4)
    met = blocks.link_metrics(classifier_card="none", keep_images=True)
    # the subscriber reads only after the graph drained: a send queue larger than the ~32 messages of
    # 8 frames, or the publisher (rightly) drops the last ones, usually the decoder state
    tap = blocks.zmq_taps("tcp://127.0.0.1:0", 1000)
    tb.msg_connect(src, "out", enc, "in")
    tb.msg_connect(src, "out", met, "ref")
    tb.msg_connect(enc, "out", air, "in")
    tb.msg_connect(air, "out", dec, "in")
    tb.msg_connect(air, "out", tap, "constellation")
    tb.msg_connect(dec, "out", sink, "in")
    tb.msg_connect(dec, "out", met, "in")
    tb.msg_connect(dec, "out", tap, "image")
    tb.msg_connect(dec, "state", tap, "state")
    tb.msg_connect(enc, "drops", met, "drops")
    tb.msg_connect(dec, "drops", met, "drops")
    tb.msg_connect(met, "metrics", tap, "metrics")
    return tb, dict(src=src, enc=enc, air=air, dec=dec, sink=sink, met=met, tap=tap)


def _run_until(tb, cond, describe=lambda: ""):
    """Run the flowgraph until cond() holds (asserted, within _wait's timeout), then stop it."""
    tb.start()
    try:
        assert _wait(cond), describe()
    finally:
        tb.stop()
        tb.wait()


def _drained(b):
    def done():
        acc = b["met"].accounting()
        return (b["src"].finished() and acc["sent"] == b["src"].sent and acc["missing"] == 0
                and b["met"].wait_idle(0))
    return done


def test_message_link_decodes_every_frame_and_matches_offline_decoding(tiny_models, tmp_path):
    tb, b = _link(tiny_models, tmp_path, count=8)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.subscribe(b"")
    sub.connect(b["tap"].address)
    time.sleep(0.3)  # let the subscription reach the publisher before frames flow
    _run_until(tb, _drained(b), b["met"].accounting)
    acc = b["met"].accounting()
    assert acc["sent"] == 8 and acc["decoded"] == 8 and acc["missing"] == 0
    assert acc["queue_dropped"] == acc["bad_input"] == acc["failed"] == acc["unmatched"] == 0

    # in-flowgraph quality == offline decoding of the very same received symbols
    from diffsem.data import load
    from diffsem.metrics import psnr

    images, labels = load("test")
    dec = inference.FrameDecoder(inference.load_model(tiny_models / f"student_k{K}_s1.json", "cpu"), K, "diffusion", seed=3)
    recs = sorted(b["met"].records, key=lambda r: r["seq"])
    offline = dec([inference.DecodeRequest(b["air"].received[r["seq"]], 20.0,
                                           np.full(K, 0.01, np.float32), r["seq"]) for r in recs])
    for r, img in zip(recs, offline):
        assert np.allclose(r["image"], img, atol=1e-5)
        assert r["psnr_db"] == pytest.approx(float(psnr(img[None, None], images[r["index"]][None])[0]), abs=1e-3)
        assert r["label"] == labels[r["index"]] and r["latency_ms"] > 0 and r["e2e_latency_ms"] > 0
    assert b["met"].summary()["avg_psnr_db"] == pytest.approx(np.mean([r["psnr_db"] for r in recs]))

    # sink wrote a PNG per frame and a mosaic
    written = sorted(p.name for p in (tmp_path / "rx").glob("rx_0*.png"))
    assert written == [f"rx_{s:06d}.png" for s in range(8)] and (tmp_path / "rx" / "rx_mosaic.png").exists()

    # every tap topic arrived and decodes with plain pyzmq
    seen = {}

    def frame_metrics_seen():
        return sum("psnr_db" in m for m in seen.get("metrics", []))

    # the metrics worker publishes after the link is drained: on a loaded machine its last
    # message may come more than one poll after the others, so wait for it (up to 10 s)
    deadline = time.time() + 10.0
    while sub.poll(200) or (frame_metrics_seen() < 8 and time.time() < deadline):
        while sub.poll(0):
            topic, payload = sub.recv_multipart()
            seen.setdefault(topic.decode(), []).append(taps.decode(topic, payload))
    sub.close(0)
    assert set(seen) == set(taps.TOPICS)
    assert all(c.dtype == np.complex64 and c.size == K for c in seen["constellation"])
    assert sorted(int(text["seq"]) for _, text in seen["image"]) == list(range(8))
    frame_metrics = [m for m in seen["metrics"] if "psnr_db" in m]
    assert len(frame_metrics) == 8 and all(m["sent"] >= 1 for m in frame_metrics)
    assert seen["state"][-1]["processed"] == 8 and seen["state"][-1]["provider"] == "CPUExecutionProvider"


def test_bad_symbol_pdus_are_counted_and_never_stall_the_decoder(tiny_models):
    tb = gr.top_block()
    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(tiny_models), provider="cpu")
    met = blocks.link_metrics(classifier_card="none")
    good = make_pdu({"seq": 1, "snr_db": 10.0, "noise_var": np.full(K, 0.1, np.float32)}, np.ones(K, np.complex64))
    bad = [
        make_pdu({"seq": 2, "snr_db": 10.0}, np.ones(K - 3, np.complex64)),                       # wrong length
        make_pdu({"seq": 3, "snr_db": 10.0}, np.full(K, np.nan, np.complex64)),                   # NaN
        make_pdu({"seq": 4}, np.ones(K, np.complex64)),                                           # no SNR
        make_pdu({"snr_db": 10.0}, np.ones(K, np.complex64)),                                     # no seq
        make_pdu({"seq": 6, "snr_db": 10.0}, np.ones(K, np.float32)),                             # not complex
        make_pdu({"seq": 7, "snr_db": 10.0, "noise_var": np.ones(3, np.float32)}, np.ones(K, np.complex64)),
        pmt.intern("garbage"),                                                                    # not a PDU
        pmt.cons(pmt.make_dict(), pmt.intern("x")),                                               # not a vector
    ]
    no_noise_var = make_pdu({"seq": 8, "snr_db": 10.0}, np.ones(K, np.complex64))  # documented fallback
    msgs = [good] + bad + [no_noise_var]
    strobe = blocks_msg_burst(msgs)
    tb.msg_connect(strobe, "out", dec, "in")
    tb.msg_connect(dec, "out", met, "in")
    tb.msg_connect(dec, "drops", met, "drops")
    _run_until(tb, lambda: met.accounting()["decoded"] == 2 and met.accounting()["bad_input"] == len(bad))
    assert dec.stats()["bad_input"] == len(bad)
    assert met.accounting()["decoded"] == 2


class blocks_msg_burst(gr.basic_block):
    """Emit a fixed list of messages once the flowgraph starts."""

    def __init__(self, msgs):
        gr.basic_block.__init__(self, name="msg_burst", in_sig=None, out_sig=None)
        self.msgs = msgs
        self.message_port_register_out(pmt.intern("out"))

    def start(self):
        import threading

        threading.Timer(0.05, lambda: [self.message_port_pub(pmt.intern("out"), m) for m in self.msgs]).start()
        return True


def test_queue_drops_are_counted_so_every_frame_is_accounted_for(tiny_models, tmp_path):
    tb, b = _link(tiny_models, tmp_path, count=24, max_queue=2, max_batch=1)
    worker = b["dec"].worker
    fast = worker.process

    def stalled_process(items):  # inference "cannot keep up" until all 24 frames have arrived
        _wait(lambda: worker.counters["submitted"] == 24, timeout=10)
        return fast(items)

    worker.process = stalled_process
    _run_until(tb, _drained(b), b["met"].accounting)
    acc = b["met"].accounting()
    assert acc["queue_dropped"] == 24 - 1 - 2  # one frame in flight, two kept in the queue
    assert acc["decoded"] == 3
    assert acc["sent"] == 24 == acc["decoded"] + acc["queue_dropped"] + acc["crc_dropped"]
    assert acc["queue_dropped"] == b["dec"].stats()["dropped_queue"]


def test_image_source_reads_png_folders_and_names_bad_files(tmp_path):
    from PIL import Image

    Image.new("L", (20, 20), 200).save(tmp_path / "one.png")
    src = blocks.image_source(str(tmp_path), count=0)
    assert src.images.shape == (1, 28, 28) and src.labels.tolist() == [-1]
    (tmp_path / "two.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="two.png"):
        blocks.image_source(str(tmp_path))
    with pytest.raises(ValueError, match="outside"):
        blocks.image_source("fashion-mnist", "test", first=10_000)


# --- broken models and providers: clear errors when the block is built ------------------------------

def _copy_models(src, dst, names):
    import shutil

    dst.mkdir()
    for n in names:
        for ext in (".onnx", ".json"):
            shutil.copy(src / f"{n}{ext}", dst / f"{n}{ext}")
    return dst


def test_missing_model_file_is_a_clear_error(tiny_models, tmp_path):
    folder = _copy_models(tiny_models, tmp_path / "m", [f"deepjscc_k{K}"])
    (folder / f"deepjscc_k{K}.onnx").unlink()
    with pytest.raises(cards.ModelFileMissing, match="not found"):
        blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(folder))
    with pytest.raises(cards.ModelFileMissing, match="card not found"):
        blocks.diffusion_decoder(k=K, mode="diffusion", steps=4, models_dir=str(folder))


def test_tampered_model_is_refused(tiny_models, tmp_path):
    folder = _copy_models(tiny_models, tmp_path / "m", [f"student_k{K}_s1"])
    path = folder / f"student_k{K}_s1.onnx"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(cards.ChecksumMismatch, match="sha256 mismatch"):
        blocks.diffusion_decoder(k=K, steps=1, models_dir=str(folder))


def test_model_whose_io_names_differ_from_its_card_is_refused(tiny_models, tmp_path):
    folder = _copy_models(tiny_models, tmp_path / "m", [f"deepjscc_k{K}"])
    card_path = folder / f"deepjscc_k{K}.json"
    card = json.loads(card_path.read_text())
    card["inputs"][0]["name"] = "received"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelMismatch, match="names"):
        blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(folder))


def test_wrong_model_for_mode_or_k_is_refused(tiny_models):
    with pytest.raises(ValueError, match="k=32"):
        blocks.diffusion_decoder(k=32, mode="deepjscc", card=str(tiny_models / f"deepjscc_k{K}.json"))
    with pytest.raises(ValueError, match="noise"):
        blocks.diffusion_decoder(k=K, mode="diffusion", card=str(tiny_models / f"deepjscc_k{K}.json"))
    with pytest.raises(ValueError, match="mode"):
        blocks.diffusion_decoder(k=K, mode="vae", models_dir=str(tiny_models))


def test_unavailable_forced_provider_is_a_clear_error(tiny_models):
    from diffsem.runtime import PROVIDERS, available_providers

    missing = [p for p in ("tensorrt", "cuda") if PROVIDERS[p] not in available_providers()]
    for provider in missing:  # on a CPU-only build: both
        with pytest.raises(ProviderUnavailable, match="not available"):
            blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(tiny_models), provider=provider)
    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(tiny_models), provider="auto")
    best = next(PROVIDERS[p] for p in ("tensorrt", "cuda", "cpu") if p not in missing)
    assert dec.provider == best  # auto takes the best provider that exists, and says which


def test_drop_notices_reach_link_metrics_as_dicts(tiny_models):
    met = blocks.link_metrics(classifier_card="none")
    met._on_drop(dict_to_pmt({"seq": 5, "reason": "queue_full", "block": "diffusion_decoder"}))
    met._on_drop(pmt.intern("junk"))
    acc = met.accounting()
    assert acc["queue_dropped"] == 1 and acc["bad_pdu"] == 1


def test_gnu_radio_zmq_sub_source_reads_the_constellation_tap():
    from gnuradio import blocks as grblocks
    from gnuradio import zeromq

    pub = taps.TapPublisher("tcp://127.0.0.1:0")
    tb = gr.top_block()
    source = zeromq.sub_source(gr.sizeof_gr_complex, 1, pub.endpoint, 100, False, -1, "constellation")
    sink = grblocks.vector_sink_c()
    tb.connect(source, sink)
    tb.start()
    try:
        frame = (np.arange(16) * (1 + 0.5j)).astype(np.complex64)
        deadline = time.monotonic() + 10
        while len(sink.data()) < 16 and time.monotonic() < deadline:  # slow joiner: resend until it arrives
            pub.publish_metrics({"seq": 0})  # another topic: filtered out by the key
            pub.publish_constellation(frame)
            time.sleep(0.05)
    finally:
        tb.stop()
        tb.wait()
        pub.close()
    data = np.asarray(sink.data(), np.complex64)
    assert data.size >= 16 and data.size % 16 == 0
    assert np.array_equal(data[:16], frame)


def test_link_metrics_matches_a_wrapped_12_bit_header_seq():
    from gnuradio.diffsem.harness import image_pdu

    met = blocks.link_metrics(classifier_card="none", keep_images=True)
    met.start()
    try:
        image = np.full((28, 28), 0.25, np.float32)
        for seq in (4095, 4096, 4097):
            met._on_ref(image_pdu({"seq": seq, "label": 3, "t_src": time.time()}, image))
        met._on_decoded(image_pdu({"seq": 4096 % 4096, "decoder": "x"}, image))  # RX reports 12 bits
        met._on_decoded(image_pdu({"seq": 4095, "decoder": "x"}, image))
        assert met.wait_idle(5)
    finally:
        met.stop()
    assert sorted(r["seq"] for r in met.records) == [4095, 4096]
    assert all(r["psnr_db"] == 100.0 and r["label"] == 3 for r in met.records)  # identical image: capped PSNR
    acc = met.accounting()
    assert acc["unmatched"] == 0 and acc["pending_references"] == 1  # 4097 still in flight


def test_bad_pdus_into_encoder_sink_and_taps_are_counted_not_fatal(tiny_models, tmp_path):
    from gnuradio.diffsem.harness import image_pdu

    enc = blocks.semantic_encoder(k=K, models_dir=str(tiny_models), provider="cpu")
    sink = blocks.image_sink(str(tmp_path / "rx"))
    tap = blocks.zmq_taps("tcp://127.0.0.1:0")
    junk = [pmt.intern("junk"), make_pdu({"seq": 1}, np.ones(100, np.float32)),
            make_pdu({"seq": 2}, np.full(784, np.nan, np.float32)), make_pdu({"seq": 3}, np.ones(784, np.complex64))]
    for msg in junk:
        enc._handle(msg)
        sink._handle(msg)
        tap._image(msg)
        tap._metrics(pmt.intern("junk"))
        tap._constellation(make_pdu({}, np.ones(4, np.float32)))
    assert enc.bad_input == len(junk) and enc.worker.counters["submitted"] == 0
    assert sink.stats()["bad_input"] == len(junk) and sink.latest() is None
    assert tap.stats()["bad_input"] == 3 * len(junk)
    sink._handle(image_pdu({"seq": 9}, np.zeros(784, np.float32)))  # and good input still works
    assert (tmp_path / "rx" / "rx_000009.png").exists()
    tap.close()


def test_the_image_tap_says_which_image_is_a_fill_and_how_far_to_trust_one():
    """A viewer of the image topic alone (diffsem monitor's latest.png) must not take the decoder's
    fill of a lost frame for a decoded one, and sees the receiver's reliability score."""
    from diffsem.link import taps
    from gnuradio.diffsem.harness import image_pdu

    tap = blocks.zmq_taps("tcp://127.0.0.1:0")
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.subscribe(b"image")
    sub.connect(tap.address)
    time.sleep(0.3)
    img = np.zeros(784, np.float32)
    tap._image(image_pdu({"seq": 5, "status": "lost", "filled": True, "reliability": 0.0, "decoder": "s2"}, img))
    tap._image(image_pdu({"seq": 6, "predicted_psnr_db": 24.5, "reliability": 0.62, "salvaged": True}, img))
    texts = []
    for _ in range(2):
        assert sub.poll(5000)
        texts.append(taps.decode(*sub.recv_multipart())[1])
    sub.close(0)
    tap.close()
    assert texts[0]["status"] == "lost" and texts[0]["filled"] == "True" and texts[0]["reliability"] == "0.0"
    assert texts[1]["reliability"] == "0.62" and texts[1]["salvaged"] == "True" and "status" not in texts[1]


# --- a frame lost before its header decoded: shown as the decoder's fill from nothing ------------

def _run_lossy(tiny_models, tmp_path, lose, count, **decoder_kw):
    tb, b = _link(tiny_models, tmp_path, count=count, mode="deepjscc", lose=lose, **decoder_kw)
    _run_until(tb, lambda: (b["src"].finished() and b["met"].accounting()["decoded"] == count - len(lose)
                            and b["dec"].wait_idle(0) and b["met"].wait_idle(0)), b["met"].accounting)
    return b["dec"], b["met"]


def test_a_frame_lost_between_two_received_is_shown_as_the_fill_and_stays_lost(tiny_models, tmp_path):
    from diffsem.phy.ofdm import ERASED_NOISE_VAR

    dec, met = _run_lossy(tiny_models, tmp_path, lose={2, 5}, count=8)
    acc = met.accounting()
    # still lost in the identity (never detected: missing), shown and scored apart
    assert acc["sent"] == 8 and acc["decoded"] == 6 and acc["missing"] == 2 and acc["filled"] == 2
    assert dec.stats()["filled"] == 2
    filled = sorted((r for r in met.records if r.get("filled")), key=lambda r: r["seq"])
    assert [r["seq"] for r in filled] == [2, 5]
    # the fill is the decoder's output with every symbol erased, scored against the frame's reference
    model = inference.load_model(tiny_models / f"deepjscc_k{K}.json", "cpu")
    erased = inference.DecodeRequest(np.zeros(K, np.complex64), 10.0, np.full(K, ERASED_NOISE_VAR, np.float32), 0)
    expected = inference.FrameDecoder(model, K, "deepjscc")([erased])[0]
    for r in filled:
        assert np.allclose(r["image"], expected, atol=1e-5) and "psnr_db" in r and r["label"] >= 0
    # the running means are the decoded frames' alone
    decoded = [r["psnr_db"] for r in met.records if not r.get("filled")]
    assert len(decoded) == 6
    assert met.summary()["avg_psnr_db"] == pytest.approx(np.mean(decoded))


def test_fill_lost_off_shows_nothing_for_the_gap(tiny_models, tmp_path):
    dec, met = _run_lossy(tiny_models, tmp_path, lose={3}, count=6, fill_lost=False)
    acc = met.accounting()
    assert acc["decoded"] == 5 and acc["missing"] == 1 and acc["filled"] == 0 and dec.fill is None
    assert not any(r.get("filled") for r in met.records)


def test_a_sequence_jump_is_counted_not_filled(tiny_models):
    from diffsem.link.seq import MAX_GAP_SHOWN

    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(tiny_models), provider="cpu")
    shown = []
    dec._publish = lambda meta, result: shown.append(meta["seq"])  # the fill images only: no worker runs

    def frame(seq):
        dec._handle(make_pdu({"seq": seq, "snr_db": 10.0, "noise_var": np.full(K, 0.1, np.float32)},
                             np.ones(K, np.complex64)))

    frame(10)
    frame(11 + MAX_GAP_SHOWN + 1)  # a TX restart: too long a gap to draw
    assert shown == [] and dec.stats()["gap_not_shown"] == MAX_GAP_SHOWN + 1
    frame(4095)
    frame(2)  # a short gap across the 12-bit wrap
    assert shown[-2:] == [0, 1] and dec.stats()["filled"] == len(shown)


def test_a_noiseless_frame_is_decoded_not_refused(tiny_models):
    """A clean recording replayed: the receiver estimates ~150 dB, far outside the decoders'
    training; such a frame is decoded as one at the range's edge, never refused."""
    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(tiny_models), provider="cpu")
    dec._handle(make_pdu({"seq": 1, "snr_db": 153.5, "noise_var": np.full(K, 4e-16, np.float32)},
                         np.ones(K, np.complex64)))
    dec._handle(make_pdu({"seq": 2, "snr_db": 1e300}, np.ones(K, np.complex64)))   # no noise_var: 10^-30
    assert dec.bad_input == 0 and dec.worker.counters["submitted"] == 2


def test_a_salvaged_seq_fills_nothing_and_a_late_frame_jumps_nothing(tiny_models):
    """A salvaged header's seq is the likeliest of 4096 and now and then wrong: it must not show a
    run of frames as lost, nor make the next real frame look like a jump back of 4000."""
    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(tiny_models), provider="cpu")
    shown = []
    dec._publish = lambda meta, result: shown.append(meta["seq"])

    def frame(seq, **meta):
        dec._handle(make_pdu({"seq": seq, "snr_db": 10.0, "noise_var": np.full(K, 0.1, np.float32), **meta},
                             np.ones(K, np.complex64)))

    frame(100)
    frame(120, salvaged=True)     # wrong: the frame was 101
    frame(102)
    frame(101)                    # late
    assert shown == [101] and dec.stats()["gap_not_shown"] == 0


def test_the_shipped_decoders_fill_beats_a_black_frame(test_split):
    """What the receiver shows for a lost frame must be a better guess than nothing: a broken
    decoder gives noise or a constant, which scores at most 9.4 dB (the best grey) on these 500
    images, black 7.5. The prior's guess, the mean garment, scores 10.9 (the shipped fills 10.8-11.0;
    an untrained hybrid decoder also gives the mean: its linear part's LMMSE of nothing)."""
    from diffsem.metrics import psnr

    images = test_split[0][:500]
    best_grey = max(float(np.mean(psnr(np.full_like(images, g), images))) for g in np.linspace(0, 1, 21))
    for mode in ("deepjscc", "diffusion"):
        dec = blocks.diffusion_decoder(k=128, mode=mode, steps=2, provider="cpu")
        fill = dec.fill[0][None, None]
        assert float(np.mean(psnr(np.broadcast_to(fill, images.shape), images))) > max(10.5, best_grey + 1.0), mode
        predicted, reliability = dec.fill[1]  # nothing arrived: no PSNR claimed, the whole image invented
        assert np.isnan(predicted) and reliability == 0.0, mode
