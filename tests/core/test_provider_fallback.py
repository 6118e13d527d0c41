"""provider="auto" on GPU machines, checked with a faked provider list and GPU (no GPU needed):
it picks TensorRT -> CUDA -> CPU and says so at WARNING level whenever it runs on less than it
asked for or than the machine offers."""
from __future__ import annotations

import logging

import numpy as np
import pytest

import diffsem
from diffsem.runtime import onnx_model as runtime
from diffsem.runtime.onnx_model import OnnxModel, PROVIDERS

# a faked GPU build makes onnxruntime (CPU build) warn that the GPU providers are not in it
pytestmark = pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")

GPU_BUILD = [PROVIDERS["tensorrt"], PROVIDERS["cuda"], PROVIDERS["cpu"]]


@pytest.fixture
def card():
    path = diffsem.models_dir() / "deepjscc_k32.json"
    if not path.exists():
        pytest.skip(f"{path} not shipped")
    return path


@pytest.fixture(autouse=True)
def fresh_log_memory(monkeypatch):
    monkeypatch.setattr(runtime, "_logged", set())  # "once per process" starts over in each test


def _inputs(model, batch=2):
    rng = np.random.default_rng(0)
    shapes = {n: [batch if d == "batch" else d for d in s["shape"]] for n, s in model.inputs.items()}
    return {n: rng.random(shape).astype(model.inputs[n]["dtype"]) for n, shape in shapes.items()}


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "diffsem.runtime"]


def test_auto_order_is_tensorrt_cuda_cpu():
    chain = runtime.resolve_providers("auto", list(reversed(GPU_BUILD)))
    assert [p[0] if isinstance(p, tuple) else p for p in chain] == GPU_BUILD


def test_gpu_present_but_cpu_build_warns(card, monkeypatch, caplog):
    monkeypatch.setattr(runtime, "available_providers", lambda: [PROVIDERS["cpu"]])
    monkeypatch.setattr(runtime, "gpu_present", lambda: True)
    with caplog.at_level(logging.INFO, logger="diffsem.runtime"):
        model = OnnxModel(card, provider="auto")
        OnnxModel(card, provider="auto")
    assert model.provider == PROVIDERS["cpu"]
    warned = _warnings(caplog)
    assert len(warned) == 1, warned  # once per process, not per model
    assert "GPU is present" in warned[0] and "requirements-gpu.txt" in warned[0]


def test_cpu_machine_stays_quiet(card, monkeypatch, caplog):
    monkeypatch.setattr(runtime, "available_providers", lambda: [PROVIDERS["cpu"]])
    monkeypatch.setattr(runtime, "gpu_present", lambda: False)
    with caplog.at_level(logging.INFO, logger="diffsem.runtime"):
        OnnxModel(card, provider="auto")
    assert _warnings(caplog) == []
    assert any("on cpu" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_gpu_build_whose_providers_do_not_start_warns(card, monkeypatch, caplog):
    # a GPU build whose CUDA/TensorRT libraries are missing: ORT runs the session on CPU
    monkeypatch.setattr(runtime, "available_providers", lambda: list(GPU_BUILD))
    monkeypatch.setattr(runtime, "gpu_present", lambda: True)
    with caplog.at_level(logging.INFO, logger="diffsem.runtime"):
        model = OnnxModel(card, provider="auto")
    assert model.provider == PROVIDERS["cpu"]
    warned = _warnings(caplog)
    assert any("asked for TensorrtExecutionProvider" in w and "CPUExecutionProvider" in w for w in warned), warned


def test_tensorrt_engine_failure_falls_back_with_a_warning(card, monkeypatch, caplog):
    monkeypatch.setattr(runtime, "available_providers", lambda: [PROVIDERS["cpu"]])
    model = OnnxModel(card, provider="auto")
    # pretend the session is TensorRT's and its engine build fails at the first run
    model.provider = PROVIDERS["tensorrt"]
    model._providers = [(PROVIDERS["tensorrt"], {})] + model._providers

    class FailingSession:
        def run(self, *args):
            raise RuntimeError("TensorRT EP failed to create engine from network")

    model.session = FailingSession()
    with caplog.at_level(logging.INFO, logger="diffsem.runtime"):
        out = model(**_inputs(model))
    assert model.provider == PROVIDERS["cpu"] and all(v.shape[0] == 2 for v in out.values())
    warned = _warnings(caplog)
    assert len(warned) == 1 and "TensorRT failed" in warned[0] and "falling back to cpu" in warned[0]


def test_forced_provider_failure_still_raises(card, monkeypatch):
    monkeypatch.setattr(runtime, "available_providers", lambda: list(GPU_BUILD))
    with pytest.raises(runtime.ProviderUnavailable, match="asked for CUDAExecutionProvider"):
        OnnxModel(card, provider="cuda")
