"""The inference worker (bounded queue, batching, counted drops, latency) and the encoder/decoder
batch callables over tiny exported ONNX models. No GNU Radio here.

The models are support.export_tiny_models' (the conftest fixture `tiny_models`).
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from support import TINY_K

from diffsem.runtime import inference, naming
from diffsem.runtime.inference import DecodeRequest, EncodeRequest, FrameDecoder, FrameEncoder, InferenceWorker

# --- the worker ----------------------------------------------------------------------------------

def _collecting_worker(process, **kw):
    results, drops = [], []

    def emit(item, result, info):
        results.append((item, result, info))

    worker = InferenceWorker(process, emit, on_drop=lambda item, why: drops.append((item, why)), **kw)
    return worker, results, drops


def test_batches_frames_that_wait_and_keeps_order():
    gate = threading.Event()
    batches = []

    def process(items):
        gate.wait(5)
        batches.append(list(items))
        return [x * 10 for x in items]

    worker, results, drops = _collecting_worker(process, max_queue=32, max_batch=4)
    worker.start()
    for i in range(9):
        worker.submit(i)
    time.sleep(0.05)  # the first item is taken alone; the rest pile up behind the gate
    gate.set()
    assert worker.wait_idle(5)
    worker.stop()
    assert [r for _, r, _ in results] == [10 * i for i in range(9)]
    assert max(len(b) for b in batches) == 4  # batching happened, capped at max_batch
    assert sum(len(b) for b in batches) == 9
    s = worker.stats()
    assert s["processed"] == 9 and s["dropped_queue"] == 0 and s["batches"] == len(batches)
    assert [info["batch_size"] for _, _, info in results] == [len(b) for b in batches for _ in b]
    assert s["latency_ms_p50"] is not None and s["latency_ms_p99"] >= s["latency_ms_p50"] > 0


@pytest.mark.parametrize("policy,kept", [("oldest", [0, 7, 8, 9]), ("newest", [0, 1, 2, 3])])
def test_full_queue_drops_by_policy_and_counts_every_frame(policy, kept):
    gate = threading.Event()

    def process(items):
        gate.wait(5)
        return list(items)

    worker, results, drops = _collecting_worker(process, max_queue=3, max_batch=8, drop_policy=policy)
    worker.start()
    worker.submit(0)
    deadline = time.monotonic() + 2
    while worker.stats()["queue_depth"] and time.monotonic() < deadline:
        time.sleep(0.005)  # item 0 is in flight (blocked on the gate)
    for i in range(1, 10):
        worker.submit(i)
    gate.set()
    assert worker.wait_idle(5)
    worker.stop()
    got = sorted(item for item, _, _ in results)
    assert got == kept
    assert sorted(item for item, _ in drops) == sorted(set(range(10)) - set(kept))
    assert all(why == "queue_full" for _, why in drops)
    s = worker.stats()
    assert s["submitted"] == 10 and s["processed"] + s["dropped_queue"] == 10


def test_a_failing_batch_is_counted_and_the_worker_carries_on():
    def process(items):
        if any(x < 0 for x in items):
            raise ValueError("bad frame")
        return items

    worker, results, drops = _collecting_worker(process, max_queue=8, max_batch=1)
    worker.start()
    for x in (1, -1, 2):
        worker.submit(x)
    assert worker.wait_idle(5)
    worker.stop()
    assert [item for item, _, _ in results] == [1, 2]
    assert drops == [(-1, "error: bad frame")]
    assert worker.stats()["failed"] == 1


def test_an_emit_that_raises_is_counted_and_the_rest_of_the_batch_goes_out():
    out = []

    def emit(item, result, info):
        if item == 2:
            raise TypeError("a record field of the wrong type")
        out.append(item)

    worker = InferenceWorker(lambda items: items, emit, max_queue=8, max_batch=8)
    for x in (1, 2, 3):
        worker.submit(x)
    worker.start()
    assert worker.wait_idle(5)
    worker.stop()
    assert out == [1, 3] and worker.stats()["emit_failed"] == 1


def test_submit_never_blocks_while_inference_is_slow():
    worker, results, drops = _collecting_worker(lambda items: (time.sleep(0.2), items)[1], max_queue=2)
    worker.start()
    t0 = time.perf_counter()
    for i in range(50):
        worker.submit(i)
    elapsed = time.perf_counter() - t0
    worker.stop(drain=False)
    assert elapsed < 0.1  # 50 submits while one batch takes 0.2 s
    assert worker.stats()["dropped_queue"] >= 45


def test_stop_without_drain_counts_what_was_left():
    gate = threading.Event()
    worker, results, drops = _collecting_worker(lambda items: (gate.wait(5), items)[1], max_queue=10, max_batch=1)
    worker.start()
    for i in range(5):
        worker.submit(i)
    time.sleep(0.05)
    threading.Timer(0.1, gate.set).start()
    worker.stop(drain=False)
    assert len(results) + len(drops) == 5
    assert {why for _, why in drops} <= {"stopped"}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="drop_policy"):
        InferenceWorker(lambda x: x, lambda *a: None, drop_policy="random")
    with pytest.raises(ValueError):
        InferenceWorker(lambda x: x, lambda *a: None, max_queue=0)


# --- encoder / decoder callables over the ONNX contract --------------------------------------------

def test_encode_decode_roundtrip_through_tiny_onnx_models(tiny_models):
    from diffsem.data import load

    images, _ = load("test")
    enc = FrameEncoder(inference.load_model(tiny_models / f"encoder_k{TINY_K}.json", "cpu"))
    symbols = enc([EncodeRequest(images[i, 0]) for i in range(3)])
    assert symbols[0].dtype == np.complex64 and symbols[0].shape == (TINY_K,)
    assert np.allclose([np.mean(np.abs(s) ** 2) for s in symbols], 1.0, atol=1e-4)  # unit power

    requests = [DecodeRequest(s, 30.0, np.full(TINY_K, 1e-3, np.float32), seq=i) for i, s in enumerate(symbols)]
    djscc = FrameDecoder(inference.load_model(tiny_models / f"deepjscc_k{TINY_K}.json", "cpu"), TINY_K, "deepjscc")
    student = FrameDecoder(inference.load_model(tiny_models / f"student_k{TINY_K}_s2.json", "cpu"), TINY_K,
                           "diffusion", seed=7)
    a, b = djscc(requests), student(requests)
    assert a[0].shape == (28, 28) and 0 <= a[0].min() and a[0].max() <= 1
    # the student's source noise depends on (seed, seq) only, not on how frames were batched
    alone = student(requests[1:2])[0]
    assert np.allclose(alone, b[1], atol=1e-6)
    assert not np.allclose(b[0], student([DecodeRequest(symbols[0], 30.0, requests[0].noise_var, seq=99)])[0])
    with pytest.raises(ValueError, match="noise"):
        FrameDecoder(inference.load_model(tiny_models / f"deepjscc_k{TINY_K}.json", "cpu"), TINY_K, "diffusion")


def test_check_decode_inputs_names_the_problem():
    k = 8
    ok = np.ones(k, np.complex64)
    assert inference.check_decode_inputs(ok, np.ones(k), 10.0, k) is None
    assert "expected 8 symbols" in inference.check_decode_inputs(np.ones(5, np.complex64), None, 10.0, k)
    assert "NaN" in inference.check_decode_inputs(np.full(k, np.nan, np.complex64), None, 10.0, k)
    assert "noise variances" in inference.check_decode_inputs(ok, np.ones(3), 10.0, k)
    assert "snr_db" in inference.check_decode_inputs(ok, None, float("nan"), k)


def test_resolve_card_names_the_shipped_models(tmp_path):
    assert naming.resolve_card(None, "diffusion", 128, 2, tmp_path) == tmp_path / "student_k128_s2.json"
    assert naming.resolve_card(None, "deepjscc", 32, None, tmp_path) == tmp_path / "deepjscc_k32.json"
    assert naming.resolve_card("custom", "deepjscc", 32, None, tmp_path) == tmp_path / "custom.json"
    with pytest.raises(ValueError, match="steps"):
        naming.resolve_card(None, "diffusion", 128, 3, tmp_path)


def test_the_latency_window_is_allocated_up_front_and_keeps_the_latest():
    w = inference.SampleWindow(4)
    assert len(w) == 0 and w.values().size == 0
    for x in range(1, 4):
        w.append(x)
    assert w.values().tolist() == [1, 2, 3]
    before = w._ring
    for x in range(4, 11):
        w.append(x)
    assert w._ring is before and w.maxlen == 4  # the same buffer: memory flat from the first sample
    assert len(w) == 4 and w.values().tolist() == [7, 8, 9, 10]
