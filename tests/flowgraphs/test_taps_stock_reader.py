"""Stock GNU Radio reads every tap topic: a live semantic loopback publishes its taps, a separate
flowgraph of stock blocks only (zeromq.sub_msg_source -> blocks.message_debug) receives them from
the PMT endpoint, and every message it stored is a PDU whose topic, meta and vector decode to
what the link published. The JSON/PNG endpoint stays as it was, and its PNGs now carry the
image's true class (tEXt "label")."""
from __future__ import annotations

import json
import socket
import time
from collections import defaultdict

import numpy as np
import pmt
import pytest
import zmq
from gnuradio import blocks, gr, pdu, zeromq

from diffsem.link import taps

COUNT = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_link():
    from gnuradio import diffsem
    from gnuradio.diffsem.harness import LoopbackSim

    pmt_address = f"tcp://127.0.0.1:{_free_port()}"
    reader = gr.top_block("stock tap reader")
    source = zeromq.sub_msg_source(pmt_address, 100, False)
    store = blocks.message_debug()
    reader.msg_connect(source, "out", store, "store")
    # the stock way to one topic's samples: PDU Filter on "topic" -> PDU to Tagged Stream -> a sink
    streams = {}
    for topic, kind, sink in (("constellation", gr.types.complex_t, blocks.vector_sink_c()),
                              ("image", gr.types.float_t, blocks.vector_sink_f()),
                              ("metrics", gr.types.byte_t, blocks.vector_sink_b())):
        keep = pdu.pdu_filter(pmt.intern("topic"), pmt.intern(topic), False)
        to_stream = pdu.pdu_to_tagged_stream(kind, "packet_len")
        reader.msg_connect(source, "out", keep, "pdus")
        reader.msg_connect(keep, "pdus", to_stream, "pdus")
        reader.connect(to_stream, sink)
        streams[topic] = sink
    reader.start()

    link = LoopbackSim(k=128, snr_db=20.0, decoders=["diffusion:1"], count=COUNT, provider="cpu",
                       classifier_card="none")
    tap = diffsem.zmq_taps("tcp://127.0.0.1:0", 64, 1, pmt_address)
    link.msg_connect(link.rx, "out", tap, "constellation")
    link.msg_connect(link.decoders[0], "out", tap, "image")
    link.msg_connect(link.decoders[0], "state", tap, "state")
    link.msg_connect(link.metrics[0], "metrics", tap, "metrics")
    link.msg_connect(link.src, "out", tap, "ref")

    ctx = zmq.Context.instance()
    png_sub = ctx.socket(zmq.SUB)
    png_sub.connect(tap.address)
    png_sub.subscribe(b"image")
    time.sleep(1.0)  # both subscribers joined before the first frame (PUB drops for late joiners)
    try:
        assert link.run_until_drained(timeout_s=120, quiet_s=3)
        time.sleep(1.0)  # the reader's last messages
    finally:
        reader.stop()
        reader.wait()
    images = []
    while png_sub.poll(100):
        images.append(png_sub.recv_multipart())
    png_sub.close(linger=0)
    stats = tap.stats()
    tap.close()
    received = defaultdict(list)
    for i in range(store.num_messages()):
        msg = store.get_message(i)
        assert pmt.is_pair(msg) and pmt.is_dict(pmt.car(msg)), f"not a PDU: {msg}"
        meta = pmt.to_python(pmt.car(msg))
        received[meta["topic"]].append((meta, pmt.to_python(pmt.cdr(msg))))
    streams = {topic: (np.array(sink.data()), [t for t in sink.tags() if pmt.symbol_to_string(t.key) == "packet_len"])
               for topic, sink in streams.items()}  # (samples, the burst starts); meta entries are tags too
    return {"received": received, "stats": stats, "images": images, "streams": streams}


def test_every_topic_arrives_and_nothing_is_lost(live_link):
    received, sent = live_link["received"], live_link["stats"]["pmt"]["sent"]
    assert set(received) == set(taps.TOPICS)
    assert {t: len(v) for t, v in received.items()} == sent  # every message sent was decoded
    assert len(received["image"]) == COUNT and len(received["metrics"]) >= COUNT


def test_each_topic_decodes(live_link):
    received = live_link["received"]
    for _, symbols in received["constellation"]:
        assert symbols.dtype == np.complex64 and symbols.size >= 128 and np.isfinite(symbols).all()
    labels = {}
    for meta, text in received["metrics"]:
        assert json.loads(bytes(text)) == {k: v for k, v in meta.items() if k != "topic"}
        if "psnr_db" in meta:
            assert meta["psnr_db"] > 20 and 0 <= meta["label"] <= 9   # the mean garment scores 10.9
            labels[meta["seq"]] = meta["label"]
    for meta, pixels in received["image"]:
        assert (meta["width"], meta["height"]) == (28, 28) and pixels.dtype == np.float32 and pixels.size == 784
        assert 0.0 <= pixels.min() and pixels.max() <= 1.0 and meta["label"] == labels[meta["seq"]]
    for meta, text in received["state"]:
        state = json.loads(bytes(text))
        assert state == {k: v for k, v in meta.items() if k != "topic"} and "processed" in state


def test_png_tap_carries_the_label(live_link):
    labels = {m["seq"]: m["label"] for m, _ in live_link["received"]["metrics"] if "psnr_db" in m}
    assert len(live_link["images"]) == COUNT
    for topic, payload in live_link["images"]:
        image, text = taps.decode(topic, payload)
        assert image.shape == (28, 28) and int(text["label"]) == labels[int(text["seq"])]


def test_stock_pdu_blocks_split_the_topics_into_streams(live_link):
    received, streams = live_link["received"], live_link["streams"]
    symbols, _ = streams["constellation"]
    assert np.array_equal(symbols, np.concatenate([v for _, v in received["constellation"]]))
    pixels, tags = streams["image"]
    assert pixels.size == 784 * COUNT and len(tags) == COUNT  # one tagged 784-sample burst per image
    text, tags = streams["metrics"]
    offsets = [t.offset for t in tags] + [text.size]
    records = [json.loads(text[a:b].astype(np.uint8).tobytes()) for a, b in zip(offsets, offsets[1:])]
    assert [r.get("seq") for r in records] == [m.get("seq") for m, _ in received["metrics"]]
