"""ONNX Runtime wrapper for the shipped models: card check, provider choice, I/O validation.

    model = OnnxModel("models/student_k128_s2.json")          # provider="auto"
    out = model(symbols=s, snr_db=snr, noise_var=nv)["image"]

Before building a session it verifies the card's sha256 (cards.verify_card) and after building
it checks the graph's input/output names, dtypes and shapes against the card, so a file that
does not match its card is refused with a message that says which name or axis differs.

Providers. "auto" tries TensorRT -> CUDA -> CPU, keeping those that this onnxruntime build
offers (onnxruntime.get_available_providers()); CPU is always last so nodes a GPU provider does
not take still run. A forced provider ("tensorrt", "cuda", "cpu") that the installed build does
not offer is an error (ProviderUnavailable, naming what is available) rather than a silent
fallback: whoever forces a provider wants to know it is not there. Likewise if the build offers
it but the session did not take it (e.g. onnxruntime-gpu without the CUDA/cuDNN libraries, where
ORT falls back to CPU with only a log line), a forced provider raises; "auto" logs a warning.
The provider actually used (session.get_providers()[0]) is logged once per model file.

"auto" warns (WARNING, once per process) when it ends up below what the machine offers: an NVIDIA
GPU is present (/dev/nvidia0 or `nvidia-smi -L`) but the installed build has no CUDA provider
(the CPU `onnxruntime` wheel: install requirements-gpu.txt), or a GPU provider it asked for did
not take the session, or TensorRT failed to build an engine at the first run (the model then
runs again on the next provider in the chain, CUDA then CPU).

TensorRT engines and timing caches go to `cache_dir` (default $XDG_CACHE_HOME/gr-diffsem/trt,
i.e. ~/.cache/gr-diffsem/trt), so only the first start of a model pays the engine build. With a
dynamic batch axis the TensorRT profile covers batch 1..max_batch (optimised for max_batch), so
changing batch size inside that range does not rebuild the engine. FP16 stays off by default:
the models' ONNX-vs-PyTorch parity is 1e-4 in fp32.
"""
from __future__ import annotations

import functools
import logging
import os
import platform
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np

from diffsem.runtime.cards import BATCH, CardError, load_card, verify_card

log = logging.getLogger("diffsem.runtime")

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO_ORDER = ("tensorrt", "cuda", "cpu")

# ORT type strings -> numpy dtypes (those a card may name).
_ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
              "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool",
              "tensor(bfloat16)": "bfloat16"}

_logged_lock = threading.Lock()
_logged: set = set()


class ModelMismatch(CardError):
    """The ONNX graph's inputs/outputs do not match what its card promises."""


class ProviderUnavailable(RuntimeError):
    """A forced execution provider is not offered by (or failed in) this onnxruntime build."""


