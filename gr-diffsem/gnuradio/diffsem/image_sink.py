"""image_sink: writes received image PDUs as PNGs and keeps a running mosaic.

In "in": image PDUs. For each, `folder`/<prefix>_<seq:06d>.png (when save_pngs) and, every
`mosaic_every` images, `folder`/<prefix>_mosaic.png: the last `mosaic_size` images in a grid of
`mosaic_cols` columns (written atomically, so an image viewer can keep it open and refresh).
latest() returns (meta, image) of the most recent PDU for GUIs and tests. max_pngs > 0 caps the
folder: beyond it the oldest PNG this sink wrote is removed (counted as "pngs_removed").

In "ref" (optional): reference image PDUs (link_metrics "reference": the original of each decoded
frame, same seq). widget() returns a Qt widget showing the latest reconstruction next to its
original (QT GUI flowgraphs: the YAML's "Show in GUI" places it with a GUI hint).
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from pathlib import Path

import pmt
from gnuradio import gr

from diffsem import images as imglib

from ._pdu import BadPdu, RateLimitedLog, block_logger, guarded, parse_image_pdu, rejections, seq_of


class image_sink(gr.basic_block):
    def __init__(self, folder="out/images", prefix="rx", save_pngs=True, mosaic_every=16, mosaic_size=64,
                 mosaic_cols=8, scale=1, max_pngs=0):
        gr.basic_block.__init__(self, name="image_sink", in_sig=None, out_sig=None)
        self.log = block_logger(self, "image_sink")
        self.warn = RateLimitedLog(self.log)
        self.folder = Path(folder) if folder else None
        self.prefix, self.save_pngs, self.scale = str(prefix), bool(save_pngs), max(1, int(scale))
        self.mosaic_every, self.mosaic_cols = int(mosaic_every), max(1, int(mosaic_cols))
        self.recent = deque(maxlen=max(1, int(mosaic_size)))
        self.received = self.bad_input = self.write_errors = self.pngs_removed = 0
        self.max_pngs = max(0, int(max_pngs))
        self._written = OrderedDict()  # PNG paths written, oldest first (for the cap)
        self._latest = None
        self._references = {}
        self._recent_meta = deque(maxlen=8)
        self._lock = threading.Lock()
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)  # fail at build time, not per frame
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._handle)
        self.message_port_register_in(pmt.intern("ref"))
        self.set_msg_handler(pmt.intern("ref"), self._handle_ref)

    @guarded("ref")
    def _handle_ref(self, msg):
        try:
            meta, image = parse_image_pdu(msg)
        except BadPdu:
            self.bad_input += 1
            raise
        with self._lock:
            self._references[seq_of(meta)] = (meta, image)
            while len(self._references) > 256:  # only the latest few are ever shown
                self._references.pop(next(iter(self._references)))

    def latest_pair(self):
        """(meta, reconstruction, (reference meta, reference image) or None) of the newest image
        whose reference has arrived (its metrics come a moment after it), else of the newest."""
        with self._lock:
            if self._latest is None:
                return None
            for meta, image in reversed(self._recent_meta):
                ref = self._references.get(seq_of(meta))
                if ref is not None:
                    return meta, image, ref
            meta, image = self._latest
            return meta, image, None

    def widget(self, scale: int = 8, refresh_ms: int = 100):
        """A Qt widget (PyQt5) showing the latest reconstruction beside its original."""
        return _ImageView(self, scale, refresh_ms)

    @guarded("in")
    def _handle(self, msg):
        try:
            meta, image = parse_image_pdu(msg)
        except BadPdu:
            self.bad_input += 1
            raise
        seq = seq_of(meta)
        with self._lock:
            self._latest = (meta, image)
            self._recent_meta.append((meta, image))
            self.recent.append(image)
            self.received += 1
            n = self.received
        if self.folder is None:
            return
        try:
            if self.save_pngs:
                name = f"{self.prefix}_{seq:06d}.png" if seq is not None else f"{self.prefix}_n{n:06d}.png"
                path = self.folder / name
                path.write_bytes(imglib.encode_png(image, text={"seq": seq}, scale=self.scale))
                self._cap_folder(path)
            if self.mosaic_every > 0 and n % self.mosaic_every == 0:
                self.write_mosaic()
        except OSError as exc:  # full disk etc.: count and carry on, the link matters more
            self.write_errors += 1
            self.warn("write_error", f"image_sink: cannot write to {self.folder}: {exc}")

    def _cap_folder(self, path):
        if not self.max_pngs:
            return
        self._written[path] = None
        self._written.move_to_end(path)  # a name written again (a seq seen again) is the newest
        while len(self._written) > self.max_pngs:
            old, _ = self._written.popitem(last=False)
            old.unlink(missing_ok=True)
            self.pngs_removed += 1

    def write_mosaic(self):
        with self._lock:
            tiles = list(self.recent)
        if not tiles or self.folder is None:
            return None
        rows = [tiles[i:i + self.mosaic_cols] for i in range(0, len(tiles), self.mosaic_cols)]
        return imglib.save_png(self.folder / f"{self.prefix}_mosaic.png", imglib.mosaic(rows))

    def stop(self):
        if self.folder is not None and self.received:
            try:
                self.write_mosaic()
            except OSError as exc:
                self.log.warn(f"image_sink: final mosaic not written: {exc}")
        return True

    def latest(self):
        with self._lock:
            return self._latest

    def stats(self) -> dict:
        return {"received": self.received, "bad_input": self.bad_input, "write_errors": self.write_errors,
                "pngs_removed": self.pngs_removed,
                "rejected": rejections(self).snapshot()}


def _num(value, fmt):
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def _ImageView(sink, scale, refresh_ms):
    import numpy as np
    from PyQt5 import QtCore, QtGui, QtWidgets

    class ImageView(QtWidgets.QWidget):
        def __init__(self):
            super().__init__()
            layout = QtWidgets.QGridLayout(self)
            self.views, self.titles = [], []
            for col, title in enumerate(("original", "reconstruction")):
                caption = QtWidgets.QLabel(title)
                caption.setAlignment(QtCore.Qt.AlignCenter)
                view = QtWidgets.QLabel()
                view.setFixedSize(28 * scale, 28 * scale)
                view.setStyleSheet("background: black")
                layout.addWidget(caption, 0, col)
                layout.addWidget(view, 1, col)
                self.views.append(view)
                self.titles.append(caption)
            self.info = QtWidgets.QLabel("waiting for images")
            self.info.setStyleSheet("font-size: 12pt")
            self.info.setWordWrap(True)
            layout.addWidget(self.info, 2, 0, 1, 2)
            self.shown = None
            self.timer = QtCore.QTimer(self)
            self.timer.timeout.connect(self.refresh)
            self.timer.start(refresh_ms)

        def _show(self, view, image):
            pixels = np.ascontiguousarray(imglib.to_uint8(image))
            qimg = QtGui.QImage(pixels.data, 28, 28, 28, QtGui.QImage.Format_Grayscale8).copy()
            view.setPixmap(QtGui.QPixmap.fromImage(qimg).scaled(28 * scale, 28 * scale))

        def refresh(self):
            pair = sink.latest_pair()
            if pair is None or (pair[0].get("seq"), pair[2] is not None) == self.shown:
                return
            meta, image, ref = pair
            self.shown = (meta.get("seq"), ref is not None)
            self._show(self.views[1], image)
            text = [f"seq {meta.get('seq')}", str(meta.get("decoder", "")),
                    f"RX SNR {_num(meta.get('snr_db'), '.1f')} dB",
                    f"decoder latency {_num(meta.get('latency_ms'), '.0f')} ms"]
            if ref is not None:
                ref_meta, ref_image = ref
                self._show(self.views[0], ref_image)
                text[-1] += "\n"
                text += [f"PSNR {_num(ref_meta.get('psnr_db'), '.2f')} dB", f"SSIM {_num(ref_meta.get('ssim'), '.3f')}"]
                if "correct" in ref_meta:
                    text.append(f"{ref_meta.get('pred_class', '?')} {'ok' if ref_meta['correct'] else 'WRONG'}")
                if ref_meta.get("avg_psnr_db") is not None:
                    text.append(f"avg PSNR {_num(ref_meta.get('avg_psnr_db'), '.2f')} dB")
            self.info.setText("   ".join(text).replace("\n   ", "\n"))

    return ImageView()
