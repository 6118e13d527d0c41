"""link_metrics: per-frame quality of the semantic link against the reference image (matched by
sequence number), running averages, and frame accounting.

In  "ref":   image PDUs as sent (connect image_source "out"): the references, and the count sent.
In  "in":    decoded image PDUs (diffusion_decoder "out").
In  "drops": drop notices {"seq", "reason", "block"} from semantic_encoder / diffusion_decoder.
Out "reference": the reference image PDU of each decoded frame, emitted with its metrics in the
             meta (a GUI shows it next to the reconstruction: same seq, no latency offset).
Out "metrics": one dict per frame: {"seq", "label", "pred", "correct", "psnr_db", "ssim",
             "snr_est_db", "latency_ms" (decoder), "e2e_latency_ms" (source emit -> decoder
             output), "decoder", the decoder's "predicted_psnr_db" and "reliability" when it
             sends them, the receiver's "interfered_carriers" and "erased" where nonzero,
             running means "avg_psnr_db", "avg_ssim", "accuracy" (over the decoded frames),
             and the accounting counters}; a dropped frame gives {"seq", "dropped":
             reason, counters}; a lost frame the decoder filled gives its record with "filled".
             A metadata value of the wrong type (a string "erased", a list "t_src") is left out
             of the record, never the record; `unscored` in the summary counts the decoded
             frames whose record was lost all the same (metrics queue full, a scoring error).

Accounting (sent = decoded + unmatched + crc_dropped + queue_dropped + bad_input + failed + missing) and the
matching of a received 12-bit seq to its reference are diffsem.link.accounting's. crc_dropped
comes from the receiver's own counters: pass the ofdm_analog_rx block as `rx` (its stats() is
read) or call set_crc_counter(callable).
PSNR on [0,1] per image (capped at 100 dB), SSIM from scikit-image, classifier verdict from the
in-project Fashion-MNIST classifier (models/classifier_onnx.json) — diffsem.metrics conventions.
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np
import pmt
from gnuradio import gr

from diffsem import metrics as qm
from diffsem.runtime import inference, naming
from diffsem.data import CLASSES
from diffsem.link.accounting import COUNTERS, ReferenceBook, crc_count_from_stats, drop_counter, settle
from diffsem.link.seq import seq_of

from ._pdu import BadPdu, RateLimitedLog, block_logger, dict_to_pmt, guarded, image_pdu, parse_image_pdu, pmt_to_py
from diffsem.link.pdu import validate_notice


def _number(value, kind=float):
    """kind(value) for a finite real number (not a bool), else None: metadata from the air or a
    foreign block is not trusted to have the type the record wants."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return kind(value) if np.isfinite(value) else None


