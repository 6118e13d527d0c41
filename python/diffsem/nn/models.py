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


class _ConvEncoderTrunk(nn.Module):
    """The encoders' convolutional trunk: 28 -> 14 -> 7, SNR-modulated, then a linear map to 2k
    reals. Shared by SemanticEncoder and HybridEncoder (their layers keep these attribute names,
    which their checkpoints use)."""

    def _build_trunk(self, k: int, width: int, cond_dim: int):
        self.snr_mlp = nn.Sequential(nn.Linear(1, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.stem = nn.Conv2d(1, width // 2, 3, padding=1)
        self.down1 = nn.Conv2d(width // 2, width, 4, stride=2, padding=1)   # 14x14
        self.res1 = ResBlock(width, width, cond_dim)
        self.down2 = nn.Conv2d(width, width, 4, stride=2, padding=1)        # 7x7
        self.res2 = ResBlock(width, width, cond_dim)
        self.squeeze = nn.Conv2d(width, 16, 1)
        self.to_symbols = nn.Linear(16 * 49, 2 * k)

    def _trunk(self, image, cond):
        """-> [B, 2k] reals (before any power normalisation)."""
        h = F.silu(self.stem(image * 2 - 1))
        h = self.res1(F.silu(self.down1(h)), cond)
        h = self.res2(F.silu(self.down2(h)), cond)
        return self.to_symbols(self.squeeze(F.silu(h)).flatten(1))


class SemanticEncoder(_ConvEncoderTrunk):
    """image [B,1,28,28] in [0,1], snr_db [B] -> symbols [B,k,2] with unit average power."""

    def __init__(self, k: int, width: int = 64, cond_dim: int = 64):
        super().__init__()
        self.k = k
        self._build_trunk(k, width, cond_dim)

    def forward(self, image, snr_db):
        z = self._trunk(image, self.snr_mlp(snr_features(snr_db)))
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


class _UNetBody(nn.Module):
    """Two-level U-Net (28 -> 14 -> 7 -> 14 -> 28) whose 7x7 bottleneck takes an extra map, every
    block modulated by one conditioning vector; the output layer starts at zero. Shared by the
    velocity network and the hybrid decoder's refiner (their layers keep these attribute names,
    which their checkpoints use)."""

    def _build_body(self, in_channels: int, c1: int, c2: int, c3: int, cond_dim: int):
        self.stem = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.enc1 = ResBlock(c1, c1, cond_dim)                             # 28x28
        self.down1 = nn.Conv2d(c1, c2, 4, stride=2, padding=1)             # 14x14
        self.enc2 = ResBlock(c2, c2, cond_dim)
        self.down2 = nn.Conv2d(c2, c3, 4, stride=2, padding=1)             # 7x7
        self.mid1 = ResBlock(c3, c3, cond_dim)
        self.mid2 = ResBlock(c3, c3, cond_dim)
        self.up2 = nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1)
        self.dec2 = ResBlock(2 * c2, c2, cond_dim)
        self.up1 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)
        self.dec1 = ResBlock(2 * c1, c1, cond_dim)
        self.out_norm = nn.GroupNorm(_groups(c1), c1)
        self.out = nn.Conv2d(c1, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _body(self, x, bottleneck_extra, cond):
        """-> (output [B,1,28,28], the 7x7 bottleneck features after the middle blocks)."""
        h1 = self.enc1(self.stem(x), cond)
        h2 = self.enc2(self.down1(h1), cond)
        mid = self.mid2(self.mid1(self.down2(h2) + bottleneck_extra, cond), cond)
        h = self.dec2(torch.cat((self.up2(mid), h2), dim=1), cond)
        h = self.dec1(torch.cat((self.up1(h), h1), dim=1), cond)
        return self.out(F.silu(self.out_norm(h))), mid


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat((torch.cos(args), torch.sin(args)), dim=-1)


class CondUNet(_UNetBody):
    """Velocity network v(x_t, t | x_hat, decoder features, snr) for the diffusion decoder.

    Three resolutions (28, 14, 7). The DeepJSCC estimate x_hat enters as an extra input channel,
    the decoder's 7x7 feature map is added at the bottleneck, t and SNR modulate every block.
    """

    def __init__(self, width: int = 32, feat_channels: int = 64, emb_dim: int = 128, knob: bool = False,
                 symbols_k: int | None = None):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 3 * width
        self.emb_dim = emb_dim
        self.knob = knob
        self.emb = nn.Sequential(nn.Linear(emb_dim + 1 + int(knob), emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # the received symbols and their reliabilities, straight from the receiver (not only through
        # the DeepJSCC decoder's features): a learned map to the 7x7 bottleneck
        self.symbols_in = nn.Linear(3 * symbols_k, 16 * 49) if symbols_k else None
        self.symbols_map = nn.Conv2d(16, c3, 1) if symbols_k else None
        self.feat_in = nn.Conv2d(feat_channels, c3, 1)
        self._build_body(2, c1, c2, c3, emb_dim)

    def forward(self, x_t, t, x_hat, feat, snr_db, tau=None, symbols=None):
        """`tau` [B]: the sampling temperature the source noise was drawn at (knob networks only);
        `symbols` [B, k, 3]: JSCCDecoder.symbol_inputs' weighted symbols and reliabilities."""
        cond = [timestep_embedding(t, self.emb_dim), snr_features(snr_db)]
        if self.knob:
            cond.append(tau.float()[:, None])
        e = self.emb(torch.cat(cond, dim=-1))
        extra = self.feat_in(feat)
        if self.symbols_in is not None:
            extra = extra + self.symbols_map(F.silu(self.symbols_in(symbols.flatten(1))).view(-1, 16, 7, 7))
        return self._body(torch.cat((x_t, x_hat), dim=1), extra, e)[0]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- models v2: hybrid analog

class AnalogBasis(nn.Module):
    """The SoftCast-style linear code as fixed buffers: the 2k strongest PCA axes of the training
    split, their variances and SoftCast's power allocation g_j ∝ lambda_j^(-1/4).

    `encode` maps an image to 2k real coefficients with unit average power per complex symbol;
    `lmmse` inverts it per coefficient from the received values and their noise variances. The
    hybrid codec adds learned parts around this exact linear scheme, so at initialisation it *is*
    the linear baseline and training can only move away from it where that lowers the loss.
    """

    def __init__(self, k: int, mean, components, eigenvalues):
        super().__init__()
        lam = torch.as_tensor(eigenvalues[: 2 * k], dtype=torch.float64)
        gains = torch.sqrt(k / torch.sqrt(lam).sum()) * lam ** -0.25
        self.k = k
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1))
        self.register_buffer("components", torch.as_tensor(components[: 2 * k], dtype=torch.float32))
        self.register_buffer("eigenvalues", lam.float())
        self.register_buffer("gains", gains.float())

    @classmethod
    def zeros(cls, k: int):
        """Shape-only placeholder (the buffers come from a checkpoint's state dict)."""
        return cls(k, torch.zeros(784), torch.zeros(2 * k, 784), torch.ones(2 * k))

    def encode(self, image):
        coeffs = (image.flatten(1) - self.mean) @ self.components.t()
        return coeffs * self.gains

    def lmmse(self, received, noise_var_real):
        """received [B, 2k] real values, noise_var_real [B, 2k] -> image [B,1,28,28] (not clipped)."""
        g, lam = self.gains, self.eigenvalues
        coeffs = received * (g * lam / (g * g * lam + noise_var_real))
        return (coeffs @ self.components + self.mean).view(-1, *IMAGE_SHAPE)


class AveragePower(nn.Module):
    """Unit power per complex symbol *on average over images* (SoftCast's constraint), not per frame.

    Per-frame normalisation throws away each frame's norm, one real number the decoder must then
    guess: for the linear code that costs 2.6 dB at 20 dB SNR (k = 128). Training divides by the
    batch's RMS and tracks it like BatchNorm; inference divides by the tracked value, a constant.
    `peak` soft-limits a frame's power to at most `peak` times the average (radio back-off).
    """

    def __init__(self, momentum: float = 0.01, peak: float = 4.0):
        super().__init__()
        self.momentum, self.peak = momentum, peak
        self.register_buffer("power", torch.ones(()))

    def forward(self, z):  # z [B, k, 2]
        frame_power = z.pow(2).sum(dim=(1, 2)) / z.shape[1]
        if self.training:
            power = frame_power.mean()
            with torch.no_grad():
                self.power.lerp_(power.detach(), self.momentum)
        else:
            power = self.power
        z = z / torch.sqrt(power + 1e-12)
        relative = frame_power / (power + 1e-12)
        # power gain 1 / (1 + (p / peak)^4)^(1/4): ~1 below the peak, flat at `peak` above it
        limit = (1 + (relative / self.peak) ** 4) ** -0.125
        return z * limit[:, None, None]


def _interp(x, xs, ys, slope_below: float, slope_above: float):
    """Piecewise-linear y(x) through the knots (xs increasing), extended beyond them with the
    given slopes; written as a sum of hinges (elementwise ops only, so it exports to any ONNX)."""
    seg = (ys[1:] - ys[:-1]) / (xs[1:] - xs[:-1]).clamp_min(1e-9)
    slopes = torch.cat((seg.new_tensor([slope_below]), seg, seg.new_tensor([slope_above])))
    hinge = torch.relu(x[:, None] - xs[None, :])                    # [B, G]
    return ys[0] + slope_below * (x - xs[0]) + hinge @ (slopes[1:] - slopes[:-1])


class SnrPowerMap(nn.Module):
    """Unit average power at every SNR, for a codec trained with power averaged over a batch of
    mixed SNRs (`AveragePower`), which lets the encoder spend more power at some SNRs than at
    others (measured: 1.37 at 0 dB, 0.66 at 20 dB for k = 128).

    `fit` measures P(c), the encoder's average output power when conditioned on SNR c. A channel
    at Es/N0 gamma (unit power) then carries the encoder conditioned on the c where the trained
    codec sees the same noise: c + 10 log10 P(c) = gamma, its output scaled by 1/sqrt(P(c)). The
    decoder undoes the scale (symbols * sqrt(P), noise_var * P) and is conditioned on c too, so
    every network sees exactly what it was trained on and the link meets the power constraint at
    every SNR. Unfitted (P = 1) it is the identity, which is what training uses. The tables are
    not saved in checkpoints: they are a function of the trained encoder, refitted on load."""

    GRID = tuple(float(c) for c in range(-10, 31))

    def __init__(self):
        super().__init__()
        grid = torch.tensor(self.GRID)
        self.register_buffer("gamma", grid.clone(), persistent=False)   # channel SNR of each knot
        self.register_buffer("cond", grid.clone(), persistent=False)    # the codec's SNR there
        self.register_buffer("power", torch.ones(len(self.GRID)), persistent=False)

    def condition(self, snr_db):
        return _interp(snr_db.float(), self.gamma, self.cond, 1.0, 1.0)

    def power_at(self, snr_db):
        return _interp(snr_db.float(), self.gamma, self.power, 0.0, 0.0).clamp_min(1e-3)

    @torch.no_grad()
    def fit(self, encoder, images):
        """Measure P(c) on `images` (the training split) with this map at identity."""
        self.gamma.copy_(self.cond)
        self.power.fill_(1.0)
        p = torch.stack([encoder(images, torch.full((len(images),), c)).pow(2).sum(-1).mean()
                         for c in self.cond.tolist()])
        gamma = self.cond + 10 * torch.log10(p)
        if not bool((gamma[1:] > gamma[:-1]).all()):
            raise ValueError("encoder power falls faster than 1 dB per dB of SNR: no unique operating point")
        self.gamma.copy_(gamma)
        self.power.copy_(p)
        return self

    def load_from(self, other: "SnrPowerMap"):
        for name in ("gamma", "cond", "power"):
            getattr(self, name).copy_(getattr(other, name))


class HybridEncoder(_ConvEncoderTrunk):
    """image, snr_db -> symbols [B,k,2]: SoftCast's linear code scaled per SNR, plus a learned
    convolutional residual (zero at initialisation), at unit average power (`AveragePower`)."""

    def __init__(self, basis: AnalogBasis, width: int = 48, cond_dim: int = 64):
        super().__init__()
        self.k = basis.k
        self.basis = basis
        self._build_trunk(self.k, width, cond_dim)
        self.linear_scale = nn.Linear(cond_dim, 1)
        nn.init.zeros_(self.linear_scale.weight)
        nn.init.zeros_(self.linear_scale.bias)
        nn.init.zeros_(self.to_symbols.weight)
        nn.init.zeros_(self.to_symbols.bias)
        self.normalize = AveragePower()
        self.snr_map = SnrPowerMap()

    def forward(self, image, snr_db):
        c = self.snr_map.condition(snr_db)
        cond = self.snr_mlp(snr_features(c))
        analog = self.basis.encode(image) * torch.exp(self.linear_scale(cond))
        z = analog + self._trunk(image, cond)
        return self.normalize(z.view(-1, self.k, 2)) * self.snr_map.power_at(snr_db).rsqrt()[:, None, None]


class HybridDecoder(_UNetBody):
    """(symbols, snr_db, noise_var) -> image: the linear LMMSE image, refined by a U-Net that also
    sees the symbols through a learned projection to a 7x7 map. The refiner's last layer starts at
    zero, so the untrained decoder is the linear baseline's decoder.

    `features()` returns the unclipped image (what training's loss sees) and the 7x7 bottleneck
    map the diffusion decoder is conditioned on; `forward()` clips to [0, 1].
    """

    def __init__(self, basis: AnalogBasis, width: int = 48, cond_dim: int = 64, use_noise_var: bool = True):
        super().__init__()
        k = basis.k
        self.k, self.basis, self.use_noise_var, self.width = k, basis, use_noise_var, width
        c1, c2 = width // 2, width
        self.snr_mlp = nn.Sequential(nn.Linear(1, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.from_symbols = nn.Linear(3 * k, 16 * 49)
        self._build_body(1, c1, c2, c2, cond_dim)
        self.sym_in = nn.Conv2d(16, c2, 3, padding=1)
        self.snr_map = SnrPowerMap()

    def codec_inputs(self, symbols, snr_db, noise_var):
        """(symbols, snr_db, noise_var) of the channel -> the same in the trained codec's terms
        (SnrPowerMap): the encoder's 1/sqrt(P) scale undone, the SNR it was conditioned on."""
        p = self.snr_map.power_at(snr_db)
        return symbols * p.sqrt()[:, None, None], self.snr_map.condition(snr_db), noise_var * p[:, None]

    def decoder_noise_var(self, snr_db, noise_var):
        """What the decoder uses: the receiver's per-symbol variance, or (ablation) the average SNR's."""
        if self.use_noise_var:
            return noise_var
        return snr_db_to_noise_var(snr_db.float())[:, None].expand_as(noise_var)

    def symbol_inputs(self, symbols, snr_db, noise_var):
        symbols, snr_db, noise_var = self.codec_inputs(symbols, snr_db, noise_var)
        return self._symbol_inputs(symbols, snr_db, noise_var)

    def _symbol_inputs(self, symbols, snr_db, noise_var):
        noise_var = self.decoder_noise_var(snr_db, noise_var)
        weight = 1.0 / (1.0 + noise_var)
        reliability = (-10.0 * torch.log10(noise_var.clamp(1e-4, 1e4)) / SNR_SCALE)
        return torch.cat((symbols * weight[..., None], reliability[..., None]), dim=-1)

    def features(self, symbols, snr_db, noise_var):
        symbols, snr_db, noise_var = self.codec_inputs(symbols, snr_db, noise_var)
        cond = self.snr_mlp(snr_features(snr_db))
        sym = self._symbol_inputs(symbols, snr_db, noise_var)
        noise_var = self.decoder_noise_var(snr_db, noise_var)
        nv_real = noise_var.clamp(1e-6, 1e6).repeat_interleave(2, dim=1) / 2
        analog = self.basis.lmmse(symbols.flatten(1), nv_real)
        sym_map = F.silu(self.from_symbols(sym.flatten(1))).view(-1, 16, 7, 7)
        refinement, feat = self._body(analog * 2 - 1, self.sym_in(sym_map), cond)
        return analog + refinement, feat

    def forward(self, symbols, snr_db, noise_var):
        return self.features(symbols, snr_db, noise_var)[0].clamp(0.0, 1.0)
