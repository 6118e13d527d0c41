"""The TX app never drops an image it was given: a finite source waits for the encoder, and the
app exits only after the last burst has left the ZMQ sink. A subscriber in the test counts the
bursts on air (runs of samples after a gap of zeros)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIN_GAP = 64  # zeros between bursts: the TX pads 4 OFDM symbols (320 samples) on each side


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BurstCounter(threading.Thread):
    """ZMQ SUB on the TX's stream; counts bursts until `stop` is set."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(address)
        self.stop = threading.Event()
        self.bursts = self.samples = 0
        self._zeros = 1 << 40

    def run(self):
        while not self.stop.is_set() or self.sock.poll(0):
            if not self.sock.poll(50):
                continue
            x = np.frombuffer(self.sock.recv(), np.complex64)
            self.samples += x.size
            idx = np.flatnonzero(x != 0)
            if idx.size == 0:
                self._zeros += x.size
                continue
            gaps = np.diff(np.concatenate(([-self._zeros - 1], idx))) - 1
            self.bursts += int(np.count_nonzero(gaps >= MIN_GAP))
            self._zeros = x.size - 1 - int(idx[-1])
        self.sock.close(0)
        self.ctx.term()


def run_tx(*argv, timeout=180):
    address = f"tcp://127.0.0.1:{free_port()}"
    counter = BurstCounter(address)
    counter.start()
    proc = subprocess.run([sys.executable, "-m", "diffsem_apps.cli", "tx", "--sink", "zmq", "--address", address,
                           "--linger", "0.2", *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    counter.stop.set()
    counter.join(30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), counter


@pytest.mark.parametrize("argv, count", [(("--samp-rate", "8e6", "--count", "600", "--rate", "0"), 600),
                                         (("--count", "200"), 200)])
def test_every_image_goes_on_air(argv, count):
    rep, counter = run_tx(*argv)
    images = rep["images"]
    assert counter.bursts == count, (counter.bursts, rep)
    assert images["read"] == images["encoded"] == images["on_air"] == count, images
    assert images["dropped"] == 0 and images["in_flight"] == 0, images
    assert rep["filler"]["bursts_out"] == count and rep["filler"]["dropped"] == 0


def test_looping_beacon_counts_what_it_drops():
    """A loop keeps its pace (no back-pressure): its report still accounts for every image read."""
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "diffsem_apps.cli", "tx", "--sink", "zmq", "--address", address,
                             "--count", "8", "--loop", "--rate", "200", "--start-delay", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        threading.Event().wait(6.0)
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    images = json.loads(out.strip().splitlines()[-1])["images"]
    assert images["read"] > 8
    assert images["read"] == images["on_air"] + images["dropped"] + images["in_flight"]
    assert images["dropped"] == sum(images["dropped_by_reason"].values())
