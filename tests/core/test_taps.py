"""ZMQ taps: a plain pyzmq subscriber (no GNU Radio import) decodes every topic, a slow
subscriber never blocks the publisher (drops are counted), and images/PNG folders convert."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zmq

from diffsem import images
from diffsem.link import taps


def _subscriber(endpoint, topics=(b"",)):
    sock = zmq.Context.instance().socket(zmq.SUB)
    for t in topics:
        sock.subscribe(t)
    sock.connect(endpoint)
    return sock


def _recv(sock, timeout_ms=2000):
    assert sock.poll(timeout_ms), "nothing arrived on the tap"
    return sock.recv_multipart()


def _wait_for_subscription(pub, sock, topic):
    # PUB/SUB drops what is sent before the subscription reaches the publisher ("slow joiner"):
    # publish probes until one arrives.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pub.publish(topic, b"{}" if topic in ("metrics", "state") else b"")
        if sock.poll(50):
            sock.recv_multipart()
            while sock.poll(20):
                sock.recv_multipart()
            return
    raise AssertionError("subscription never reached the publisher")


def test_each_topic_decodes_with_plain_pyzmq():
    with taps.TapPublisher("tcp://127.0.0.1:0") as pub:
        assert pub.endpoint.startswith("tcp://127.0.0.1:")
        sock = _subscriber(pub.endpoint, [t.encode() for t in taps.TOPICS])
        _wait_for_subscription(pub, sock, "state")

        symbols = (np.arange(10) + 1j * np.arange(10)[::-1]).astype(np.complex64)
        assert pub.publish_constellation(symbols)
        topic, payload = _recv(sock)
        assert topic == b"constellation" and len(payload) == 80
        assert np.array_equal(np.frombuffer(payload, np.complex64), symbols)  # raw complex64, GR-readable

        assert pub.publish_metrics({"seq": 3, "psnr_db": np.float32(21.5), "ssim": float("nan"), "snr": 10})
        topic, payload = _recv(sock)
        msg = json.loads(payload)  # plain JSON, NaN -> null so strict parsers accept it
        assert topic == b"metrics" and msg == {"seq": 3, "psnr_db": 21.5, "ssim": None, "snr": 10}

        img = np.linspace(0, 1, 784, dtype=np.float32).reshape(28, 28)
        assert pub.publish_image(img, seq=42, kind="reconstruction", label="Coat")
        topic, payload = _recv(sock)
        assert topic == b"image" and payload[:8] == b"\x89PNG\r\n\x1a\n"
        decoded, text = taps.decode(topic, payload)
        assert decoded.shape == (28, 28) and np.abs(decoded - img).max() <= 0.5 / 255 + 1e-6
        assert text == {"kind": "reconstruction", "seq": "42", "label": "Coat"}

        assert pub.publish_state({"queue_depth": 0, "provider": "cpu"})
        topic, payload = _recv(sock)
        assert taps.decode(topic, payload) == {"queue_depth": 0, "provider": "cpu"}
        assert pub.stats()["dropped"] == {}
        sock.close(0)


def test_topic_filtering_by_prefix():
    with taps.TapPublisher("tcp://127.0.0.1:0") as pub:
        sock = _subscriber(pub.endpoint, [b"metrics"])
        _wait_for_subscription(pub, sock, "metrics")
        pub.publish_constellation(np.ones(4, np.complex64))
        pub.publish_metrics({"seq": 1})
        topic, payload = _recv(sock)
        assert topic == b"metrics" and json.loads(payload) == {"seq": 1}
        assert not sock.poll(100)
        sock.close(0)


def test_slow_subscriber_never_blocks_and_drops_are_counted():
    with taps.TapPublisher("tcp://127.0.0.1:0", sndhwm=4) as pub:
        sock = _subscriber(pub.endpoint)
        sock.setsockopt(zmq.RCVHWM, 4)
        _wait_for_subscription(pub, sock, "constellation")
        sent_before = pub.sent["constellation"]  # the subscription probes
        payload = np.zeros(4096, np.complex64)  # 32 KiB per message, never read
        t0 = time.perf_counter()
        results = [pub.publish_constellation(payload) for _ in range(2000)]
        elapsed = time.perf_counter() - t0
        assert elapsed < 5.0  # would hang forever if send blocked
        stats = pub.stats()
        assert stats["dropped"]["constellation"] > 0
        # every call is either sent or counted as dropped
        assert stats["sent"]["constellation"] - sent_before == sum(results)
        assert stats["dropped"]["constellation"] == 2000 - sum(results)
        sock.close(0)


def test_no_subscriber_is_fine_and_closed_publisher_counts():
    pub = taps.TapPublisher("tcp://127.0.0.1:0")
    assert all(pub.publish_metrics({"seq": i}) for i in range(100))
    pub.close()
    assert not pub.publish_metrics({"seq": 100})
    assert pub.stats()["dropped"] == {"metrics": 1}


def test_bind_conflict_is_a_clear_error():
    with taps.TapPublisher("tcp://127.0.0.1:0") as pub:
        with pytest.raises(OSError, match="cannot bind"):
            taps.TapPublisher(pub.endpoint)


def test_decode_rejects_garbage():
    with pytest.raises(ValueError, match="complex64"):
        taps.decode(b"constellation", b"123")
    with pytest.raises(ValueError, match="unknown tap topic"):
        taps.decode(b"video", b"")


# --- images ----------------------------------------------------------------------------------------

def test_png_folder_converts_to_28x28_and_names_unreadable_files(tmp_path):
    from PIL import Image

    Image.new("RGB", (56, 40), (255, 255, 255)).save(tmp_path / "a_wide.png")
    Image.new("L", (28, 28), 128).save(tmp_path / "b_gray.png")
    (tmp_path / "c_broken.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    with pytest.raises(images.ImageReadError, match="c_broken.png"):
        images.read_folder(tmp_path)
    imgs, names = images.read_folder(tmp_path, strict=False)
    assert names == ["a_wide.png", "b_gray.png"] and imgs.shape == (2, 1, 28, 28) and imgs.dtype == np.float32
    wide = imgs[0, 0]
    assert wide[14, 14] == pytest.approx(1.0) and wide[0, 14] == 0.0  # aspect kept, letterboxed on black
    assert imgs[1, 0].mean() == pytest.approx(128 / 255, abs=1e-3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(images.ImageReadError, match="no image files"):
        images.read_folder(tmp_path / "empty")
    with pytest.raises(images.ImageReadError, match="not a folder"):
        images.read_folder(tmp_path / "missing")


def test_mosaic_and_png_roundtrip(tmp_path):
    tiles = [[np.zeros((28, 28)), np.ones((28, 28))], [None, np.full((28, 28), 0.5)]]
    grid = images.mosaic(tiles, pad=2)
    assert grid.shape == (2 * 30 + 2, 2 * 30 + 2)
    assert grid[2:30, 32:60].min() == 1.0 and grid[32:60, 2:30].min() == 1.0  # blank tile = fill
    path = images.save_png(tmp_path / "m.png", grid)
    back, _ = images.decode_png(path.read_bytes())
    assert np.abs(back - grid).max() <= 0.5 / 255 + 1e-6
    pil = images.labelled_mosaic(tiles, ["row A", "row B"], ["x", "y"])
    assert pil.width > grid.shape[1] * 3 and pil.height > grid.shape[0] * 3
    marked = np.asarray(images.labelled_mosaic(tiles, ["row A", "row B"], ["x", "y"], marked={(0, 0)}))
    plain = np.asarray(pil)
    changed = np.argwhere(marked != plain)  # a grey frame and a label, on tile (0, 0) only
    assert changed.size and (marked[tuple(changed.T)] == 128).any()
    assert changed[:, 1].max() < plain.shape[1] // 2 + 30 and changed[:, 0].max() < plain.shape[0] // 2 + 10
    with pytest.raises(ValueError, match="784"):
        images.as_image(np.zeros(100))


def test_this_test_module_runs_without_gnu_radio():
    import subprocess
    import sys

    code = ("import sys; import diffsem.link.taps, diffsem.images, zmq; "
            "assert not any(m.startswith('gnuradio') for m in sys.modules), 'GNU Radio imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_monitor_prints_a_line_per_frame_and_saves_the_latest_image(tmp_path, capsys):
    import argparse
    import threading

    from diffsem.link import monitor

    pub = taps.TapPublisher("tcp://127.0.0.1:0")
    stop = threading.Event()

    def publish():
        seq = 0
        while not stop.is_set():
            pub.publish_constellation(np.ones(8, np.complex64))
            pub.publish_image(np.full((28, 28), 0.5, np.float32), seq=seq)
            pub.publish_metrics({"seq": seq, "decoder": "diffusion s2", "psnr_db": 20.0 + seq, "ssim": 0.8,
                                 "correct": True, "pred_class": "Coat", "sent": seq + 1, "decoded": seq + 1})
            seq += 1
            time.sleep(0.05)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    parser = argparse.ArgumentParser()
    monitor.add_arguments(parser)
    args = parser.parse_args(["--address", pub.endpoint, "--save", str(tmp_path), "--count", "3", "--timeout", "10"])
    try:
        assert monitor.run(args) == 0
    finally:
        stop.set()
        thread.join()
        pub.close()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("seq")]
    assert len(lines) == 3 and "psnr" in lines[0] and "Coat ok" in lines[0]
    image, _ = images.decode_png((tmp_path / "latest.png").read_bytes())
    assert image.shape == (28, 28) and abs(image.mean() - 0.5) < 0.01
    assert np.load(tmp_path / "constellation.npy").dtype == np.complex64
    assert "DROPPED (queue_full" in monitor.format_metrics({"seq": 4, "dropped": "queue_full", "block": "d"})


def test_monitor_line_shows_the_receivers_reliability_estimate():
    from diffsem.link import monitor
    line = monitor.format_metrics({"seq": 7, "decoder": "deepjscc", "psnr_db": 21.3,
                                   "predicted_psnr_db": 20.84, "reliability": 0.62})
    assert "predicted 20.84" in line and "reliability 0.62" in line
    assert "(predicted -, reliability -)" in monitor.format_metrics({"seq": 8, "psnr_db": 20.0})   # older decoders: a dash
    filled = monitor.format_metrics({"seq": 9, "psnr_db": 10.9, "reliability": 0.0, "filled": True, "correct": True})
    assert "LOST, filled" in filled and "(predicted -, reliability 0.00)" in filled and "? ok" not in filled


def test_monitor_line_shows_what_the_receiver_could_not_trust():
    from diffsem.link import monitor
    line = monitor.format_metrics({"seq": 3, "psnr_db": 25.0, "interfered_carriers": 6, "erased": 48})
    assert line.endswith("interfered carriers 6  erased 48")
    assert "interfered" not in monitor.format_metrics({"seq": 4, "psnr_db": 25.0})   # a clean frame: nothing added
