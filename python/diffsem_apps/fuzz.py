"""`diffsem fuzz`: hostile PDUs into every block with a message input, then one good PDU each.

For each block (its message ports; the hier blocks' inner ports too) it posts `--pdus` generated
messages across PMT types: every uniform vector type, empty and huge vectors, NaN/Inf, lists,
vectors, tuples, dicts, pairs of the wrong shape, atoms, and PDUs whose payload is right but
whose metadata has wrong types, out-of-range integers (u64 >= 2^63, negative seq), non-symbol
keys and deep nesting. It then posts a good PDU that must come out right. It prints one JSON line
per block and a total: PDUs sent, deaths (a port whose message thread stopped: the good PDU is
never handled), stalls (the good PDU handled but its output missing or wrong) and the block's
counters by kind. Exit status 1 if any block died or stalled.

It is a benchmark-style run (figures, not a test); tests/blocks/test_fuzz_pdus.py runs a short
seeded version.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np

# --- hostile message generator (PMT) -------------------------------------------------------------

_UV = ("u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64", "c32", "c64")
_DT = {"u8": np.uint8, "s8": np.int8, "u16": np.uint16, "s16": np.int16, "u32": np.uint32, "s32": np.int32,
       "u64": np.uint64, "s64": np.int64, "f32": np.float32, "f64": np.float64, "c32": np.complex64,
       "c64": np.complex128}
KNOWN_KEYS = ("seq", "label", "snr_db", "noise_var", "k", "reason", "block", "t_src", "decoder", "status",
              "packet_len", "index")


class Hostile:
    """Generates hostile PMT messages; `sizes` are payload sizes that pass a port's size check
    (so some messages reach deep into the handler)."""

    def __init__(self, rng: np.random.Generator, huge: int = 1 << 16):
        import pmt
        self.pmt, self.rng, self.huge = pmt, rng, huge

    def uvector(self, kind=None, n=None, finite=False):
        pmt, rng = self.pmt, self.rng
        kind = kind or _UV[rng.integers(len(_UV))]
        if n is None:
            n = int(rng.choice([0, 1, 2, 3, 7, 48, 64, 128, 784, 1000, 4096]))
            if rng.random() < 0.002:
                n = self.huge
        dt = np.dtype(_DT[kind])
        if dt.kind in "ui":
            info = np.iinfo(dt)
            x = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        else:
            x = rng.standard_normal(n) * float(rng.choice([1e-3, 1.0, 1e30]))
            if dt.kind == "c":
                x = x + 1j * rng.standard_normal(n)
            x = x.astype(dt)
            if not finite and n and rng.random() < 0.3:
                x[rng.integers(n, size=max(1, n // 8))] = rng.choice([np.nan, np.inf, -np.inf])
        return getattr(pmt, f"init_{kind}vector")(n, x if n > 1 else x.tolist())

    def atom(self):
        pmt, rng = self.pmt, self.rng
        choice = int(rng.integers(14))
        return [
            lambda: pmt.from_long(int(rng.integers(-2**63, 2**63 - 1, endpoint=True))),
            lambda: pmt.from_uint64(int(rng.integers(2**63, 2**64 - 1, endpoint=True, dtype=np.uint64))),
            lambda: pmt.from_double(float(rng.choice([np.nan, np.inf, -np.inf, 1e308, -0.0, 0.5]))),
            lambda: pmt.from_complex(complex(rng.standard_normal(), np.nan)),
            lambda: pmt.intern("x" * int(rng.choice([0, 1, 100, 10000]))),
            lambda: pmt.from_bool(bool(rng.integers(2))),
            lambda: pmt.PMT_NIL,
            lambda: pmt.from_long(-1),
            lambda: pmt.from_long(int(rng.integers(0, 5000))),
            lambda: pmt.from_double(float(rng.standard_normal())),
            lambda: self.uvector(),
            lambda: pmt.make_dict(),
            lambda: pmt.list2(pmt.from_long(1), pmt.intern("a")),
            lambda: pmt.make_vector(int(rng.integers(0, 4)), pmt.from_double(np.nan)),
        ][choice]()

    def value(self, depth=0):
        pmt, rng = self.pmt, self.rng
        r = rng.random()
        if depth < 3 and r < 0.08:
            return self.meta(depth + 1)
        if depth < 3 and r < 0.14:
            return pmt.cons(self.value(depth + 1), self.value(depth + 1))
        if depth < 3 and r < 0.18:
            n = int(rng.integers(0, 5))
            t = pmt.make_vector(n, pmt.PMT_NIL)
            for i in range(n):
                pmt.vector_set(t, i, self.value(depth + 1))
            return t
        if depth < 3 and r < 0.2:
            return pmt.make_tuple(self.value(depth + 1), self.value(depth + 1))
        return self.atom()

    def key(self):
        pmt, rng = self.pmt, self.rng
        r = rng.random()
        if r < 0.6:
            return pmt.intern(KNOWN_KEYS[rng.integers(len(KNOWN_KEYS))])
        if r < 0.85:
            return pmt.intern(f"k{int(rng.integers(100))}")
        return self.atom()  # non-symbol key: an int, NaN, a vector, ...

    def meta(self, depth=0, valid_seq=None):
        pmt, rng = self.pmt, self.rng
        d = pmt.make_dict()
        for _ in range(int(rng.integers(0, 6))):
            d = pmt.dict_add(d, self.key(), self.value(depth))
        if valid_seq is not None:
            d = pmt.dict_add(d, pmt.intern("seq"), pmt.from_long(valid_seq))
        return d

    def deep(self, levels):
        pmt = self.pmt
        d = pmt.from_long(1)
        for _ in range(levels):
            d = pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), d)
        return d

    def message(self, shapes=()):
        """One hostile message; `shapes`: [(uvector kind, size)] a port accepts as payload."""
        pmt, rng = self.pmt, self.rng
        r = rng.random()
        if shapes and r < 0.25:   # right payload, hostile metadata (reaches the handler's depths)
            kind, n = shapes[rng.integers(len(shapes))]
            seq = int(rng.integers(0, 5000)) if rng.random() < 0.5 else None
            return pmt.cons(self.meta(valid_seq=seq), self.uvector(kind, n, finite=rng.random() < 0.7))
        if r < 0.55:              # a PDU of any vector type
            return pmt.cons(self.meta(), self.uvector())
        if r < 0.62:              # a dict as the message (what a notice/metrics port expects)
            return self.meta()
        if r < 0.72:              # pairs of the wrong shape
            return pmt.cons(self.value(), self.value())
        if r < 0.74:
            return pmt.cons(self.deep(int(rng.integers(5, 40))), self.uvector())
        if r < 0.80:
            return pmt.list3(self.meta(), self.uvector(), self.atom())
        return self.value()       # anything else


# --- targets ---------------------------------------------------------------------------------------

class _Probe:
    """A message sink that counts what arrives and keeps the latest message (never all of them)."""

    def __new__(cls):
        import threading
        from collections import deque

        import pmt
        from gnuradio import gr

        class Probe(gr.basic_block):
            def __init__(self):
                gr.basic_block.__init__(self, "diffsem_fuzz_probe", None, None)
                self.count, self.lock = 0, threading.Lock()
                self.recent = deque(maxlen=256)
                self.message_port_register_in(pmt.intern("in"))
                self.message_port_register_out(pmt.intern("out"))  # feeds a port: puts it in the flowgraph
                self.set_msg_handler(pmt.intern("in"), self._handle)

            def _handle(self, msg):
                with self.lock:
                    self.count += 1
                    self.recent.append(msg)

            def wait_for(self, accept, timeout):
                """The first recent message `accept(msg)` is true of, waiting up to `timeout` s."""
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    with self.lock:
                        recent = list(self.recent)
                    for msg in recent:
                        try:
                            if accept(msg):
                                return msg
                        except Exception:  # noqa: BLE001 - a message the check cannot read is not it
                            pass
                    time.sleep(0.01)
                return None
        return Probe()


class Target:
    """One block under fuzz: the top block, the ports (name -> (basic block, port, shapes)), and
    `check(port)`: posts a good message there and says whether the right thing came out."""

    def __init__(self, name, tb, ports, check, stats, keep=()):
        self.name, self.tb, self.ports, self.check, self.stats, self.keep = name, tb, ports, check, stats, keep


def _image_pdu(seq, label=3, fill=0.5):
    from gnuradio.diffsem.harness import image_pdu
    img = np.full((28, 28), fill, np.float32)
    img[4:24, 10:18] = 1.0
    return image_pdu({"seq": seq, "label": label, "t_src": time.time()}, img)


def _symbols_pdu(seq, k, snr_db=20.0, noise=True):
    from gnuradio.diffsem.harness import make_pdu
    rng = np.random.default_rng(seq)
    x = ((rng.standard_normal(k) + 1j * rng.standard_normal(k)) / np.sqrt(2)).astype(np.complex64)
    meta = {"seq": seq, "snr_db": snr_db}
    if noise:
        meta["noise_var"] = np.full(k, 10 ** (-snr_db / 10), np.float32)
    return make_pdu(meta, x)


def _seq_of_msg(msg):
    import pmt
    from gnuradio.diffsem.harness import pmt_to_py
    if msg is None:
        return None
    meta = pmt_to_py(pmt.car(msg) if pmt.is_pair(msg) and not pmt.is_dict(msg) else msg)
    return meta.get("seq") if isinstance(meta, dict) else None


def build_targets(models_dir: str, k: int, steps: int, only=None, tmp: str | None = None):
    """The fuzz targets (built lazily, one at a time, by the generator)."""
    import pmt
    from gnuradio import blocks as grblocks
    from gnuradio import gr

    from gnuradio import diffsem

    tmp = tmp or tempfile.mkdtemp(prefix="diffsem_fuzz_")
    kept = []

    def probe(tb, block, port):
        p = _Probe()
        tb.msg_connect(block, port, p, "in")
        kept.append(p)  # msg_connect keeps no Python reference: a collected probe would crash the run
        return p

    def semantic_encoder():
        tb = gr.top_block()
        b = diffsem.semantic_encoder(k=k, models_dir=models_dir, provider="cpu")
        out = probe(tb, b, "out")
        probe(tb, b, "drops")

        def check(port):
            b.to_basic_block()._post(pmt.intern("in"), _image_pdu(777))
            return out.wait_for(lambda m: _seq_of_msg(m) == 777 and pmt.length(pmt.cdr(m)) == k, 20) is not None
        return Target("semantic_encoder", tb, {"in": (b, "in", [("f32", 784), ("f32", 784), ("u8", 784)])},
                      check, b.stats, keep=(b, out))

    def diffusion_decoder():
        tb = gr.top_block()
        b = diffsem.diffusion_decoder(k=k, mode="diffusion", steps=steps, models_dir=models_dir, provider="cpu")
        out = probe(tb, b, "out")
        probe(tb, b, "drops")
        probe(tb, b, "state")

        def check(port):
            b.wait_idle(30)
            b.to_basic_block()._post(pmt.intern("in"), _symbols_pdu(778, k))
            return out.wait_for(lambda m: _seq_of_msg(m) == 778 and pmt.length(pmt.cdr(m)) == 784, 30) is not None
        return Target("diffusion_decoder", tb, {"in": (b, "in", [("c32", k), ("c32", k), ("c64", k)])},
                      check, b.stats, keep=(b, out))

    def image_sink():
        tb = gr.top_block()
        b = diffsem.image_sink(folder=f"{tmp}/sink", save_pngs=False, mosaic_every=0)

        def check(port):
            if port == "in":
                b.to_basic_block()._post(pmt.intern("in"), _image_pdu(779))
                end = time.monotonic() + 10
                while time.monotonic() < end:
                    latest = b.latest()
                    if latest is not None and latest[0].get("seq") == 779:
                        return True
                    time.sleep(0.01)
                return False
            b.to_basic_block()._post(pmt.intern("ref"), _image_pdu(780))
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if 780 in b._references:
                    return True
                time.sleep(0.01)
            return False
        shapes = [("f32", 784)]
        return Target("image_sink", tb, {"in": (b, "in", shapes), "ref": (b, "ref", shapes)}, check, b.stats,
                      keep=(b,))

    def link_metrics():
        tb = gr.top_block()
        b = diffsem.link_metrics(classifier_card="none")
        out = probe(tb, b, "metrics")
        probe(tb, b, "reference")
        seqs = iter(range(3000, 4000))

        def check(port):
            b.wait_idle(30)
            seq = next(seqs)
            if port == "drops":
                notice = pmt.dict_add(pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(seq)),
                                      pmt.intern("reason"), pmt.intern("queue_full"))
                b.to_basic_block()._post(pmt.intern("drops"), notice)
                return out.wait_for(lambda m: pmt_to_py_dict(m).get("seq") == seq
                                    and pmt_to_py_dict(m).get("dropped") == "queue_full", 10) is not None
            sent = b.accounting()["sent"]
            b.to_basic_block()._post(pmt.intern("ref"), _image_pdu(seq))
            # the ports are separate queues: let the reference land before its decoded frame, as on
            # a link (a frame handled before its reference is counted unmatched, never scored)
            deadline = time.monotonic() + 20
            while b.accounting()["sent"] == sent and time.monotonic() < deadline:
                time.sleep(0.005)
            b.to_basic_block()._post(pmt.intern("in"), _image_pdu(seq, fill=0.4))
            return out.wait_for(lambda m: pmt_to_py_dict(m).get("seq") == seq
                                and pmt_to_py_dict(m).get("psnr_db") is not None, 20) is not None
        shapes = [("f32", 784)]
        return Target("link_metrics", tb, {"ref": (b, "ref", shapes), "in": (b, "in", shapes),
                                           "drops": (b, "drops", [])},
                      check, lambda: {**b.accounting(), "guarded": _rej(b)}, keep=(b, out))

    def zmq_taps():
        tb = gr.top_block()
        b = diffsem.zmq_taps(address="tcp://127.0.0.1:0")
        topic = {"constellation": "constellation", "metrics": "metrics", "image": "image", "state": "state"}

        def good(port):
            if port == "constellation":
                return _symbols_pdu(1, k, noise=False)
            if port == "image":
                return _image_pdu(781)
            return pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(782))

        def check(port):
            before = b.stats()["sent"].get(topic[port], 0)
            b.to_basic_block()._post(pmt.intern(port), good(port))
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if b.stats()["sent"].get(topic[port], 0) > before:
                    return True
                time.sleep(0.01)
            return False
        ports = {"constellation": (b, "constellation", [("c32", k)]), "metrics": (b, "metrics", []),
                 "image": (b, "image", [("f32", 784)]), "state": (b, "state", [])}
        return Target("zmq_taps", tb, ports, check, lambda: {**b.stats(), "guarded": _rej(b)}, keep=(b,))

    def ofdm_analog_tx():
        tb = gr.top_block()
        b = diffsem.ofdm_analog_tx()
        tb.connect(b, grblocks.null_sink(gr.sizeof_gr_complex))

        def check(port):
            before = b.emitted()[0]
            b.framer.to_basic_block()._post(pmt.intern("in"), _symbols_pdu(5, 128, noise=False))
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if b.emitted()[0] > before:
                    return True
                time.sleep(0.01)
            return False
        return Target("ofdm_analog_tx", tb, {"in": (b.framer, "in", [("c32", 48), ("c32", 128), ("c32", 1777)])},
                      check, b.stats, keep=(b,))

    def digital_link_tx():
        tb = gr.top_block()
        b = diffsem.digital_link_tx(k=k, mode="qpsk-1/2")
        tb.connect(b, grblocks.null_sink(gr.sizeof_gr_complex))

        def check(port):
            before = b.phy.emitted()[0]
            b.framer.to_basic_block()._post(pmt.intern("in"), _image_pdu(6))
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if b.phy.emitted()[0] > before:
                    return True
                time.sleep(0.01)
            return False
        return Target("digital_link_tx", tb, {"in": (b.framer, "in", [("f32", 784), ("u8", 784)])},
                      check, lambda: {**b.stats(), "guarded": _rej(b.framer)}, keep=(b,))

    def digital_link_rx():
        tb = gr.top_block()
        b = diffsem.digital_link_rx(k=k, mode="qpsk-1/2")
        # a stream that never ends (and costs little): the flowgraph must keep running
        tb.connect(grblocks.null_source(gr.sizeof_gr_complex), grblocks.throttle(gr.sizeof_gr_complex, 1000), b)
        out = probe(tb, b.imager, "out")
        seqs = iter(range(100, 4000, 7))

        def check(port):
            seq = next(seqs)
            meta = {"seq": seq}
            from gnuradio.diffsem.harness import dict_to_pmt
            if port == "demapper":
                b.demapper.to_basic_block()._post(pmt.intern("in"), _symbols_pdu(seq, k))
            elif port == "imager_in":
                b.imager.to_basic_block()._post(pmt.intern("in"), pmt.cons(dict_to_pmt(meta),
                                                                          pmt.init_u8vector(0, [])))
            else:
                b.imager.to_basic_block()._post(pmt.intern(port.split("_")[1]),
                                                pmt.cons(dict_to_pmt(meta), pmt.init_u8vector(0, [])))
            return out.wait_for(lambda m: _seq_of_msg(m) == seq, 10) is not None
        ports = {"demapper": (b.demapper, "in", [("c32", k)]), "imager_in": (b.imager, "in", [("u8", 512)]),
                 "imager_bad": (b.imager, "bad", [("u8", 0)]), "imager_idle": (b.imager, "idle", [("u8", 0)])}
        return Target("digital_link_rx", tb, ports, check,
                      lambda: {**b.stats(), "guarded": {**_rej(b.demapper), **_rej(b.imager)}}, keep=(b, out))

    def symbol_checker():
        tb = gr.top_block()
        b = diffsem.symbol_checker(n_symbols=k, report_every=0)
        b.keep_records = False
        probe(tb, b, "stats")
        probe(tb, b, "ack")

        def check(port):
            before = b.stats()["frames"]
            from diffsem.phy import reference_symbols
            from gnuradio.diffsem.harness import make_pdu
            x = reference_symbols(b.seed, 9, k)
            b.to_basic_block()._post(pmt.intern("in"), make_pdu(
                {"seq": 9, "snr_db": 20.0, "noise_var": np.full(k, 0.01, np.float32)}, x))
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if b.stats()["frames"] > before:
                    return True
                time.sleep(0.01)
            return False
        return Target("symbol_checker", tb, {"in": (b, "in", [("c32", k)])}, check,
                      lambda: {**b.stats(), "guarded": _rej(b)}, keep=(b,))

    def symbol_source():
        tb = gr.top_block()
        b = diffsem.symbol_source(n_symbols=k, n_frames=1, frames_per_s=0)
        probe(tb, b, "out")
        probe(tb, b, "done")

        def check(port):  # "ack" only returns credits: alive = the good ack is taken off its queue
            b.to_basic_block()._post(pmt.intern("ack"), pmt.PMT_T)
            return _drained([(b, "ack")], 10)
        return Target("symbol_source", tb, {"ack": (b, "ack", [])}, check, lambda: {"guarded": _rej(b)}, keep=(b,))

    def _counted(counters, key, post_good):
        def check(port):
            before = counters()[key]
            post_good()
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if counters()[key] > before:
                    return True
                time.sleep(0.01)
            return False
        return check

    def burst_filler():
        from diffsem_apps.endpoints import burst_filler as filler
        tb = gr.top_block()
        b = filler(max_queue=64)
        tb.connect(b, grblocks.throttle(gr.sizeof_gr_complex, 1e6), grblocks.null_sink(gr.sizeof_gr_complex))
        good = _symbols_pdu(3, 400, noise=False)
        check = _counted(b.stats, "bursts_in", lambda: b.to_basic_block()._post(pmt.intern("pdus"), good))
        return Target("burst_filler", tb, {"pdus": (b, "pdus", [("c32", 400)])}, check,
                      lambda: {**b.stats(), "guarded": _rej(b)}, keep=(b,))

    def sigmf_recorder():
        from diffsem_apps.endpoints import sigmf_recorder as recorder
        tb = gr.top_block()
        b = recorder(f"{tmp}/fuzz_rec", 1e6, frame_samples=lambda n: 80 * n, max_samples=1000)
        tb.connect(grblocks.null_source(gr.sizeof_gr_complex), grblocks.throttle(gr.sizeof_gr_complex, 1e5), b)
        from gnuradio.diffsem.harness import dict_to_pmt
        good = pmt.cons(dict_to_pmt({"sample_offset": 10, "n_symbols": 128, "seq": 4, "snr_db": 12.0}),
                        pmt.init_c32vector(1, [0j]))
        check = _counted(b.counters.snapshot, "frames", lambda: b.to_basic_block()._post(pmt.intern("frames"), good))
        return Target("sigmf_recorder", tb, {"frames": (b, "frames", [("c32", 128)])}, check,
                      lambda: {**b.counters.snapshot(), "guarded": _rej(b)}, keep=(b,))

    makers = {"semantic_encoder": semantic_encoder, "diffusion_decoder": diffusion_decoder,
              "image_sink": image_sink, "link_metrics": link_metrics, "zmq_taps": zmq_taps,
              "ofdm_analog_tx": ofdm_analog_tx, "digital_link_tx": digital_link_tx,
              "digital_link_rx": digital_link_rx, "symbol_checker": symbol_checker, "symbol_source": symbol_source,
              "burst_filler": burst_filler, "sigmf_recorder": sigmf_recorder}
    for name, make in makers.items():
        if only and name not in only:
            continue
        yield name, make


def pmt_to_py_dict(msg) -> dict:
    import pmt
    from gnuradio.diffsem.harness import pmt_to_py
    value = pmt_to_py(msg if pmt.is_dict(msg) else pmt.car(msg))
    return value if isinstance(value, dict) else {}


def _rej(block) -> dict:
    from gnuradio.diffsem.harness import rejections
    return rejections(block).snapshot()


def _drained(ports, timeout) -> bool:
    """True once the ports' queues are empty; False when they stop shrinking for `timeout` s."""
    import pmt
    last, since = None, time.monotonic()
    while True:
        left = sum(b.to_basic_block().nmsgs(pmt.intern(p)) for b, p in ports)
        if left == 0:
            return True
        now = time.monotonic()
        if last is None or left < last:
            last, since = left, now
        elif now - since > timeout:
            return False
        time.sleep(0.005)


