"""semantic_encoder: image PDU -> symbol PDU through the ONNX encoder (worker thread, batching).

In  "in":  image PDU (meta, f32vector[784] in [0,1]).
Out "out": symbol PDU (meta + "k", "t_enc_in", "enc_latency_ms"; c32vector[k], unit average
           power), ready for ofdm_analog_tx. Meta (seq, label, ...) passes through.
Out "drops": one dict per frame that did not make it ({"seq", "reason", "block"}): bad input
           PDUs, queue overflow, a failed batch. link_metrics counts them.
"""
from __future__ import annotations

import time

import pmt
from gnuradio import gr

from diffsem.runtime import inference, naming

from ._pdu import BadPdu, RateLimitedLog, block_logger, dict_to_pmt, guarded, make_pdu, parse_image_pdu, rejections, seq_of


class semantic_encoder(gr.basic_block):
    """Encode image PDUs into k unit-power complex symbols with the ONNX encoder.

    The model is models/encoder_k{k}.json unless `card` names another card (a path, or a name in
    `models_dir`). It is checked against its card (sha256, I/O) when the block is built: a
    missing or tampered model is a construction error, so a flowgraph never starts with it.
    provider: auto (TensorRT -> CUDA -> CPU, whichever this onnxruntime offers) or force one of
    tensorrt/cuda/cpu (an unavailable forced provider is a construction error).
    snr_db: the SNR an SNR-adaptive encoder is told to design for; the receiver's
    diffusion_decoder must be given the same (its encoder_snr_db).
    """

    def __init__(self, k=128, card="", models_dir="", provider="auto", snr_db=inference.DESIGN_SNR_DB, max_queue=64,
                 max_batch=8, drop_policy="oldest", threads=1):
        gr.basic_block.__init__(self, name="semantic_encoder", in_sig=None, out_sig=None)
        self.log = block_logger(self, "semantic_encoder")
        self.warn = RateLimitedLog(self.log)
        self.k = int(k)
        self.card_path = naming.resolve_card(card or None, "encoder", self.k, None, models_dir or None)
        self.model = inference.load_model(self.card_path, provider, threads=int(threads) or None,
                                          max_batch=max(int(max_batch), 1))
        card_k = self.model.card.get("k")
        if card_k is not None and int(card_k) != self.k:
            raise ValueError(f"semantic_encoder: k={self.k} but {self.card_path} is a k={card_k} encoder")
        self.provider = self.model.provider
        self.model.warm_up(max(int(max_batch), 1))  # every batch shape now: memory flat from the first frame
        self.log.info(f"encoder {self.model.name} on {self.provider}")
        self.encode = inference.FrameEncoder(self.model, snr_db)
        self.bad_input = 0
        self.worker = inference.InferenceWorker(
            self.encode, self._emit, max_queue=int(max_queue), max_batch=int(max_batch),
            drop_policy=drop_policy, on_drop=self._on_drop, name="semantic_encoder")
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.message_port_register_out(pmt.intern("drops"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def start(self):
        self.worker.start()
        return True

    def stop(self):
        self.worker.stop(drain=False, timeout=2.0)
        return True

    @guarded("in")
    def _handle(self, msg):
        try:
            meta, image = parse_image_pdu(msg)
        except BadPdu:
            self.bad_input += 1
            self._drop_notice(None, "bad_input")
            raise  # counted by kind and logged (rate-limited) by @guarded
        meta["t_enc_in"] = time.time()
        self.worker.submit(inference.EncodeRequest(image, meta))

    def _emit(self, request, symbols, info):
        meta = dict(request.meta)
        meta.update(k=self.k, enc_latency_ms=info["latency_ms"])
        self.message_port_pub(pmt.intern("out"), make_pdu(meta, symbols))

    def _on_drop(self, request, reason):
        self.warn(reason.split(":")[0], f"semantic_encoder: dropped seq {seq_of(request.meta)}: {reason}")
        self._drop_notice(seq_of(request.meta), reason)

    def _drop_notice(self, seq, reason):
        notice = {"seq": -1 if seq is None else seq, "reason": reason, "block": "semantic_encoder"}
        self.message_port_pub(pmt.intern("drops"), dict_to_pmt(notice))

    def wait_idle(self, timeout=None) -> bool:
        return self.worker.wait_idle(timeout)

    def stats(self) -> dict:
        return {**self.worker.stats(), "bad_input": self.bad_input, "rejected": rejections(self).snapshot(), "provider": self.provider}
