"""Channel maths used in training and in library-side evaluation (no GNU Radio).

SNR convention (docs/design/conventions.md, used everywhere in gr-diffsem): Es/N0 per complex channel symbol.
Transmitted symbols have unit average power, noise is CN(0, sigma^2) and SNR = 1 / sigma^2.
Fading channels have unit average power gain (E|h|^2 = 1), so `snr_db` is the average SNR.

After zero-forcing equalisation the receiver hands the decoder, per symbol, s_hat = y / h_hat
and its noise variance sigma^2 / |h_hat|^2 (a weak subcarrier gives a large variance). This is
exactly what the OFDM receiver block outputs, so models trained here see what the radio gives.

Complex values are carried as a trailing axis of size 2 (re, im), as in the ONNX contract.

torch is imported inside the functions that need it, not at module level: the GNU Radio block
package (`from gnuradio import diffsem`: channel_sim, diffusion_decoder) uses only the constants
and numpy helpers here, and importing torch costs ~2 s at every flowgraph start
(tests/blocks/qa_import_cost.py checks that it stays out).
"""
from __future__ import annotations

import math
import sys

import numpy as np

from diffsem.phy.ofdm import DEFAULT_LAYOUT, OfdmLayout

CHANNELS = ("awgn", "rayleigh", "selective")
CSI_MODES = ("perfect", "estimated")
SELECTIVE_TAPS = 8
SELECTIVE_DECAY = 0.5  # exponential power-delay profile: p_l ∝ exp(-decay * l), normalised to 1
MIN_GAIN = 1e-4        # |h|^2 floor so a deep fade gives a huge but finite noise variance


def snr_db_to_noise_var(snr_db):
    """Complex noise variance sigma^2 for unit-power symbols: 10^(-SNR/10)."""
    return 10.0 ** (-snr_db / 10.0)


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")  # if torch was never imported, x cannot be a tensor
    return torch is not None and torch.is_tensor(x)


def noise_var_to_snr_db(noise_var):
    if _is_tensor(noise_var):
        import torch
        return -10.0 * torch.log10(noise_var)
    return -10.0 * math.log10(noise_var)


def power_normalize(symbols: torch.Tensor) -> torch.Tensor:
    """Scale each frame [B, k, 2] to unit average power per complex symbol."""
    import torch
    power = symbols.pow(2).sum(dim=(1, 2), keepdim=True) / symbols.shape[1]
    return symbols / torch.sqrt(power + 1e-12)


def _cmul(a, b):
    import torch
    return torch.stack((a[..., 0] * b[..., 0] - a[..., 1] * b[..., 1],
                        a[..., 0] * b[..., 1] + a[..., 1] * b[..., 0]), dim=-1)


def _cdiv(a, b):
    import torch
    den = (b ** 2).sum(-1).clamp_min(MIN_GAIN)
    num = _cmul(a, torch.stack((b[..., 0], -b[..., 1]), dim=-1))
    return num / den[..., None]


def _cn(shape, var, generator, device):
    """Circular complex Gaussian CN(0, var) as [..., 2]; var broadcasts over shape."""
    import torch
    z = torch.randn(*shape, 2, generator=generator, device=device)
    return z * torch.sqrt(torch.as_tensor(var, device=device) / 2.0)[..., None]


def selective_pdp_numpy(n_taps: int = SELECTIVE_TAPS, decay: float = SELECTIVE_DECAY) -> np.ndarray:
    """The selective channel's power-delay profile without importing torch (GNU Radio's
    channel_sim builds its taps from it): selective_pdp's values, computed in float64 (they
    differ from torch's float32 result by at most 1 float32 ulp)."""
    p = np.exp(-decay * np.arange(n_taps, dtype=np.float64))
    return p / p.sum()


def selective_pdp(n_taps: int = SELECTIVE_TAPS, decay: float = SELECTIVE_DECAY) -> torch.Tensor:
    import torch
    p = torch.exp(-decay * torch.arange(n_taps, dtype=torch.float32))
    return p / p.sum()


def channel_gains(kind: str, batch: int, k: int, generator=None, device="cpu",
                  layout: OfdmLayout = DEFAULT_LAYOUT) -> torch.Tensor:
    """Per-symbol complex gain h [B, k, 2] seen by each payload symbol (unit average power)."""
    import torch
    if kind == "awgn":
        h = torch.zeros(batch, k, 2, device=device)
        h[..., 0] = 1.0
        return h
    if kind == "rayleigh":  # flat block fading: one gain per frame
        return _cn((batch, 1), torch.ones(batch, 1), generator, device).expand(batch, k, 2).contiguous()
    if kind == "selective":  # 8-tap multipath, one realisation per frame, seen per subcarrier
        pdp = selective_pdp().to(device)
        taps = _cn((batch, len(pdp)), pdp.expand(batch, -1), generator, device)  # [B, L, 2]
        carriers = torch.as_tensor(layout.carrier_of_symbol(k), device=device, dtype=torch.float32)
        phase = -2 * math.pi * carriers[:, None] * torch.arange(len(pdp), device=device)[None, :] / layout.fft_len
        basis = torch.stack((torch.cos(phase), torch.sin(phase)), dim=-1)  # [k, L, 2]
        return _cmul(taps[:, None, :, :], basis[None]).sum(dim=2)  # [B, k, 2]
    raise ValueError(f"unknown channel {kind!r}: choose one of {CHANNELS}")


def transmit(symbols: torch.Tensor, snr_db, kind: str = "awgn", csi: str = "perfect",
             generator=None, layout: OfdmLayout = DEFAULT_LAYOUT):
    """Send unit-power symbols [B, k, 2] over `kind` at `snr_db` (scalar or [B]) and equalise (ZF).

    Returns (s_hat [B, k, 2], noise_var [B, k]) as an OFDM receiver would report them. With
    csi="estimated" the receiver knows h only through a least-squares estimate from one
    training symbol (error variance sigma^2), and reports sigma^2/|h_hat|^2.
    """
    import torch
    if kind not in CHANNELS:
        raise ValueError(f"unknown channel {kind!r}: choose one of {CHANNELS}")
    if csi not in CSI_MODES:
        raise ValueError(f"unknown CSI mode {csi!r}: choose one of {CSI_MODES}")
    b, k, _ = symbols.shape
    dev = symbols.device
    snr = torch.as_tensor(snr_db, dtype=torch.float32, device=dev).expand(b)
    sigma2 = snr_db_to_noise_var(snr)[:, None].expand(b, k)
    h = channel_gains(kind, b, k, generator, dev, layout)
    y = _cmul(h, symbols) + _cn((b, k), sigma2, generator, dev)
    # LS estimate from one training symbol: error variance sigma^2 (drawn per symbol; same statistics).
    h_hat = h if (csi == "perfect" or kind == "awgn") else h + _cn((b, k), sigma2, generator, dev)
    s_hat = _cdiv(y, h_hat)
    noise_var = sigma2 / (h_hat ** 2).sum(-1).clamp_min(MIN_GAIN)
    return s_hat, noise_var

