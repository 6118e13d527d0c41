"""The teacher's and the students' training objectives (diffsem.nn.diffusion): each is zero for
the network that does what it should and large for one that goes the other way, so a flipped or
mis-scaled target cannot train silently; and the teacher's loss falls when the U-Net trains."""
import torch
from torch import nn

from diffsem.nn.diffusion import distillation_loss, euler_sample, flow_matching_loss
from diffsem.nn.models import CondUNet


class _Oracle(nn.Module):
    """A "network" returning a fixed function of (x_t, t): it stands in for the U-Net, so the
    test exercises the loss's target and sampling path, not a model."""

    def __init__(self, fn, knob=False):
        super().__init__()
        self.fn, self.knob = fn, knob

    def forward(self, x_t, t, x_hat, feat, snr_db, tau=None, symbols=None):
        return self.fn(x_t, t.reshape(-1, 1, 1, 1))


def _batch(b=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(b, 1, 28, 28, generator=g) * 2 - 1
    x_hat = x0 + 0.3 * torch.randn(x0.shape, generator=g)
    return x0, x_hat, torch.zeros(b, 8, 7, 7), torch.full((b,), 10.0)


def test_flow_matching_is_zero_for_the_true_velocity_and_not_for_its_opposite():
    x0, x_hat, feat, snr = _batch()
    # on the straight path x_t = (1 - t) x0 + t x1 the velocity x1 - x0 is (x_t - x0) / t
    right = _Oracle(lambda x_t, t: (x_t - x0) / t.clamp_min(1e-6))
    wrong = _Oracle(lambda x_t, t: -(x_t - x0) / t.clamp_min(1e-6))
    for knob in (False, True):
        right.knob = wrong.knob = knob
        g = torch.Generator().manual_seed(1)
        assert flow_matching_loss(right, x0, x_hat, feat, snr, 0.5, g).item() < 1e-6
        g = torch.Generator().manual_seed(1)
        assert flow_matching_loss(wrong, x0, x_hat, feat, snr, 0.5, g).item() > 0.5


def test_distillation_matches_a_student_step_to_the_teachers_steps():
    x0, x_hat, feat, snr = _batch()
    c = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    teacher = _Oracle(lambda x, t: c.expand_as(x))                  # a constant velocity: any number
    for steps, substeps in ((4, 2), (2, 4)):                         # of Euler steps lands at x - c dt
        g = torch.Generator().manual_seed(3)
        same = distillation_loss(_Oracle(lambda x, t: c.expand_as(x)), teacher, steps, x0, x_hat, feat, snr, 0.5,
                                 g, teacher_substeps=substeps)
        g = torch.Generator().manual_seed(3)
        flipped = distillation_loss(_Oracle(lambda x, t: -c.expand_as(x)), teacher, steps, x0, x_hat, feat, snr,
                                    0.5, g, teacher_substeps=substeps)
        assert same.item() < 1e-6 and flipped.item() > 0.5
    # a velocity that depends on x: the target is the teacher's two half steps, not one full step
    curved = _Oracle(lambda x, t: x)
    x_t, t = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(4)), torch.ones(4)
    two_half = euler_sample(lambda x, s: curved(x, s, None, None, None), x_t, 2, t_start=t, dt=0.25)
    assert torch.allclose(two_half, x_t * 0.75 ** 2)                 # (1 - dt)^2, where one step gives 1 - 2 dt


def test_the_teachers_loss_falls_as_the_unet_trains():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a small net: one thread is as fast, and the suite runs beside others
    try:
        torch.manual_seed(0)
        x0, x_hat, feat, snr = _batch(32, seed=5)
        unet = CondUNet(width=8, feat_channels=8, emb_dim=16)
        opt = torch.optim.Adam(unet.parameters(), lr=3e-3)

        def held_out():
            with torch.no_grad():
                return flow_matching_loss(unet, x0, x_hat, feat, snr, 0.5, torch.Generator().manual_seed(99)).item()
        before = held_out()
        g = torch.Generator().manual_seed(6)
        for _ in range(40):
            opt.zero_grad()
            flow_matching_loss(unet, x0, x_hat, feat, snr, 0.5, g).backward()
            opt.step()
        assert held_out() < 0.8 * before   # 0.64 of it after these 40 steps
    finally:
        torch.set_num_threads(threads)