class link_metrics(gr.basic_block):
    """Score decoded images against the references and keep the frame accounting.

    classifier_card: "" = models/classifier_onnx.json; "none" disables the classifier verdict.
    keep_images: keep each reconstruction in `records` (the demo builds its mosaic from them).
    rx: the ofdm_analog_rx block (or a callable returning it, or None): its stats() give the
        CRC-dropped count.
    max_records: per-frame records kept in `records` (the latest; a bounded window, so a long
        run's memory stays flat). Averages and counters are running totals over the whole run;
        latency percentiles are over the last LATENCY_WINDOW frames.
    """

    LATENCY_WINDOW = 2048

    def __init__(self, classifier_card="", models_dir="", keep_images=False, rx=None, name="link",
                 max_records=16384):
        gr.basic_block.__init__(self, name="link_metrics", in_sig=None, out_sig=None)
        self.log = block_logger(self, "link_metrics")
        self.warn = RateLimitedLog(self.log)
        self.link_name = str(name)
        self.keep_images = bool(keep_images)
        self.classifier = None
        if str(classifier_card).lower() != "none":
            path = naming.resolve_card(classifier_card or "classifier_onnx", "classifier", 0, None,
                                          models_dir or None)
            try:
                self.classifier = inference.load_model(path, "cpu", threads=1)
            except Exception as exc:  # metrics without a verdict beat no metrics: say so once
                self.log.warn(f"link_metrics: no classifier verdicts ({exc})")
        # `rx` may be the block or a callable returning it (GRC builds blocks in its own order)
        self._crc_counter = None
        if rx is not None:
            def rx_dropped():
                block = rx if hasattr(rx, "stats") else rx()
                return crc_count_from_stats(block.stats())
            self._crc_counter = rx_dropped
        self._lock = threading.Lock()
        self.references = ReferenceBook()
        self.records: deque[dict] = deque(maxlen=max(1, int(max_records)))
        self._latencies = inference.SampleWindow(self.LATENCY_WINDOW)  # allocated now: flat memory
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._sums = {"psnr_db": 0.0, "ssim": 0.0, "correct": 0, "classified": 0}
        # metrics run on a worker too (SSIM + classifier per batch), never on the message thread
        self.worker = inference.InferenceWorker(self._score, self._publish, max_queue=1 << 16, max_batch=32,
                                                drop_policy="newest", name="link_metrics",
                                                on_drop=lambda item, reason: self._count_unscored(reason))
        self._unscored = 0
        for port in ("ref", "in", "drops"):
            self.message_port_register_in(pmt.intern(port))
        self.set_msg_handler(pmt.intern("ref"), self._on_ref)
        self.set_msg_handler(pmt.intern("in"), self._on_decoded)
        self.set_msg_handler(pmt.intern("drops"), self._on_drop)
        self.message_port_register_out(pmt.intern("metrics"))
        self.message_port_register_out(pmt.intern("reference"))
        self._last = {}

    def set_crc_counter(self, counter):
        self._crc_counter = counter

    def start(self):
        self.worker.start()
        return True

    def stop(self):
        self.worker.stop(drain=True, timeout=5.0)
        return True

    # --- inputs (message thread) ---------------------------------------------------------------
    @guarded("ref")
    def _on_ref(self, msg):
        try:
            meta, image = parse_image_pdu(msg)
        except BadPdu:
            self.counters["bad_pdu"] += 1
            raise
        seq = seq_of(meta)
        with self._lock:
            self.counters["sent"] += 1
            if seq is not None:
                label = _number(meta.get("label", -1), int)
                self.references.add(seq, (image, -1 if label is None else label, _number(meta.get("t_src")), meta))

    @guarded("in")
    def _on_decoded(self, msg):
        try:
            meta, image = parse_image_pdu(msg)
        except BadPdu:
            self.counters["bad_pdu"] += 1
            raise
        if meta.get("filled"):  # a lost frame shown as the decoder's fill: still lost, scored apart
            with self._lock:
                seq, ref = self.references.find(seq_of(meta))
                self.counters["filled"] += 1
            self.worker.submit((seq, meta, image, ref))
            return
        with self._lock:
            seq, ref = self.references.take(seq_of(meta))
            # with a reference stream, a frame without its reference (older than the reference
            # window, or a seq never sent) is unmatched, never decoded: it cannot be scored.
            # Without one (nothing sent on "ref"), every frame out of the decoder is decoded.
            unmatched = ref is None and self.counters["sent"]
            self.counters["unmatched" if unmatched else "decoded"] += 1
            if meta.get("salvaged") and not unmatched:
                self.counters["salvaged"] += 1
        if ref is None and self.counters["sent"]:
            self.warn("unmatched", f"link_metrics: decoded seq {seq} has no reference")
        self.worker.submit((seq, meta, image, ref))

    @guarded("drops")
    def _on_drop(self, msg):
        try:  # garbage here is no drop of a sent frame: never counted as "failed"
            if not pmt.is_dict(msg):
                raise BadPdu(f"drop notice is not a dict: {str(msg)[:60]}", "notice_type")
            seq, reason, block = validate_notice(pmt_to_py(msg))
        except BadPdu:
            self.counters["bad_pdu"] += 1
            raise
        reason = reason.split(":")[0]
        key = drop_counter(reason)
        with self._lock:
            if self.counters["sent"]:  # the frame it names is accounted for now
                if seq is None:  # names no frame (garbage into the decoder): a sent one stays missing
                    found = False
                elif block == "semantic_encoder":
                    found = self.references.discard(seq)
                else:  # the decoder names the 12-bit header seq
                    found = self.references.take(seq)[1] is not None
                if not found:  # a notice for no frame sent (or one accounted already)
                    self.counters["drops_unmatched"] += 1
                    key = None
            if key is not None:
                self.counters[key] += 1
        record = {"seq": seq, "dropped": reason, "block": block, **self.accounting()}
        self.message_port_pub(pmt.intern("metrics"), dict_to_pmt({k: v for k, v in record.items() if v is not None}))

    # --- worker -------------------------------------------------------------------------------------
    def _score(self, items):
        with_ref = [i for i, (_, _, _, ref) in enumerate(items) if ref is not None]
        out = [{} for _ in items]
        if with_ref:
            recons = np.stack([items[i][2] for i in with_ref])[:, None]
            refs = np.stack([items[i][3][0] for i in with_ref])[:, None]
            psnr, ssim = qm.psnr(recons, refs), qm.ssim(recons, refs)
            preds = None
            if self.classifier is not None:
                preds = np.argmax(self.classifier(image=recons.astype(np.float32))["logits"], axis=1)
            for j, i in enumerate(with_ref):
                out[i] = {"psnr_db": float(psnr[j]), "ssim": float(ssim[j])}
                if preds is not None:
                    out[i]["pred"] = int(preds[j])
        return out

    def _publish(self, item, scores, info):
        seq, meta, image, ref = item
        record = {"seq": seq, "link": self.link_name, "decoder": meta.get("decoder"),
                  "snr_est_db": meta.get("snr_db"), "latency_ms": meta.get("latency_ms"),
                  "batch_size": meta.get("batch_size"), **scores}
        for key in ("predicted_psnr_db", "reliability"):  # the decoder's own estimate, no original needed
            if _number(meta.get(key)) is not None:
                record[key] = _number(meta[key])
        for key in ("interfered_carriers", "erased"):  # what the receiver could not trust (its meta, where nonzero)
            if _number(meta.get(key), int):
                record[key] = _number(meta[key], int)
        if ref is not None:
            _, label, t_src, ref_meta = ref
            record["label"] = label
            record["index"] = _number(ref_meta.get("index"), int)
            t_dec_out = _number(meta.get("t_dec_out"))
            if t_src is not None and t_dec_out is not None:
                record["t_src"], record["t_dec_out"] = t_src, t_dec_out
                record["e2e_latency_ms"] = (record["t_dec_out"] - record["t_src"]) * 1e3
            if "pred" in scores and label >= 0:
                record["correct"] = bool(scores["pred"] == label)
                record["pred_class"] = CLASSES[scores["pred"]]
        decoded = not meta.get("filled")  # the running means and latencies are the decoded frames
        if not decoded:
            record["filled"] = True
        with self._lock:
            if "psnr_db" in scores and decoded:
                self._sums["psnr_db"] += scores["psnr_db"]
                self._sums["ssim"] += scores["ssim"]
                self._sums["scored"] = self._sums.get("scored", 0) + 1
            if "correct" in record and decoded:
                self._sums["classified"] += 1
                self._sums["correct"] += int(record["correct"])
            if record.get("e2e_latency_ms") is not None and decoded:
                self._latencies.append(record["e2e_latency_ms"])
            stored = dict(record)
            if self.keep_images:
                stored["image"] = image
            self.records.append(stored)
        record.update(self.summary())
        record.update(self.accounting())
        self._last = record
        if ref is not None:
            shown = {k: record[k] for k in ("seq", "label", "snr_est_db", "psnr_db", "predicted_psnr_db", "reliability",
                                            "ssim", "correct", "pred_class",
                                            "e2e_latency_ms", "avg_psnr_db", "accuracy") if record.get(k) is not None}
            self.message_port_pub(pmt.intern("reference"), image_pdu(shown, ref[0]))
        self.message_port_pub(pmt.intern("metrics"), dict_to_pmt({k: v for k, v in record.items() if v is not None}))

    # --- reporting -----------------------------------------------------------------------------------
    def accounting(self) -> dict:
        """sent = decoded + unmatched + crc_dropped + queue_dropped + bad_input + failed + in_flight (+ lost)."""
        with self._lock:
            c = dict(self.counters)
            pending = len(self.references)
        crc = 0
        if self._crc_counter is not None:
            try:
                crc = int(self._crc_counter())
            except Exception as exc:
                self.warn("crc_counter", f"link_metrics: cannot read the receiver's CRC counter: {exc}")
        return settle(c, crc, pending)

    def _count_unscored(self, reason):
        with self._lock:
            self._unscored += 1
        self.warn("unscored", f"link_metrics: a decoded frame's record was lost ({reason})")

    def summary(self) -> dict:
        with self._lock:
            n = self._sums.get("scored", 0)
            out = {"frames_scored": n, "unscored": self._unscored + self.worker.counters.get("emit_failed", 0),
                   "avg_psnr_db": self._sums["psnr_db"] / n if n else None,
                   "avg_ssim": self._sums["ssim"] / n if n else None,
                   "accuracy": (self._sums["correct"] / self._sums["classified"]) if self._sums["classified"] else None}
            lat = self._latencies.values()
        if lat.size:
            out["e2e_latency_ms_p50"] = float(np.percentile(lat, 50))
            out["e2e_latency_ms_p99"] = float(np.percentile(lat, 99))
        return out

    def last(self, key: str, default=0.0):
        """The latest frame's value of `key` (e.g. "snr_est_db", "psnr_db"): for GUI probes."""
        value = self._last.get(key)
        return default if value is None else value

    def wait_idle(self, timeout=None) -> bool:
        return self.worker.wait_idle(timeout)
