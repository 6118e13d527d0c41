"""channel_sim's partial-frame impairments hit the cells the training channel defines
(diffsem.channel.impairment_cells_numpy), and the receiver sees them."""
import numpy as np
import pytest

from diffsem.channel import impairment_cells_numpy
from gnuradio import diffsem
from gnuradio.diffsem.harness import PhyLoopback

K = 144  # 3 full OFDM symbols


def _loopback(kind, fraction, n_frames=12):
    tb = PhyLoopback(10.0, "awgn", n_frames=n_frames, n_symbols=K, seed=1, keep_symbols=True,
                     channel_kwargs=dict(impairment=kind, impairment_fraction=fraction, sir_db=0.0, frame_k=K))
    r = tb.run_until_done(timeout=90)
    hits = np.array(tb.channel.partial_frame.hits)
    err = np.array([b for _, b in tb.checker.symbol_records])
    return r, hits, err


@pytest.mark.parametrize("kind,fraction", [("narrowband", 0.125), ("burst", 0.34), ("truncation", 0.3)])
def test_stream_impairment_hits_the_training_cells_and_the_receiver_sees_them(kind, fraction):
    r, hits, err = _loopback(kind, fraction)
    assert r["lost"] == 0 and hits.shape == err.shape
    # the training definition, same function: the same fraction of cells
    train = impairment_cells_numpy(kind, fraction, 2000, K, 0)
    tol = 0.0 if kind in ("narrowband", "truncation") else 0.15
    assert abs(hits.mean() - train.mean()) <= tol + 1e-9
    # the receiver's equalised error: ~0.1 (10 dB) on clean cells; >= Es on the hit ones
    assert err[hits].mean() > 0.8 and err[~hits].mean() < 0.6
    if kind != "burst":   # a per-carrier / per-tail impairment leaves the other cells alone
        assert err[~hits].mean() < 0.15


def test_training_and_stream_draw_the_same_cells_from_the_same_seed():
    import torch
    from diffsem.channel import impairment_cells
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=g2))
    for kind in ("erasure", "burst", "truncation", "narrowband"):
        a = impairment_cells(kind, 0.25, 4, K, g1).numpy()
        assert (a == impairment_cells_numpy(kind, 0.25, 4, K, seed)).all()
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=g2))


def test_partial_frame_arguments_refused():
    with pytest.raises(ValueError):
        diffsem.channel_sim(impairment="erasure")
    with pytest.raises(ValueError):
        diffsem.channel_sim(impairment="burst", impairment_fraction=1.5)
    assert diffsem.channel_sim().partial_frame is None   # off: no stage connected
