"""A recipe's teacher may start from an exported graph's U-Net (`teacher.init`): the weights read
back from ONNX are the ones exported, GroupNorm affines included, and only the pinned file loads."""
import pytest
import torch

from diffsem.nn.export import _export
from diffsem.nn.models import CondUNet
from diffsem.nn.runs import load_unet_from_onnx
from diffsem.runtime.cards import sha256_file


class _Sampler(torch.nn.Module):
    """The shape of an exported sampler: a U-Net under `unet`, called on graph inputs."""

    def __init__(self):
        super().__init__()
        self.unet = CondUNet(width=8, feat_channels=8, knob=True, symbols_k=16)

    def forward(self, x_t, feat, symbols):
        b = x_t.shape[0]
        return self.unet(x_t, torch.full((b,), 0.5), torch.zeros_like(x_t), feat, torch.full((b,), 10.0),
                         tau=torch.ones(b), symbols=symbols)


def test_unet_weights_round_trip_through_onnx(tmp_path):
    torch.manual_seed(0)
    sampler = _Sampler().eval()
    with torch.no_grad():  # every parameter away from its init, so a swapped weight/bias shows
        for p in sampler.unet.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path / "s.onnx"
    inputs = {"x_t": torch.randn(2, 1, 28, 28), "feat": torch.randn(2, 8, 7, 7), "symbols": torch.randn(2, 16, 3)}
    _export(sampler, inputs, "image", path)
    fresh = load_unet_from_onnx(CondUNet(width=8, feat_channels=8, knob=True, symbols_k=16), path, sha256_file(path))
    for name, want in sampler.unet.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], want), name


def test_unet_weights_refuse_a_file_other_than_the_pinned_one(tmp_path):
    path = tmp_path / "s.onnx"
    path.write_bytes(b"not the graph")
    with pytest.raises(ValueError, match="not the pinned"):
        load_unet_from_onnx(CondUNet(width=8), path, "0" * 64)
    with pytest.raises(FileNotFoundError, match="git log"):
        load_unet_from_onnx(CondUNet(width=8), tmp_path / "absent.onnx", "0" * 64)