def fuzz_target(target: Target, n_pdus: int, seed: int, chunk: int = 256, drain_timeout: float = 20.0) -> dict:
    """Posts n_pdus hostile messages spread over the target's ports, then checks each port with a
    good message. Returns the figures."""
    import pmt
    gen = Hostile(np.random.default_rng(seed))
    names = list(target.ports)
    feeders = []
    for block, port, _ in target.ports.values():  # a block only message-connected to nothing never runs
        feeder = _Probe()
        target.tb.msg_connect(feeder, "out", block, port)
        feeders.append(feeder)
    t0 = time.monotonic()
    target.tb.start()
    sent = dict.fromkeys(names, 0)
    stalls, deaths = [], []
    try:
        for i in range(n_pdus):
            name = names[i % len(names)]
            block, port, shapes = target.ports[name]
            block.to_basic_block()._post(pmt.intern(port), gen.message(shapes))
            sent[name] += 1
            if (i + 1) % chunk == 0 and not _drained([(block, port)], drain_timeout):
                break  # a port that no longer takes messages: reported as a death below
        for name in names:
            block, port, _ = target.ports[name]
            if not _drained([(block, port)], drain_timeout):
                deaths.append(name)
            elif not target.check(name):
                stalls.append(name)
    finally:
        seconds = time.monotonic() - t0
        stats = target.stats()
        target.tb.stop()
        target.tb.wait()
    return {"block": target.name, "pdus": sum(sent.values()), "ports": sent, "deaths": deaths, "stalls": stalls,
            "seconds": round(seconds, 1), "pdus_per_s": round(sum(sent.values()) / max(seconds, 1e-9)),
            "counters": _jsonable(stats)}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else str(value)
    return value if isinstance(value, (int, str, bool)) or value is None else str(value)