class InputError(ValueError):
    """Inputs passed to a model have the wrong names, shapes or dtypes, or are not finite."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gr-diffsem" / "trt"


def available_providers() -> list[str]:
    import onnxruntime as ort
    return list(ort.get_available_providers())


@functools.lru_cache(maxsize=1)
def gpu_present() -> bool:
    """An NVIDIA GPU on this machine: its device node exists or `nvidia-smi -L` lists one."""
    if os.path.exists("/dev/nvidia0"):
        return True
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=1)
def _load_gpu_libraries() -> None:
    """onnxruntime-gpu installed from pip finds CUDA/cuDNN (the nvidia-* wheels) and TensorRT
    (the tensorrt-cu13-libs wheel) only once they are loaded; a system install needs none of it."""
    import ctypes

    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as exc:  # a missing library shows up as the provider fallback warning
            log.debug("onnxruntime.preload_dlls: %s", exc)
    try:
        import tensorrt_libs
    except ImportError:
        return
    for pattern in ("libnvinfer.so.*", "libnvonnxparser.so.*"):
        for lib in sorted(Path(tensorrt_libs.__file__).parent.glob(pattern)):
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                log.debug("cannot load %s: %s", lib, exc)


def _warn_once(key: str, msg: str, *args) -> None:
    with _logged_lock:
        if key in _logged:
            return
        _logged.add(key)
    log.warning(msg, *args)


def _short(provider: str) -> str:
    return {v: k for k, v in PROVIDERS.items()}.get(provider, provider)


def _dims(spec: dict, size: int) -> str:
    """A card input shape as a TensorRT profile string, batch axis replaced by `size`."""
    return "x".join(str(size if d == BATCH else d) for d in spec["shape"])


def resolve_providers(provider: str, available: list[str], *, device_id: int = 0,
                      cache_dir: Path | None = None, fp16: bool = False,
                      profile: dict | None = None) -> list:
    """The `providers` list for onnxruntime.InferenceSession: names with their options.

    `profile` ({"min": str, "opt": str, "max": str}) sets an explicit TensorRT shape profile.
    """
    if provider == "auto":
        wanted = [p for p in AUTO_ORDER if PROVIDERS[p] in available]
        if "cuda" not in wanted and "tensorrt" not in wanted and gpu_present():
            _warn_once("auto-no-gpu-provider",
                       "provider auto: an NVIDIA GPU is present but this onnxruntime build offers only %s; "
                       "running on CPU. Install the GPU build: pip install -r requirements-gpu.txt "
                       "(scripts/setup.sh does it on GPU machines)", ", ".join(available) or "nothing")
    elif provider in PROVIDERS:
        if PROVIDERS[provider] not in available:
            raise ProviderUnavailable(
                f"execution provider {provider!r} ({PROVIDERS[provider]}) is not available in this "
                f"onnxruntime build; available: {', '.join(available) or 'none'}. Use provider='auto' "
                f"or 'cpu', or install onnxruntime-gpu (with CUDA 12 / cuDNN 9, and TensorRT for 'tensorrt')")
        # Nodes the forced provider rejects fall back along the same chain, CPU last.
        start = AUTO_ORDER.index(provider)
        wanted = [p for p in AUTO_ORDER[start:] if PROVIDERS[p] in available]
    else:
        raise ValueError(f"unknown provider {provider!r}: choose auto, tensorrt, cuda or cpu")
    if "cpu" not in wanted:
        wanted.append("cpu")

    out = []
    for name in wanted:
        if name == "tensorrt":
            cache = str(cache_dir or default_cache_dir())
            opts = {"device_id": device_id,
                    "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                    "trt_timing_cache_enable": True, "trt_timing_cache_path": cache,
                    "trt_fp16_enable": fp16}
            if profile:
                opts.update(trt_profile_min_shapes=profile["min"], trt_profile_opt_shapes=profile["opt"],
                            trt_profile_max_shapes=profile["max"])
            out.append((PROVIDERS[name], opts))
        elif name == "cuda":
            # HEURISTIC avoids the seconds-long EXHAUSTIVE cuDNN search at start; the convs are tiny.
            out.append((PROVIDERS[name], {"device_id": device_id, "cudnn_conv_algo_search": "HEURISTIC",
                                          "arena_extend_strategy": "kSameAsRequested"}))
        else:
            out.append(PROVIDERS[name])
    return out


class OnnxModel:
    """One verified ONNX model and its session. Thread-safe to call (ORT's run is)."""

    def __init__(self, card_path, provider: str = "auto", cache_dir=None, threads: int | None = None,
                 *, device_id: int = 0, fp16: bool = False, max_batch: int = 64, check_finite: bool = True):
        import onnxruntime as ort

        self.card_path = Path(card_path)
        self.card = load_card(self.card_path)
        self.path = verify_card(self.card_path)
        self.name = self.card["name"]
        self.inputs = {s["name"]: s for s in self.card.get("inputs") or []}
        self.outputs = {s["name"]: s for s in self.card.get("outputs") or []}
        if not self.inputs or not self.outputs:
            raise CardError(f"{self.card_path}: card has no inputs/outputs spec; it does not describe an ONNX model")
        self.check_finite = check_finite
        self.max_batch = int(max_batch)

        available = available_providers()
        dynamic = any(BATCH in s["shape"] for s in self.inputs.values())
        profile = None
        if dynamic:
            profile = {key: ",".join(f"{n}:{_dims(s, size)}" for n, s in self.inputs.items())
                       for key, size in (("min", 1), ("opt", max_batch), ("max", max_batch))}
        providers = resolve_providers(provider, available, device_id=device_id, cache_dir=cache_dir,
                                      fp16=fp16, profile=profile)
        if len(providers) > 1:  # a GPU provider is in the chain
            _load_gpu_libraries()
        if any(p[0] == PROVIDERS["tensorrt"] for p in providers if isinstance(p, tuple)):
            Path(cache_dir or default_cache_dir()).mkdir(parents=True, exist_ok=True)

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; the provider in use is logged below
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self._auto = provider == "auto"
        self._options, self._providers = options, providers
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/etc. types
            raise ModelMismatch(f"{self.path}: onnxruntime cannot load it: {exc}") from exc

        self.providers = self.session.get_providers()
        self.provider = self.providers[0]
        requested = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        if self.provider != requested:
            msg = (f"{self.path.name}: asked for {requested} but the session runs on {self.provider} "
                   f"(the GPU provider failed to initialise: check CUDA/cuDNN/TensorRT libraries)")
            if provider != "auto":
                raise ProviderUnavailable(msg)
            log.warning(msg)
        with _logged_lock:
            key = (str(self.path.resolve()), self.provider)
            if key not in _logged:
                _logged.add(key)
                log.info("%s: ONNX Runtime %s on %s (session providers: %s)", self.name, ort.__version__,
                         _short(self.provider), ", ".join(_short(p) for p in self.providers))
        self._check_graph_matches_card()
        self._output_names = list(self.outputs)

    # --- contract checks -------------------------------------------------------------------
    def _check_graph_matches_card(self) -> None:
        for kind, graph_args, card_specs in (("input", self.session.get_inputs(), self.inputs),
                                             ("output", self.session.get_outputs(), self.outputs)):
            graph = {a.name: a for a in graph_args}
            if set(graph) != set(card_specs):
                raise ModelMismatch(
                    f"{self.path}: {kind} names {sorted(graph)} in the graph, {sorted(card_specs)} in card "
                    f"{self.card_path.name}: the file and card do not belong together; re-export both")
            for name, spec in card_specs.items():
                arg = graph[name]
                dtype = _ORT_TYPES.get(arg.type, arg.type)
                if dtype != spec["dtype"]:
                    raise ModelMismatch(f"{self.path}: {kind} {name!r} is {dtype} in the graph, "
                                        f"{spec['dtype']} in the card")
                graph_shape = [d if isinstance(d, int) else BATCH for d in arg.shape]
                card_shape = list(spec["shape"])
                if kind == "output":
                    # Exporters often leave output axes symbolic where shape inference could fix
                    # them; those are checked on every run instead (_check_outputs).
                    graph_shape = [c if (g == BATCH and c != BATCH) else g for g, c in zip(graph_shape, card_shape)] \
                        if len(graph_shape) == len(card_shape) else graph_shape
                if graph_shape != card_shape:
                    raise ModelMismatch(
                        f"{self.path}: {kind} {name!r} has shape {graph_shape} in the graph, {spec['shape']} "
                        f"in the card (\"batch\" = dynamic axis): the file and card do not belong together")

    def validate(self, inputs: dict) -> dict:
        """Check names, dtypes, shapes (and finiteness) of `inputs`; return them as contiguous arrays."""
        return self._validate(inputs)[0]

    def _validate(self, inputs: dict) -> tuple[dict, int | None]:
        got, want = set(inputs), set(self.inputs)
        if got != want:
            parts = []
            if want - got:
                parts.append(f"missing {sorted(want - got)}")
            if got - want:
                parts.append(f"unexpected {sorted(got - want)}")
            raise InputError(f"{self.name}: {', '.join(parts)}; the model takes {sorted(want)}")
        feeds, batch = {}, None
        for name, spec in self.inputs.items():
            arr = inputs[name]
            if not isinstance(arr, np.ndarray):
                raise InputError(f"{self.name}: input {name!r} must be a numpy array, got {type(arr).__name__}")
            if arr.dtype != np.dtype(spec["dtype"]):
                raise InputError(f"{self.name}: input {name!r} is {arr.dtype}, the model takes {spec['dtype']} "
                                 f"(convert with .astype(np.{spec['dtype']}))")
            shape = list(spec["shape"])
            if arr.ndim != len(shape) or any(d != BATCH and d != n for d, n in zip(shape, arr.shape)):
                raise InputError(f"{self.name}: input {name!r} has shape {list(arr.shape)}, the model takes "
                                 f"{shape}")
            for d, n in zip(shape, arr.shape):
                if d == BATCH:
                    if batch is not None and n != batch:
                        raise InputError(f"{self.name}: inputs disagree on the batch size ({batch} vs {n} "
                                         f"in {name!r})")
                    batch = n
            if self.check_finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = int(arr.size - np.isfinite(arr).sum())
                raise InputError(f"{self.name}: input {name!r} has {bad} non-finite values (NaN/inf)")
            feeds[name] = np.ascontiguousarray(arr)
        if batch is not None and batch > self.max_batch and self.provider == PROVIDERS["tensorrt"]:
            raise InputError(f"{self.name}: batch {batch} exceeds the TensorRT profile (1..{self.max_batch}); "
                             f"build the model with OnnxModel(..., max_batch={batch})")
        return feeds, batch

    # --- inference ---------------------------------------------------------------------------
    def _run(self, feeds: dict) -> list:
        try:
            return self.session.run(self._output_names, feeds)
        except Exception as exc:
            # TensorRT builds its engine at the first run with a dynamic batch; if that fails,
            # "auto" carries on with the rest of its chain (CUDA, CPU) rather than failing the link.
            if not (self._auto and self.provider == PROVIDERS["tensorrt"]):
                raise
            import onnxruntime as ort

            with _logged_lock:  # several worker threads may hit the failure at once: rebuild once
                if self.provider == PROVIDERS["tensorrt"]:
                    rest = [p for p in self._providers if (p[0] if isinstance(p, tuple) else p) != PROVIDERS["tensorrt"]]
                    log.warning("%s: TensorRT failed to run (%s); falling back to %s", self.name,
                                (str(exc).splitlines() or [""])[0][:200],
                                _short(rest[0][0] if isinstance(rest[0], tuple) else rest[0]))
                    self._providers = rest
                    self.session = ort.InferenceSession(str(self.path), sess_options=self._options, providers=rest)
                    self.providers = self.session.get_providers()
                    self.provider = self.providers[0]
            return self.session.run(self._output_names, feeds)

    def __call__(self, **inputs) -> dict[str, np.ndarray]:
        feeds, batch = self._validate(inputs)
        values = self._run(feeds)
        for name, value in zip(self._output_names, values):
            want = [batch if d == BATCH else d for d in self.outputs[name]["shape"]]
            if list(value.shape) != want:
                raise ModelMismatch(f"{self.path}: output {name!r} came out {list(value.shape)}, the card "
                                    f"promises {self.outputs[name]['shape']} (batch {batch})")
        return dict(zip(self._output_names, values))

    def run(self, inputs: dict) -> dict[str, np.ndarray]:
        return self(**inputs)

    def example_inputs(self, batch: int) -> dict[str, np.ndarray]:
        """Plausible inputs from the card spec: symbols ~ CN(0,1), snr_db 10, noise_var 0.1,
        noise ~ N(0,1), images uniform, ints 0..B-1."""
        rng = np.random.default_rng(0)
        feeds = {}
        for name, spec in self.inputs.items():
            shape = [batch if d == BATCH else d for d in spec["shape"]]
            dtype = np.dtype(spec["dtype"])
            if dtype.kind in "iu":
                feeds[name] = (np.arange(int(np.prod(shape))) % 1000).reshape(shape).astype(dtype)
            elif name == "snr_db":
                feeds[name] = np.full(shape, 10.0, dtype)
            elif name == "noise_var":
                feeds[name] = np.full(shape, 0.1, dtype)
            elif name == "image":
                feeds[name] = rng.random(shape, dtype=np.float32).astype(dtype)
            elif name == "noise":  # a stochastic sampler's N(0, 1) draws
                feeds[name] = rng.standard_normal(shape).astype(dtype)
            else:
                feeds[name] = (rng.standard_normal(shape) * np.sqrt(0.5)).astype(dtype)
        return feeds

    def warm_up(self, max_batch: int) -> None:
        """Run every batch size 1..max_batch once, so the runtime's per-shape buffers are all
        allocated before the first frame: a link's memory is then flat from the start instead of
        growing for minutes as new batch sizes appear."""
        if self.batch_dynamic:
            for batch in range(1, int(max_batch) + 1):
                self._run(self._validate(self.example_inputs(batch))[0])

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    @property
    def batch_dynamic(self) -> bool:
        return any(BATCH in s["shape"] for s in self.inputs.values())

    def __repr__(self) -> str:
        return f"OnnxModel({self.name!r}, file={self.path.name}, provider={_short(self.provider)})"


def cpu_name() -> str:
    """The host CPU's model name (benchmark records and model-card provenance)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
