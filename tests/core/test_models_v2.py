"""The hybrid analog codec, the partial-frame impairments of the training channel and the
temperature knob of the velocity network."""
import numpy as np
import pytest
import torch

from diffsem.baselines.linear import LinearScheme
from diffsem.pca_basis import load_basis
from diffsem.channel import ERASED_NOISE_VAR, impairment_cells, transmit
from diffsem.nn.diffusion import KNOB_ZERO_FRACTION, draw_temperature
from diffsem.nn.models import AnalogBasis, AveragePower, CondUNet, HybridDecoder, HybridEncoder, SnrPowerMap


def psnr(a, b):
    mse = (a - b).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse)).mean())


@pytest.fixture(scope="module")
def basis():
    b = load_basis()
    return AnalogBasis(32, b["mean"], b["components"], b["eigenvalues"])


def test_untrained_hybrid_codec_is_the_linear_baseline(basis):
    """The learned parts start at zero, so before training the codec sends SoftCast's code and
    decodes it by LMMSE: the same images as the linear baseline, up to float32 rounding."""
    from diffsem import data
    x = torch.from_numpy(data.load("test")[0][:64].copy())
    enc, dec = HybridEncoder(basis, width=16).eval(), HybridDecoder(basis, width=16).eval()
    lin = LinearScheme(32)
    snr = torch.full((64,), 15.0)
    with torch.no_grad():
        sym = enc(x, snr)
        assert torch.allclose(sym, lin.encode(x), rtol=2e-2, atol=1e-4)  # the peak limit: -1.2 % at 2.3x power
        nv = torch.full((64, 32), 10 ** -1.5)
        g = torch.Generator().manual_seed(0)
        noisy = sym + torch.randn(sym.shape, generator=g) * (10 ** -1.5 / 2) ** 0.5
        ours = dec(noisy, snr, nv)
    theirs = lin.decode(noisy, snr, nv)
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert abs(psnr(ours, x) - psnr(theirs, x)) < 0.01


def test_average_power_is_unit_over_images_not_per_frame():
    norm = AveragePower(momentum=1.0)
    z = torch.randn(256, 16, 2) * torch.linspace(0.5, 1.5, 256)[:, None, None]
    out = norm(z)                                   # training: divides by the batch's RMS
    frame = out.pow(2).sum((1, 2)) / 16
    assert abs(float(frame.mean()) - 1.0) < 0.02
    assert float(frame.std()) > 0.3                 # frames keep their own power
    norm.eval()
    assert torch.allclose(norm(z), out, atol=1e-3)  # inference: the tracked constant
    loud = torch.randn(4, 16, 2) * 10
    assert float((norm(loud).pow(2).sum((1, 2)) / 16).max()) < 4.2   # the peak limit


@pytest.mark.parametrize("kind", ["erasure", "burst", "truncation", "narrowband"])
def test_impairments_hit_the_asked_fraction_and_mark_what_they_destroy(kind):
    g = torch.Generator().manual_seed(0)
    hit = impairment_cells(kind, 0.25, 2000, 144, g)   # 144 = 3 full OFDM symbols
    assert abs(float(hit.float().mean()) - 0.25) < 0.03
    s = torch.randn(8, 144, 2) / 2 ** 0.5
    s_hat, nv = transmit(s, 20.0, "awgn", generator=g, impairment=(kind, 0.25, 0.0))
    if kind == "narrowband":     # an interferer at 0 dB SIR: those cells are noisy, not erased
        assert 0.5 < float(nv.max()) < 2.0 and float(nv.min()) < 0.02
    else:
        erased = nv >= ERASED_NOISE_VAR
        assert erased.any() and bool((s_hat[erased] == 0).all())


