"""Neural networks of the semantic link: encoder, DeepJSCC decoder, conditional U-Net.

Sized for the problem (28x28 grayscale, k = 32..128 complex symbols) and for a 2-core CPU at
inference: the whole decoder graph of a 2-step student is a few hundred MFLOPs per image.

SNR conditioning follows ADJSCC: both ends know the (average) SNR in dB and use it to scale
their features (FiLM). The decoder also takes the per-symbol noise variance the OFDM receiver
reports after zero-forcing, turned into an LMMSE estimate and a per-symbol reliability, so a
symbol that rode a faded subcarrier is trusted less.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from diffsem.channel import power_normalize, snr_db_to_noise_var

IMAGE_SHAPE = (1, 28, 28)
SNR_SCALE = 20.0  # dB; SNR features are snr_db / SNR_SCALE


def _groups(channels: int) -> int:
    return 8 if channels % 8 == 0 else 1


class FiLM(nn.Module):
    """Feature-wise scale and shift from a conditioning vector."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h, cond):
        scale, shift = self.proj(cond)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + scale) + shift


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.film = FiLM(cond_dim, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, cond):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.film(self.norm2(h), cond)))
        return self.skip(x) + h


def snr_features(snr_db: torch.Tensor) -> torch.Tensor:
    return (snr_db.float() / SNR_SCALE)[:, None]


class SemanticEncoder(nn.Module):
    """image [B,1,28,28] in [0,1], snr_db [B] -> symbols [B,k,2] with unit average power."""

    def __init__(self, k: int, width: int = 64, cond_dim: int = 64):
        super().__init__()
        self.k = k
        self.snr_mlp = nn.Sequential(nn.Linear(1, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.stem = nn.Conv2d(1, width // 2, 3, padding=1)
        self.down1 = nn.Conv2d(width // 2, width, 4, stride=2, padding=1)   # 14x14
        self.res1 = ResBlock(width, width, cond_dim)
        self.down2 = nn.Conv2d(width, width, 4, stride=2, padding=1)        # 7x7
        self.res2 = ResBlock(width, width, cond_dim)
        self.squeeze = nn.Conv2d(width, 16, 1)
        self.to_symbols = nn.Linear(16 * 49, 2 * k)

    def forward(self, image, snr_db):
        cond = self.snr_mlp(snr_features(snr_db))
        h = F.silu(self.stem(image * 2 - 1))
        h = self.res1(F.silu(self.down1(h)), cond)
        h = self.res2(F.silu(self.down2(h)), cond)
        z = self.to_symbols(self.squeeze(F.silu(h)).flatten(1))
        return power_normalize(z.view(-1, self.k, 2))


class JSCCDecoder(nn.Module):
    """DeepJSCC decoder: (symbols [B,k,2], snr_db [B], noise_var [B,k]) -> image [B,1,28,28] in [0,1].

    `use_noise_var=False` builds the ablation: the same network that only knows the average SNR
    (it uses 10^(-snr/10) for every symbol), as a receiver without per-subcarrier CSI would.
    `features()` also returns the 7x7 feature map the diffusion decoder is conditioned on.
    """

    def __init__(self, k: int, width: int = 64, cond_dim: int = 64, use_noise_var: bool = True):
        super().__init__()
        self.k = k
        self.use_noise_var = use_noise_var
        self.width = width
        self.snr_mlp = nn.Sequential(nn.Linear(1, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.from_symbols = nn.Linear(3 * k, 16 * 49)
        self.lift = nn.Conv2d(16, width, 3, padding=1)
        self.res1 = ResBlock(width, width, cond_dim)
        self.res2 = ResBlock(width, width, cond_dim)
        self.up1 = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)   # 14x14
        self.res3 = ResBlock(width, width, cond_dim)
        self.up2 = nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1)  # 28x28
        self.res4 = ResBlock(width // 2, width // 2, cond_dim)
        self.out = nn.Conv2d(width // 2, 1, 3, padding=1)

    def symbol_inputs(self, symbols, snr_db, noise_var):
        if not self.use_noise_var:
            noise_var = snr_db_to_noise_var(snr_db.float())[:, None].expand_as(noise_var)
        # LMMSE estimate of a unit-power symbol from s + n, n ~ CN(0, nv): bounded even in a deep fade.
        weight = 1.0 / (1.0 + noise_var)
        reliability = (-10.0 * torch.log10(noise_var.clamp(1e-4, 1e4)) / SNR_SCALE)
        return torch.cat((symbols * weight[..., None], reliability[..., None]), dim=-1)

    def features(self, symbols, snr_db, noise_var):
        cond = self.snr_mlp(snr_features(snr_db))
        x = self.symbol_inputs(symbols, snr_db, noise_var).flatten(1)
        h = F.silu(self.from_symbols(x)).view(-1, 16, 7, 7)
        h = self.res2(self.res1(self.lift(h), cond), cond)
        feat = h
        h = self.res3(F.silu(self.up1(h)), cond)
        h = self.res4(F.silu(self.up2(h)), cond)
        image = torch.sigmoid(self.out(F.silu(h)))
        return image, feat

    def forward(self, symbols, snr_db, noise_var):
        return self.features(symbols, snr_db, noise_var)[0]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat((torch.cos(args), torch.sin(args)), dim=-1)


class CondUNet(nn.Module):
    """Velocity network v(x_t, t | x_hat, decoder features, snr) for the diffusion decoder.

    Three resolutions (28, 14, 7). The DeepJSCC estimate x_hat enters as an extra input channel,
    the decoder's 7x7 feature map is added at the bottleneck, t and SNR modulate every block.
    """

    def __init__(self, width: int = 32, feat_channels: int = 64, emb_dim: int = 128):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 3 * width
        self.emb_dim = emb_dim
        self.emb = nn.Sequential(nn.Linear(emb_dim + 1, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(2, c1, 3, padding=1)
        self.enc1 = ResBlock(c1, c1, emb_dim)
        self.down1 = nn.Conv2d(c1, c2, 4, stride=2, padding=1)
        self.enc2 = ResBlock(c2, c2, emb_dim)
        self.down2 = nn.Conv2d(c2, c3, 4, stride=2, padding=1)
        self.feat_in = nn.Conv2d(feat_channels, c3, 1)
        self.mid1 = ResBlock(c3, c3, emb_dim)
        self.mid2 = ResBlock(c3, c3, emb_dim)
        self.up2 = nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1)
        self.dec2 = ResBlock(2 * c2, c2, emb_dim)
        self.up1 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)
        self.dec1 = ResBlock(2 * c1, c1, emb_dim)
        self.out_norm = nn.GroupNorm(_groups(c1), c1)
        self.out = nn.Conv2d(c1, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t, t, x_hat, feat, snr_db):
        e = self.emb(torch.cat((timestep_embedding(t, self.emb_dim), snr_features(snr_db)), dim=-1))
        h1 = self.enc1(self.stem(torch.cat((x_t, x_hat), dim=1)), e)
        h2 = self.enc2(self.down1(h1), e)
        h = self.down2(h2) + self.feat_in(feat)
        h = self.mid2(self.mid1(h, e), e)
        h = self.dec2(torch.cat((self.up2(h), h2), dim=1), e)
        h = self.dec1(torch.cat((self.up1(h), h1), dim=1), e)
        return self.out(F.silu(self.out_norm(h)))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
