"""The diffusion decoder: a conditional flow from the DeepJSCC estimate to the image.

Design (a bridge in the InDI / I2SB / ResShift family, written as flow matching): in image
space scaled to [-1, 1], the source of the flow is the DeepJSCC estimate plus Gaussian noise,
x1 = x_hat + sigma_s * eps, and the target is the image x0. Along the straight path
x_t = (1 - t) x0 + t x1 the network learns the velocity v = x1 - x0, conditioned on x_hat,
the DeepJSCC decoder's features and the SNR. Sampling integrates dx/dt = v from t = 1 to 0
with Euler steps. Starting from x_hat rather than pure noise keeps the paths short, which is
what lets a 1-2 step student stay close to the teacher; sigma_s sets how much the prior may
add (0 = a deterministic refiner).

Distillation is progressive (Salimans & Ho, 2022): a student with N steps learns to cover, in
one Euler step, what its teacher does in two; 32 -> 16 -> 8 -> 4 -> 2 -> 1. The loss is
pseudo-Huber (Song & Dhariwal, 2023), no LPIPS.

Samplers are small pure functions; models live in models.py.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from diffsem.nn.models import CondUNet, JSCCDecoder


def to_signed(image):
    return image * 2 - 1


def to_unit(x):
    return ((x + 1) / 2).clamp(0, 1)


def pseudo_huber(a, b, c: float):
    d2 = (a - b).pow(2).flatten(1).sum(-1)
    return (torch.sqrt(d2 + c * c) - c).mean()


def pseudo_huber_c(dim: int = 784) -> float:
    return 0.00054 * dim ** 0.5


def euler_sample(velocity, x1, steps: int, t_start=1.0, dt=None):
    """Integrate dx/dt = velocity(x, t) backwards from t_start in `steps` Euler steps of size dt
    (default: down to t = 0). t_start may be a float or a per-sample tensor [B]."""
    x = x1
    dt = t_start / steps if dt is None else dt
    t0 = torch.as_tensor(t_start, dtype=x.dtype, device=x.device).expand(x.shape[0])
    for i in range(steps):
        x = x - dt * velocity(x, t0 - i * dt)
    return x


class DiffusionDecoder(nn.Module):
    """symbols, snr_db, noise_var, noise -> image: the frozen DeepJSCC decoder gives x_hat and
    features, then `steps` Euler steps of the velocity network (unrolled in the ONNX graph)."""

    def __init__(self, jscc: JSCCDecoder, unet: CondUNet, steps: int, source_sigma: float):
        super().__init__()
        self.jscc = jscc
        self.unet = unet
        self.steps = steps
        self.source_sigma = source_sigma

    def condition(self, symbols, snr_db, noise_var):
        image_hat, feat = self.jscc.features(symbols, snr_db, noise_var)
        sym = self.jscc.symbol_inputs(symbols, snr_db, noise_var) if self.unet.symbols_in is not None else None
        return to_signed(image_hat.clamp(0.0, 1.0)), feat, sym

    def velocity_fn(self, x_hat, feat, snr_db, tau=None, sym=None):
        return lambda x, t: self.unet(x, t, x_hat, feat, snr_db, tau=tau, symbols=sym)

    def forward(self, symbols, snr_db, noise_var, noise):
        """`noise` is the temperature times N(0, 1) (the runtime scales it). A knob network is told
        that temperature: the RMS of its 784 noise values (within ±2.5 %), so the ONNX contract
        keeps its four inputs."""
        x_hat, feat, sym = self.condition(symbols, snr_db, noise_var)
        tau = noise.pow(2).mean(dim=(1, 2, 3)).sqrt() if self.unet.knob else None
        x1 = x_hat + self.source_sigma * noise
        snr_codec = self.jscc.snr_map.condition(snr_db) if hasattr(self.jscc, "snr_map") else snr_db
        return to_unit(euler_sample(self.velocity_fn(x_hat, feat, snr_codec, tau, sym), x1, self.steps))


KNOB_ZERO_FRACTION = 0.25  # share of knob-training draws at temperature 0 (the deterministic refiner)


def draw_temperature(unet: CondUNet, b: int, generator=None, device="cpu"):
    """Per-sample sampling temperature in training: 1 for a network without the knob; for a knob
    network uniform on [0, 1] with KNOB_ZERO_FRACTION of the draws at exactly 0, so every
    temperature the radio may ask for, the refiner end included, is one it was trained at."""
    if not unet.knob:
        return torch.ones(b, device=device)
    tau = torch.rand(b, generator=generator, device=device)
    zero = torch.rand(b, generator=generator, device=device) < KNOB_ZERO_FRACTION
    return torch.where(zero, torch.zeros_like(tau), tau)


def flow_matching_loss(unet: CondUNet, x0, x_hat, feat, snr_db, source_sigma: float, generator=None, sym=None):
    """Conditional flow matching: MSE between v(x_t, t) and x1 - x0 on the straight path, the
    source x1 = x_hat + source_sigma * tau * eps at the drawn temperature tau."""
    b = x0.shape[0]
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    tau = draw_temperature(unet, b, generator, x0.device)
    x1 = x_hat + source_sigma * tau[:, None, None, None] * eps
    t = torch.rand(b, generator=generator, device=x0.device)
    x_t = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
    v = unet(x_t, t, x_hat, feat, snr_db, tau=tau, symbols=sym)
    return (v - (x1 - x0)).pow(2).mean()


def distillation_loss(student: CondUNet, teacher: CondUNet, student_steps: int,
                      x0, x_hat, feat, snr_db, source_sigma: float, generator=None, teacher_substeps: int = 2,
                      sym=None):
    """One step of the N-step student matches `teacher_substeps` Euler steps of its teacher.

    t is drawn on the student's grid {1, 1 - 1/N, ..., 1/N}; x_t from the bridge's marginal.
    The teacher's m sub-steps land at x_{t - 1/N}; the student's target velocity is the one
    whose single step lands there too. m = 2 is classic progressive distillation; a larger m
    skips rounds (fewer rounds, less accumulated error, more teacher evaluations per step).
    """
    b = x0.shape[0]
    dev = x0.device
    n = student_steps
    idx = torch.randint(0, n, (b,), generator=generator, device=dev)
    t = 1.0 - idx.float() / n
    eps = torch.randn(x0.shape, generator=generator, device=dev)
    temp = draw_temperature(student, b, generator, dev)
    x1 = x_hat + source_sigma * temp[:, None, None, None] * eps
    tt = t[:, None, None, None]
    x_t = (1 - tt) * x0 + tt * x1
    dt = 1.0 / (teacher_substeps * n)
    with torch.no_grad():
        x_end = euler_sample(lambda x, s: teacher(x, s, x_hat, feat, snr_db, tau=temp, symbols=sym), x_t,
                             teacher_substeps, t_start=t, dt=dt)
        target = (x_t - x_end) * n
    v = student(x_t, t, x_hat, feat, snr_db, tau=temp, symbols=sym)
    return pseudo_huber(v, target, pseudo_huber_c())