def test_knob_temperatures_cover_zero_and_the_unit_interval():
    unet = CondUNet(width=8, feat_channels=8, knob=True)
    tau = draw_temperature(unet, 20000, torch.Generator().manual_seed(0))
    assert abs(float((tau == 0).float().mean()) - KNOB_ZERO_FRACTION) < 0.02
    assert float(tau.max()) > 0.99 and float(tau.min()) == 0.0
    assert bool((draw_temperature(CondUNet(width=8, feat_channels=8), 5) == 1).all())


def test_knob_network_responds_to_its_temperature():
    torch.manual_seed(0)
    unet = CondUNet(width=8, feat_channels=8, knob=True, symbols_k=16)
    for name, p in unet.named_parameters():          # output layer and FiLM start at zero
        if name.startswith("out.") or ".film." in name:
            torch.nn.init.normal_(p, std=0.1)
    args = (torch.randn(2, 1, 28, 28), torch.full((2,), 0.5), torch.zeros(2, 1, 28, 28),
            torch.randn(2, 8, 7, 7), torch.full((2,), 10.0))
    sym = torch.randn(2, 16, 3)
    a = unet(*args, tau=torch.zeros(2), symbols=sym)
    b = unet(*args, tau=torch.ones(2), symbols=sym)
    c = unet(*args, tau=torch.ones(2), symbols=sym + 1)
    assert (a - b).abs().max() > 1e-4 and (b - c).abs().max() > 1e-4


class _SnrDependentPower(torch.nn.Module):
    """A toy encoder whose output power falls 0.3 dB per dB of SNR, as a codec trained with power
    averaged over mixed SNRs may learn: 2.0 at -10 dB, 0.25 at 20 dB."""

    def forward(self, images, snr_db):
        p = 2.0 * 10 ** (-0.03 * (snr_db + 10))
        return torch.ones(len(images), 8, 2) * (p / 2).sqrt()[:, None, None]


def test_power_map_is_the_identity_until_fitted():
    m = SnrPowerMap()
    snr = torch.tensor([-20.0, -3.3, 0.0, 17.5, 40.0])
    assert torch.allclose(m.condition(snr), snr)
    assert torch.allclose(m.power_at(snr), torch.ones(5))


def test_power_map_gives_unit_power_at_every_channel_snr_and_the_decoder_undoes_it():
    toy = _SnrDependentPower()
    m = SnrPowerMap().fit(toy, torch.zeros(4, 1, 28, 28))
    for gamma in (-5.0, 0.0, 7.5, 20.0):
        g = torch.full((4,), gamma)
        c = m.condition(g)
        # the operating point: the trained codec, conditioned on c, sees the channel's noise
        assert float(c[0] + 10 * torch.log10(toy(torch.zeros(1), c[:1]).pow(2).sum(-1).mean())) == pytest.approx(gamma, abs=0.05)
        sent = toy(torch.zeros(4), c) * m.power_at(g).rsqrt()[:, None, None]
        assert float(sent.pow(2).sum(-1).mean()) == pytest.approx(1.0, abs=0.02)
        # the decoder's side: the encoder's raw output back, and the noise in the codec's terms
        dec = HybridDecoder.__new__(HybridDecoder)
        torch.nn.Module.__init__(dec)
        dec.snr_map = m
        raw, c_dec, nv = dec.codec_inputs(sent, g, torch.full((4, 8), 10 ** (-gamma / 10)))
        assert torch.allclose(raw, toy(torch.zeros(4), c), rtol=1e-3)
        assert torch.allclose(c_dec, c)
        assert torch.allclose(nv, torch.full((4, 8), 10 ** (-float(c[0]) / 10)), rtol=0.02)


def test_power_map_refuses_an_encoder_whose_power_falls_a_db_per_db():
    class Steep(torch.nn.Module):
        def forward(self, images, snr_db):
            return torch.ones(len(images), 8, 2) * (10 ** (-0.12 * snr_db) / 2).sqrt()[:, None, None]
    with pytest.raises(ValueError, match="no unique operating point"):
        SnrPowerMap().fit(Steep(), torch.zeros(2, 1, 28, 28))