def fuzz_all(models_dir="", k=128, steps=2, pdus=100_000, seed=0, only=None, out=sys.stdout) -> dict:
    """Fuzz every target; prints one JSON line per block and returns the total."""
    total = {"blocks": 0, "pdus": 0, "deaths": 0, "stalls": 0, "seed": seed}
    for i, (name, make) in enumerate(build_targets(models_dir, k, steps, only)):
        row = fuzz_target(make(), pdus, seed + i)
        total["blocks"] += 1
        total["pdus"] += row["pdus"]
        total["deaths"] += len(row["deaths"])
        total["stalls"] += len(row["stalls"])
        if out is not None:
            print(json.dumps(row), file=out, flush=True)
    if out is not None:
        print(json.dumps({"total": total}), file=out, flush=True)
    return total


def add_arguments(parser):
    from diffsem import args as checks
    parser.add_argument("--pdus", type=checks.positive_int, default=100_000,
                        help="hostile PDUs per block (default 100000)")
    parser.add_argument("--seed", type=checks.nonnegative_int, default=0)
    parser.add_argument("--k", type=checks.positive_int, default=128, help="symbols per image (models' k)")
    parser.add_argument("--steps", type=int, choices=(1, 2, 4), default=2, help="diffusion decoder steps")
    parser.add_argument("--models-dir", default="", help="folder of ONNX models + cards (default models/)")
    parser.add_argument("--only", nargs="+", metavar="BLOCK", help="fuzz only these blocks")


def run(args) -> int:
    total = fuzz_all(args.models_dir, args.k, args.steps, args.pdus, args.seed, args.only)
    return 0 if total["deaths"] == 0 and total["stalls"] == 0 else 1
