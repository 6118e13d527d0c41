"""`diffsem monitor` survives a hostile publisher: malformed JSON, JSON of the wrong type, fields
of the wrong type, non-PNG, oversized and decompression-bomb images, constellations of the wrong
byte count are each counted and shown as a warning, and the next good message is displayed."""
import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from diffsem.images import encode_png
from diffsem.link import taps
from diffsem.link.monitor import Monitor

ROOT = Path(__file__).resolve().parents[2]


def _png_header_only(width, height):
    """A PNG whose header claims width x height (a 400-Mpx image in a few bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return taps.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _bomb():
    from PIL import Image
    buf = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buf, "PNG")  # 16 Mpx of zeros: ~16 kB on the wire
    return buf.getvalue()


GOOD_METRICS = {"seq": 42, "decoder": "diffusion s2", "psnr_db": 21.5, "ssim": 0.8, "sent": 43, "decoded": 43}
HOSTILE = [
    (b"metrics", b"[1, 2, 3]", "json_type"), (b"metrics", b'"a string"', "json_type"),
    (b"metrics", b"{not json", "bad_json"), (b"state", b"\xff\xfe", "bad_json"),
    (b"image", b"GIF89a....", "not_png"), (b"image", _png_header_only(20000, 20000), "image_too_large"),
    (b"image", _bomb(), "image_too_large"), (b"image", taps.PNG_SIGNATURE + b"garbage", "bad_png"),
    (b"constellation", b"\0" * 7, "constellation_bytes"), (b"constellation", b"\0" * (5 << 20), "oversized"),
    (b"weird", b"x", "unknown_topic"),
]


def test_each_hostile_message_is_counted_and_the_next_good_one_shown(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    mon = Monitor(save=tmp_path, out=out, err=err, warn_interval=3600)
    for topic, payload, _ in HOSTILE:
        assert mon.handle([topic, payload]) is False
    assert mon.handle([b"metrics"]) is False                                              # one frame only
    assert mon.handle([b"metrics", json.dumps({"seq": {"a": 1}, "correct": [1], "psnr_db": "x"}).encode()])
    assert mon.handle([b"state", json.dumps({"dropped_queue": [1], "failed": {"x": 2}}).encode()]) is False
    assert mon.handle([b"metrics", json.dumps({"dropped": {"x": 1}, "seq": None}).encode()]) is False
    kinds = {kind for _, _, kind in HOSTILE}
    assert kinds | {"frames"} <= set(mon.bad), mon.bad
    assert sum(mon.bad.values()) == len(HOSTILE) + 1
    assert len(err.getvalue().strip().splitlines()) == len(kinds) + 1  # one warning line per kind
    # the next good messages are shown
    assert mon.handle([b"metrics", taps.encode_json(GOOD_METRICS)])
    image = np.linspace(0, 1, 784, dtype=np.float32).reshape(28, 28)
    mon.handle([b"image", encode_png(image, text={"seq": 42})])
    assert "seq     42" in out.getvalue().strip().splitlines()[-1]
    assert (tmp_path / "latest.png").exists() and json.loads((tmp_path / "latest.json").read_text())["seq"] == "42"


def test_the_monitor_process_outlives_a_hostile_publisher():
    zmq = pytest.importorskip("zmq")
    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    proc = subprocess.Popen([sys.executable, "-m", "diffsem_apps.cli", "monitor", "--address",
                             f"tcp://127.0.0.1:{port}", "--count", "1", "--timeout", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:  # until the subscriber has joined and seen it
            for topic, payload, _ in HOSTILE:
                pub.send_multipart([topic, payload])
            pub.send_multipart([b"metrics", taps.encode_json(GOOD_METRICS)])
            time.sleep(0.2)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close(0)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert "seq     42" in out
    assert "warning: ignoring a message" in err


def test_a_monitor_that_heard_nothing_says_so_and_fails(capsys, monkeypatch):
    """A wrong address or a link not running: after NOTHING_S it says nothing came and from where,
    and with --timeout it exits 1, not 0 as if it had watched a link."""
    import argparse
    import socket

    from diffsem.link import monitor
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # nothing publishes here
    parser = argparse.ArgumentParser()
    monitor.add_arguments(parser)
    monkeypatch.setattr(monitor, "NOTHING_S", 0.2)
    assert monitor.run(parser.parse_args(["--address", f"tcp://127.0.0.1:{port}", "--timeout", "0.6"])) == 1
    err = capsys.readouterr().err
    assert f"nothing received from tcp://127.0.0.1:{port}" in err and "no message received" in err
