"""Transmission schemes behind one interface, for evaluation, sweeps and the radio blocks.

The interface every scheme satisfies (neural here; linear, digital and the separation bound in
diffsem.baselines), so that the grid, the runner, the row writer and the plots of
diffsem.experiments never ask a scheme's name what to do:

    name, k, steps              grid coordinates (steps None where there is no sampler/network)
    encode(images, snr_db=None) -> [B,k,2] symbols (snr_db: when the encoder adapts to the SNR)
    decode(symbols, snr_db, noise_var, rng) -> [B,1,28,28] in [0,1]
    temperature, samples        sampling temperature; samples False: it is not a grid coordinate
    at_snr(snr_db)              (optional) link configuration both ends know at an operating point
    row_fields()                (optional) scheme-specific columns of the point just run
    offline                     (optional) True: reconstruct(images, snr_db) without a channel (a bound)
    link                        (optional) the radio blocks that carry it: "ofdm_analog" (its
                                symbols through ofdm_analog_tx/rx, the default), "digital_link"
                                (frames through digital_link_tx/rx in its mode_for(snr)), None

`KINDS` says, per scheme name and before anything is loaded, which steps it takes, whether it
samples and on which channels it exists; `make_scheme` builds any of them.

    scheme = load_scheme("student", k=128, steps=2)            # shipped ONNX (default)
    symbols = scheme.encode(images)                              # [B,k,2] unit power
    images_hat = scheme.decode(s_hat, snr_db, noise_var, rng)    # [B,1,28,28] in [0,1]

Names: "deepjscc" (the plain decoder), "deepjscc_nonv" (the ablation without per-symbol noise
variance), "teacher" (the diffusion teacher, `steps` Euler steps, 32 by default), "student"
(the distilled decoder with 1, 2 or 4 steps). All share the same semantic encoder for a given k.
Backend "onnx" runs the exported graphs under ONNX Runtime (what the radio uses); "torch"
runs the checkpoints of a training run (what training and GPU evaluation use).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffsem.runtime.inference import DESIGN_SNR_DB, clamp_to_trained
from diffsem.runtime.naming import DEFAULT_TEMPERATURE, STUDENT_STEPS, TEACHER_STEPS, card_path, card_temperature

SCHEMES = ("deepjscc", "deepjscc_nonv", "teacher", "student")  # the neural ones, loaded by load_scheme
ENCODE_SNR_DB = DESIGN_SNR_DB  # the SNR the transmitter assumes when it does not know the channel


@dataclass
class Scheme:
    name: str
    k: int
    steps: int | None
    _encode: object = field(repr=False)
    _decode: object = field(repr=False)
    encode_snr_db: float = ENCODE_SNR_DB
    temperature: float = DEFAULT_TEMPERATURE
    samples: bool = False  # a diffusion sampler: the temperature is a grid coordinate

    def encode(self, images: np.ndarray, snr_db=None) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != (1, 28, 28):
            raise ValueError(f"images must be [B,1,28,28], got {images.shape}")
        snr = np.full(len(images), self.encode_snr_db if snr_db is None else snr_db, dtype=np.float32)
        return self._encode(images, snr)

    def decode(self, symbols, snr_db, noise_var, rng: np.random.Generator | None = None) -> np.ndarray:
        symbols = np.asarray(symbols, dtype=np.float32)
        if symbols.ndim != 3 or symbols.shape[1:] != (self.k, 2):
            raise ValueError(f"symbols must be [B,{self.k},2], got {symbols.shape}")
        b = len(symbols)
        snr, nv = clamp_to_trained(np.broadcast_to(np.asarray(snr_db, dtype=np.float32), (b,)),
                                   np.broadcast_to(np.asarray(noise_var, dtype=np.float32), (b, self.k)))
        rng = rng if rng is not None else np.random.default_rng(0)
        noise = (self.temperature * rng.standard_normal((b, 1, 28, 28))).astype(np.float32)
        return self._decode(symbols, snr, nv, noise)


def load_scheme(name: str, k: int, steps: int | None = None, backend: str = "onnx",
                device: str = "cpu", run_dir=None, provider: str = "auto",
                temperature: float | None = None, threads: int | None = None) -> Scheme:
    """A scheme by name. temperature None: the card's `default_temperature` for teacher/student
    (card_temperature), DEFAULT_TEMPERATURE without one. threads: ONNX Runtime intra-op threads
    (None: its default, all cores)."""
    if name not in SCHEMES:
        raise ValueError(f"unknown scheme {name!r}: choose one of {SCHEMES}")
    if name == "student" and steps not in STUDENT_STEPS:
        raise ValueError(f"student steps must be one of {STUDENT_STEPS}, got {steps}")
    if name == "teacher":
        steps = steps or TEACHER_STEPS
    if name.startswith("deepjscc"):
        steps = None
    if backend == "onnx":
        scheme = _onnx_scheme(name, k, steps, provider, threads)
    elif backend == "torch":
        scheme = _torch_scheme(name, k, steps, device, run_dir)
    else:
        raise ValueError(f"unknown backend {backend!r}: onnx or torch")
    if temperature is None:
        temperature = card_temperature(name, k, steps) if name in ("teacher", "student") else DEFAULT_TEMPERATURE
    scheme.temperature = float(temperature)
    scheme.samples = KINDS[name].samples
    return scheme


def _onnx_scheme(name, k, steps, provider, threads=None):
    from diffsem.runtime import OnnxModel
    enc = OnnxModel(card_path("encoder", k), provider=provider, threads=threads)
    dec = OnnxModel(card_path(name, k, steps), provider=provider, threads=threads)

    def encode(images, snr):
        return enc(image=images, snr_db=snr)["symbols"]

    def decode(symbols, snr, nv, noise):
        inputs = {"symbols": symbols, "snr_db": snr, "noise_var": nv}
        if "noise" in dec.input_names:
            inputs["noise"] = noise
        return dec(**inputs)["image"]

    return Scheme(name, k, steps, encode, decode)


def _torch_scheme(name, k, steps, device, run_dir):
    import torch

    from diffsem.nn.runs import build_diffusion_decoder, torch_modules
    run_dir = Path(run_dir or f"runs/k{k}")
    cfg, mods = torch_modules(run_dir, device)
    if cfg["k"] != k:
        raise ValueError(f"{run_dir} holds k={cfg['k']}, not k={k}")
    if name == "deepjscc":
        net = mods["decoder"]
        dec = lambda s, snr, nv, noise: net(s, snr, nv)  # noqa: E731
    elif name == "deepjscc_nonv":
        net = mods["decoder_nonv"]
        dec = lambda s, snr, nv, noise: net(s, snr, nv)  # noqa: E731
    else:
        dec = build_diffusion_decoder(cfg, mods, name, steps)
    enc = mods["encoder"]

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    @torch.no_grad()
    def encode(images, snr):
        return enc(t(images), t(snr)).cpu().numpy()

    @torch.no_grad()
    def decode(symbols, snr, nv, noise):
        return dec(t(symbols), t(snr), t(nv), t(noise)).float().cpu().numpy()

    return Scheme(name, k, steps, encode, decode)


# --- every scheme by name: what the grid needs to know before loading one ---------------------

@dataclass(frozen=True)
class Kind:
    """A scheme name's place in the grid. steps: "none" (one point, steps None), "student" (the
    --steps list) or "teacher" (--teacher-steps); samples: its temperature is a coordinate;
    channels/paths: where it exists (None: everywhere); offline: no channel is simulated."""
    name: str
    steps: str = "none"
    samples: bool = False
    channels: tuple | None = None
    paths: tuple | None = None
    offline: bool = False

    def step_options(self, steps=(), teacher_steps=None) -> list:
        return {"student": list(steps), "teacher": [teacher_steps]}.get(self.steps, [None])

    def exists(self, channel: str, path: str = "library", cfo: float = 0.0) -> bool:
        if self.channels is not None and channel not in self.channels:
            return False
        if self.paths is not None and path not in self.paths:
            return False
        return not (self.offline and cfo)


KINDS = {k.name: k for k in (
    Kind("digital"), Kind("linear"), Kind("deepjscc"), Kind("deepjscc_nonv"),
    Kind("teacher", steps="teacher", samples=True), Kind("student", steps="student", samples=True),
    Kind("separation", channels=("awgn",), paths=("library",), offline=True),
)}
ALL_SCHEMES = tuple(KINDS)


def make_scheme(name: str, k: int, steps=None, backend: str = "onnx", device: str = "cpu", **kwargs):
    """Any scheme of KINDS: the neural ones by load_scheme (kwargs: run_dir, provider,
    temperature, threads), the baselines by diffsem.baselines.make_scheme."""
    if name in SCHEMES:
        return load_scheme(name, k, steps=steps, backend=backend, device=device, **kwargs)
    if name not in KINDS:
        raise ValueError(f"unknown scheme {name!r}: choose one of {ALL_SCHEMES}")
    from diffsem.baselines import make_scheme as make_baseline
    return make_baseline(name, k)


def samples(scheme) -> bool:
    """Whether the scheme's temperature is a grid coordinate: its `samples` flag, else whether
    it has a temperature at all."""
    flag = getattr(scheme, "samples", None)
    return bool(flag) if flag is not None else getattr(scheme, "temperature", None) is not None


def at_snr(scheme, snr_db: float) -> None:
    """Set the link configuration both ends know at this operating point (a no-op for most)."""
    hook = getattr(scheme, "at_snr", None)
    if hook is not None:
        hook(float(snr_db))


def row_fields(scheme) -> dict:
    """The scheme-specific columns of the point just run: the temperature of a sampler, plus
    whatever the scheme reports (the digital mode and delivered fraction, ...)."""
    out = {"temperature": float(scheme.temperature)} if samples(scheme) else {}
    hook = getattr(scheme, "row_fields", None)
    if hook is not None:
        out.update(hook())
    return out


def encode_at(scheme, images, snr_db):
    """scheme.encode told the SNR when its encoder takes one (the SNR-adaptive encoders are
    trained that way); snr_db None, or an encoder without the argument: its own default."""
    import inspect
    if snr_db is not None and "snr_db" in inspect.signature(scheme.encode).parameters:
        return scheme.encode(images, snr_db=float(snr_db))
    return scheme.encode(images)
