"""Channel maths used in training and in library-side evaluation (no GNU Radio).

SNR convention (docs/design/conventions.md, used everywhere in gr-diffsem): Es/N0 per complex channel symbol.
Transmitted symbols have unit average power, noise is CN(0, sigma^2) and SNR = 1 / sigma^2.
Fading channels have unit average power gain (E|h|^2 = 1), so `snr_db` is the average SNR.

After zero-forcing equalisation the receiver hands the decoder, per symbol, s_hat = y / h_hat
and its noise variance sigma^2 (1 + lev) / |h_hat|^2 (a weak subcarrier gives a large variance;
lev = 0 with perfect CSI, the receiver's channel-estimate error factor CSI_EST_ERR[kind] with
csi="estimated"). This is what the OFDM receiver (diffsem.phy.burst_rx) outputs, so models trained here
see what the radio gives (tests/core/test_channel_matches_receiver.py).

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

from diffsem.phy.ofdm import DEFAULT_LAYOUT, ERASED_NOISE_VAR, OfdmLayout

CHANNELS = ("awgn", "rayleigh", "selective")
CSI_MODES = ("perfect", "estimated")
SELECTIVE_TAPS = 8
SELECTIVE_DECAY = 0.5  # exponential power-delay profile: p_l ∝ exp(-decay * l), normalised to 1
MIN_GAIN = 1e-4        # |h|^2 floor so a deep fade gives a huge but finite noise variance

# csi="estimated": error of the real receiver's channel estimate, E|h_hat - h|^2 / sigma^2 per
# data carrier. diffsem.phy.burst_rx.BurstReceiver averages m = 5 training symbols (second preamble +
# 4 decoded header copies) and denoises them with a DFT fit over the taps it selects, so the error
# is leverage/m (+ channel-model error), far below the sigma^2 of a one-symbol LS estimate.
# Measured (300 frames x 256 symbols per point; frames whose header is lost are not counted):
#   PYTHONPATH=python OMP_NUM_THREADS=1 python -m diffsem.experiments.csi_model --frames 300 --snr 0 5 10 20 30
#   SNR dB           0      5      10     20     (30)
#   rayleigh       0.012  0.012  0.012  0.012  (0.012)   flat gain: the fit keeps ~3 taps of 52 carriers
#   selective      0.090  0.087  0.086  0.077  (0.110)   8-tap exponential PDP: ~10-15 taps + model error
# Flat in SNR within +-15 %, so one constant per channel kind. The receiver's reported noise_var
# is sigma^2 (1 + lev) / |h_hat|^2 + a phase-tracking term that stays below ~3 % (median
# noise_var / (sigma^2/|h|^2) measured 1.03 flat, 1.08 selective); its mean squared equalised
# error is 0.92-0.99 of its mean noise_var. No further systematic term is modelled.
CSI_EST_ERR_RAYLEIGH = 0.012
CSI_EST_ERR_SELECTIVE = 0.085
CSI_EST_ERR = {"rayleigh": CSI_EST_ERR_RAYLEIGH, "selective": CSI_EST_ERR_SELECTIVE}


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
        return _multipath(selective_pdp().to(device), batch, k, generator, device, layout)
    raise ValueError(f"unknown channel {kind!r}: choose one of {CHANNELS}")


def _multipath(pdp, batch: int, k: int, generator, device, layout: OfdmLayout) -> torch.Tensor:
    """Random impulse response with power-delay profile `pdp` [L], seen per payload symbol [B, k, 2]."""
    import torch
    taps = _cn((batch, len(pdp)), pdp.expand(batch, -1), generator, device)  # [B, L, 2]
    carriers = torch.as_tensor(layout.carrier_of_symbol(k), device=device, dtype=torch.float32)
    phase = -2 * math.pi * carriers[:, None] * torch.arange(len(pdp), device=device)[None, :] / layout.fft_len
    basis = torch.stack((torch.cos(phase), torch.sin(phase)), dim=-1)  # [k, L, 2]
    return _cmul(taps[:, None, :, :], basis[None]).sum(dim=2)  # [B, k, 2]


def estimation_error(kind: str, sigma2, batch: int, k: int, generator=None, device="cpu",
                     layout: OfdmLayout = DEFAULT_LAYOUT) -> torch.Tensor:
    """h_hat - h [B, k, 2] of the receiver's channel estimate: variance CSI_EST_ERR[kind] * sigma^2
    per symbol (sigma2 [B]), smooth across carriers like the receiver's DFT fit: one draw per
    frame on a flat channel, a random 8-tap (uniform PDP) response on the selective one."""
    import torch
    var = CSI_EST_ERR[kind] * torch.as_tensor(sigma2, dtype=torch.float32, device=device).reshape(batch)
    if kind == "rayleigh":
        return _cn((batch, 1), var[:, None], generator, device).expand(batch, k, 2).contiguous()
    pdp = torch.full((SELECTIVE_TAPS,), 1.0 / SELECTIVE_TAPS, device=device)
    return _multipath(pdp, batch, k, generator, device, layout) * var.sqrt()[:, None, None]


# ----------------------------------------------------------------------------- partial-frame impairments
#
# What destroys part of a frame, defined once on the OFDM layout (symbol i rides OFDM symbol
# i // n_data, data carrier i % n_data) by impairment_cells_numpy, for the training channel (which
# seeds it from its torch.Generator) and the GNU Radio channel_sim (which turns the same cells into
# samples: impulses over a wiped OFDM symbol, tones on the hit carriers, a zeroed tail):
#   erasure     each symbol lost independently with probability `fraction`
#   burst       impulsive noise wipes whole OFDM symbols, each with probability `fraction`
#   truncation  the frame's tail is lost: the last round(fraction * k) symbols
#   narrowband  an interferer on round(fraction * n_data) adjacent data carriers at a random
#               offset, with power Es / 10^(sir_db / 10) per hit cell (Es = 1): Es/N0 stays the
#               channel's SNR, the hit cells see Es/(N0 + I0)
# An erased cell is handed to the decoder as symbol 0 with noise variance ERASED_NOISE_VAR (the
# receiver's "could not trust": the decoders treat anything this large as no information).
IMPAIRMENTS = ("none", "erasure", "burst", "truncation", "narrowband")


def impairment_cells_numpy(kind: str, fraction, batch: int, k: int, rng=None,
                           layout: OfdmLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """Boolean [B, k]: the payload cells `kind` hits (the one definition: the training channel
    draws through `impairment_cells`, the GNU Radio channel_sim calls this directly).
    `fraction` a float or [B]; `rng` a numpy Generator (or a seed)."""
    if kind not in IMPAIRMENTS:
        raise ValueError(f"unknown impairment {kind!r}: choose one of {IMPAIRMENTS}")
    rng = np.random.default_rng(rng)
    f = np.broadcast_to(np.asarray(fraction, dtype=np.float64).reshape(-1), (batch,))[:, None]
    if np.any((f < 0) | (f > 1)):
        raise ValueError(f"impairment fraction must be in [0, 1], got {fraction}")
    i = np.arange(k)[None, :]
    if kind == "none":
        return np.zeros((batch, k), dtype=bool)
    if kind == "erasure":
        return rng.random((batch, k)) < f
    if kind == "burst":
        wiped = rng.random((batch, layout.n_ofdm_symbols(k))) < f
        return wiped[:, i[0] // layout.n_data]
    if kind == "truncation":
        return np.broadcast_to(i >= np.round((1 - f) * k), (batch, k)).copy()
    n = layout.n_data
    width = np.round(f * n)
    start = np.floor(rng.random((batch, 1)) * (n - width + 1))
    carrier = i % n
    return (carrier >= start) & (carrier < start + width)


def impairment_cells(kind: str, fraction, batch: int, k: int, generator=None, device="cpu",
                     layout: OfdmLayout = DEFAULT_LAYOUT):
    """Boolean tensor [B, k] of `impairment_cells_numpy`, seeded from the torch `generator` (so a
    seeded training run stays reproducible); `fraction` a float or a tensor [B]."""
    import torch
    # drawn on the generator's own device (a CUDA generator cannot fill a CPU tensor)
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator,
                             device=generator.device if generator is not None else None))
    f = fraction.detach().float().cpu().numpy() if torch.is_tensor(fraction) else fraction
    return torch.from_numpy(impairment_cells_numpy(kind, f, batch, k, seed, layout)).to(device)


def impair(s_hat, noise_var, h_hat_gain, kind: str, fraction, sir_db=0.0, generator=None,
           layout: OfdmLayout = DEFAULT_LAYOUT):
    """Apply a partial-frame impairment to equalised symbols [B, k, 2] and their noise variances
    [B, k]; `h_hat_gain` = |h_hat|^2 [B, k] (an interferer's power is divided by it by the ZF
    equaliser, like the noise's). Returns (s_hat, noise_var, hit cells [B, k])."""
    import torch
    b, k, _ = s_hat.shape
    hit = impairment_cells(kind, fraction, b, k, generator, s_hat.device, layout)
    if kind == "narrowband":
        i0 = snr_db_to_noise_var(torch.as_tensor(sir_db, dtype=torch.float32, device=s_hat.device)
                                 .reshape(-1).expand(b))[:, None]
        extra = torch.where(hit, i0 / h_hat_gain.clamp_min(MIN_GAIN), torch.zeros_like(noise_var))
        return s_hat + _cn((b, k), extra, generator, s_hat.device), noise_var + extra, hit
    if kind != "none":
        s_hat = torch.where(hit[..., None], torch.zeros_like(s_hat), s_hat)
        noise_var = torch.where(hit, torch.full_like(noise_var, ERASED_NOISE_VAR), noise_var)
    return s_hat, noise_var, hit


def transmit(symbols: torch.Tensor, snr_db, kind: str = "awgn", csi: str = "perfect",
             generator=None, layout: OfdmLayout = DEFAULT_LAYOUT, impairment=None):
    """Send unit-power symbols [B, k, 2] over `kind` at `snr_db` (scalar or [B]) and equalise (ZF).

    Returns (s_hat [B, k, 2], noise_var [B, k]) as an OFDM receiver would report them. With
    csi="estimated" the receiver knows h only through its estimate h_hat (diffsem.phy.burst_rx's:
    error variance CSI_EST_ERR[kind] * sigma^2, see `receive`). `impairment`: None or
    (kind, fraction, sir_db) of `impair`, applied after equalisation.
    """
    import torch
    if kind not in CHANNELS:
        raise ValueError(f"unknown channel {kind!r}: choose one of {CHANNELS}")
    if csi not in CSI_MODES:
        raise ValueError(f"unknown CSI mode {csi!r}: choose one of {CSI_MODES}")
    b, k, _ = symbols.shape
    dev = symbols.device
    snr = torch.as_tensor(snr_db, dtype=torch.float32, device=dev).expand(b)
    h = channel_gains(kind, b, k, generator, dev, layout)
    s_hat, noise_var, gain = _receive(symbols, h, snr_db_to_noise_var(snr), kind, csi, generator, layout)
    if impairment is not None and impairment[0] != "none":
        s_hat, noise_var, _ = impair(s_hat, noise_var, gain, *impairment, generator=generator, layout=layout)
    return s_hat, noise_var


def receive(symbols: torch.Tensor, h: torch.Tensor, sigma2, kind: str = "awgn", csi: str = "perfect",
            generator=None, layout: OfdmLayout = DEFAULT_LAYOUT):
    """transmit() for a given channel h [B, k, 2] and noise variance sigma2 [B]: y = h s + n,
    equalised by h_hat. csi="estimated" (fading channels): h_hat = h + e with
    e ~ estimation_error (variance lev * sigma^2, lev = CSI_EST_ERR[kind]), and the reported
    noise_var = sigma^2 (1 + lev) / |h_hat|^2, as diffsem.phy.FrameEstimator reports it."""
    return _receive(symbols, h, sigma2, kind, csi, generator, layout)[:2]


def _receive(symbols, h, sigma2, kind, csi, generator, layout):
    """receive(), also returning |h_hat|^2 [B, k] (floored like the equaliser's)."""
    import torch
    b, k, _ = symbols.shape
    dev = symbols.device
    sigma2 = torch.as_tensor(sigma2, dtype=torch.float32, device=dev).reshape(-1).expand(b)
    y = _cmul(h, symbols) + _cn((b, k), sigma2[:, None].expand(b, k), generator, dev)
    if csi == "perfect" or kind == "awgn":
        h_hat, lev = h, 0.0
    else:
        h_hat, lev = h + estimation_error(kind, sigma2, b, k, generator, dev, layout), CSI_EST_ERR[kind]
    s_hat = _cdiv(y, h_hat)
    gain = (h_hat ** 2).sum(-1).clamp_min(MIN_GAIN)
    return s_hat, sigma2[:, None] * (1.0 + lev) / gain, gain
