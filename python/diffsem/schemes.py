"""Transmission schemes behind one interface, for evaluation, sweeps and the radio blocks.

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

from . import models_dir
from .inference import clamp_to_trained

SCHEMES = ("deepjscc", "deepjscc_nonv", "teacher", "student")
TEACHER_STEPS = 32
STUDENT_STEPS = (1, 2, 4)
ENCODE_SNR_DB = 10.0  # the SNR the transmitter assumes when it does not know the channel
# Scale of the sampler's source noise (the perception-distortion knob). 1.0 samples the learned
# posterior: sharpest, about 2-2.5 dB below DeepJSCC's PSNR; 0 is a deterministic refiner. Every
# shipped teacher/student card sets its own `default_temperature`, chosen on the validation split
# by `diffsem calibrate` (calibration.py: the teacher's within a 1.5 dB PSNR budget, each student
# matching its teacher's FID-FMNIST); load_scheme uses the card's value when no temperature is
# given, and this fallback for a card without one.
DEFAULT_TEMPERATURE = 0.9


def artifact_name(role: str, k: int, steps: int | None = None) -> str:
    """File stem of a shipped model: encoder_k128, deepjscc_k128, teacher_k128, student_k128_s2."""
    if role == "student":
        return f"student_k{k}_s{steps}"
    return f"{role}_k{k}"


@dataclass
class Scheme:
    name: str
    k: int
    steps: int | None
    _encode: object = field(repr=False)
    _decode: object = field(repr=False)
    encode_snr_db: float = ENCODE_SNR_DB
    temperature: float = DEFAULT_TEMPERATURE

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


def temperature_of_card(card: dict) -> float:
    """A card's `default_temperature`, DEFAULT_TEMPERATURE when it has none."""
    value = card.get("default_temperature")
    return DEFAULT_TEMPERATURE if value is None else float(value)


def card_temperature(name: str, k: int, steps: int | None = None, folder=None) -> float:
    """The sampling temperature the shipped card of a diffusion decoder asks for
    (temperature_of_card), DEFAULT_TEMPERATURE when the card does not exist."""
    from .cards import CardError, load_card
    if name == "teacher":
        steps = steps or TEACHER_STEPS
    try:
        card = load_card(Path(folder or models_dir()) / f"{artifact_name(name, k, steps)}.json")
    except CardError:
        return DEFAULT_TEMPERATURE
    return temperature_of_card(card)


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
    return scheme


def _onnx_scheme(name, k, steps, provider, threads=None):
    from .runtime import OnnxModel
    d = models_dir()
    enc = OnnxModel(d / f"{artifact_name('encoder', k)}.json", provider=provider, threads=threads)
    dec = OnnxModel(d / f"{artifact_name(name, k, steps)}.json", provider=provider, threads=threads)

    def encode(images, snr):
        return enc(image=images, snr_db=snr)["symbols"]

    def decode(symbols, snr, nv, noise):
        inputs = {"symbols": symbols, "snr_db": snr, "noise_var": nv}
        if "noise" in dec.input_names:
            inputs["noise"] = noise
        return dec(**inputs)["image"]

    return Scheme(name, k, steps, encode, decode)


def torch_modules(run_dir, device="cpu"):
    """Load the trained networks of a run folder: encoder, decoder, ablation decoder, teacher and
    student U-Nets (those that exist). Returns (cfg, dict of eval-mode modules)."""
    import torch

    from .train import build_basis, build_decoder, build_encoder, build_unet
    run_dir = Path(run_dir)
    cfg = __import__("json").loads((run_dir / "summary.json").read_text())["recipe"]

    def weights(stage):
        return torch.load(run_dir / f"{stage}.pt", map_location=device, weights_only=True)["modules"]

    mods = {}
    jscc = weights("jscc")
    basis = build_basis(cfg, fitted=False)  # hybrid codecs carry their basis in the checkpoint
    mods["encoder"] = build_encoder(cfg, basis)
    mods["encoder"].load_state_dict(jscc["encoder"])
    mods["decoder"] = build_decoder(cfg, basis=basis)
    mods["decoder"].load_state_dict(jscc["decoder"])
    if (run_dir / "ablation.pt").exists():
        mods["decoder_nonv"] = build_decoder(cfg, use_noise_var=False, basis=basis)
        mods["decoder_nonv"].load_state_dict(weights("ablation")["decoder"])
    for stage in ["teacher"] + [f"distill_s{n}" for n in cfg["distill"]["rounds"]]:
        if (run_dir / f"{stage}.pt").exists():
            mods[stage] = build_unet(cfg)
            mods[stage].load_state_dict(weights(stage)["unet"])
    for m in mods.values():
        m.to(device).eval().requires_grad_(False)
    return cfg, mods


def build_diffusion_decoder(cfg, mods, name, steps):
    from .diffusion import DiffusionDecoder
    unet = mods["teacher"] if name == "teacher" else mods[f"distill_s{steps}"]
    return DiffusionDecoder(mods["decoder"], unet, steps, cfg["teacher"]["source_sigma"]).eval()


def _torch_scheme(name, k, steps, device, run_dir):
    import torch
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
