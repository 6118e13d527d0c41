"""image_source: Fashion-MNIST test images or a folder of PNGs -> image PDUs.

Image PDU (the format every semantic block reads and writes): (meta dict, f32vector of 784
pixels in [0, 1], row-major 28x28). Meta carries at least "seq" (uint64, one per image, the key
the metrics use to find the reference) and, from this block, "index" (position in the data
set / folder), "label" (Fashion-MNIST class, -1 when unknown), "name" (PNG file name, folders
only) and "t_src" (wall-clock time the PDU was emitted, s since the epoch).
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from diffsem import images as imglib

from ._pdu import block_logger, dict_to_pmt, image_pdu

SOURCES = ("fashion-mnist",)


# --- the block ------------------------------------------------------------------------------------

def load_images(source: str, split: str = "test", first: int = 0, count: int = 16):
    """(images [N,28,28], labels [N], names [N]) from Fashion-MNIST or a folder of image files."""
    if source in SOURCES or not source:
        from diffsem import data

        all_images, all_labels = data.load(split)
        first = int(first)
        if not 0 <= first < len(all_images):
            raise ValueError(f"image_source: first index {first} outside the {split} split (0..{len(all_images) - 1})")
        stop = len(all_images) if count <= 0 else min(first + int(count), len(all_images))
        return (all_images[first:stop, 0], all_labels[first:stop].astype(np.int64),
                [f"{split}[{i}]" for i in range(first, stop)])
    imgs, names = imglib.read_folder(source, strict=True)  # ImageReadError names the bad file
    imgs = imgs[int(first):]
    names = names[int(first):]
    if count > 0:
        imgs, names = imgs[:count], names[:count]
    if not len(imgs):
        raise ValueError(f"image_source: no images left in {source} after skipping {first}")
    return imgs[:, 0], np.full(len(imgs), -1, np.int64), names


class image_source(gr.basic_block):
    """Emit image PDUs (see module doc) on port "out" at `rate` images/s (0: all at once).

    source: "fashion-mnist" (split/first/count choose the images) or a folder of image files,
    converted to 28x28 grayscale (an unreadable file is a construction error naming it).
    loop: start again from the first image after the last (seq keeps increasing).
    A "done" message (a dict with "sent") goes out on port "done" after the last image when
    not looping, so a headless flowgraph knows the source is finished.

    Back-pressure (set_flow_control): message ports cannot push back, so a finite source sending
    faster than its consumers would overflow their queues (the encoder drops the oldest frame).
    Given a callable that says how many of its images are still on their way downstream, a
    finite source waits while `window` of them are, and never loses an image it was given. A
    looping source (a beacon) keeps its pace instead and leaves the dropping to the queues.
    """

    def __init__(self, source="fashion-mnist", split="test", first=0, count=16, loop=False, rate=10.0,
                 start_delay=0.0, first_seq=0):
        gr.basic_block.__init__(self, name="image_source", in_sig=None, out_sig=None)
        self.log = block_logger(self, "image_source")
        self.images, self.labels, self.names = load_images(source, split, first, count)
        # Each image's "name" goes out as a PMT symbol, and PMT interns symbols for the life of the
        # process (~100 bytes each, never freed). Interned here, all at once, the symbol table is
        # full before the first image: a run's memory stays flat instead of growing by one symbol
        # per new image (1 MB over the 10 000 test images: a 20 image/s soak's first 8 minutes).
        for name in self.names:
            pmt.intern(str(name))
        self.first_index = int(first)
        self.loop, self.rate, self.start_delay = bool(loop), float(rate), float(start_delay)
        self.next_seq = int(first_seq)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = None
        self._done = threading.Event()
        self._in_flight = None
        self._window = 0
        self.waited_s = 0.0  # time spent waiting for the consumers (back-pressure)
        self.message_port_register_out(pmt.intern("out"))
        self.message_port_register_out(pmt.intern("done"))

    def reference(self, i: int):
        return self.images[i], int(self.labels[i])

    def start(self):
        self._stop.clear()
        self._done.clear()
        self._thread = threading.Thread(target=self._run, name="image_source", daemon=True)
        self._thread.start()
        return True

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        return True

    def finished(self) -> bool:
        return self._done.is_set()

    def wait_done(self, timeout=None) -> bool:
        return self._done.wait(timeout)

    def set_flow_control(self, in_flight, window: int = 16):
        """Wait before each image while `in_flight()` (images sent and not yet consumed or
        accounted for downstream) is `window` or more. Ignored when looping."""
        if window < 1:
            raise ValueError("image_source: flow-control window must be >= 1")
        self._in_flight, self._window = in_flight, int(window)

    def _wait_for_room(self) -> bool:
        """False when stopped while waiting."""
        if self._in_flight is None or self.loop:
            return True
        t0 = time.monotonic()
        while self._in_flight() >= self._window:
            if self._stop.wait(0.002):
                return False
        self.waited_s += time.monotonic() - t0
        return True

    def _run(self):
        if self.start_delay > 0 and self._stop.wait(self.start_delay):
            return
        period = 1.0 / self.rate if self.rate > 0 else 0.0
        t_next = time.monotonic()
        i = 0
        while not self._stop.is_set():
            if i == len(self.images):
                if not self.loop:
                    break
                i = 0
            if not self._wait_for_room():
                break
            meta = {"seq": self.next_seq, "index": self.first_index + i,
                    "label": int(self.labels[i]), "name": self.names[i], "t_src": time.time()}
            self.message_port_pub(pmt.intern("out"), image_pdu(meta, self.images[i]))
            self.next_seq += 1
            self.sent += 1
            i += 1
            if period:
                t_next += period
                delay = t_next - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
        self._done.set()
        self.message_port_pub(pmt.intern("done"), dict_to_pmt({"sent": self.sent}))

    # GRC callbacks
    def set_rate(self, rate):
        self.rate = float(rate)
