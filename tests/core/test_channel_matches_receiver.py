"""The training channel's estimated-CSI mode hands the decoder what the radio's receiver does.

The same frames (same payloads, same 8-tap selective channel realisations, same noise level,
10 dB) go through diffsem.phy.burst_rx.BurstReceiver (bursts built like ofdm_analog_tx, taps applied
by convolution, AWGN; diffsem.experiments.csi_model) and through channel.transmit(csi="estimated") (its
channel_gains replaced by those realisations' per-carrier gains). Compared:

* the 10/50/90 % quantiles of log10(noise_var / sigma^2) within 0.04 decades (~10 %). Both
  runs share the channel, so what differs is only the estimate error: with 100 frames x 256
  symbols the matched model lands within ~0.01 decade of the receiver, the old one-training-symbol
  model (h_hat = h + CN(0, sigma^2)) ~0.08 decade low in the lower quantiles.
* the squared equalised error relative to the reported noise_var, as the mean over symbols of
  |s_hat - s|^2 / noise_var (1 when noise_var is honest): the receiver's is 1.00-1.02, the
  model's must be within 0.15 of it. (The ratio of the means, mean|s_hat - s|^2 / mean noise_var,
  is dominated by the few deepest fades of a run and moves by +-30 % between noise draws at this
  size, so it is not asserted.) The old model reports sigma^2/|h_hat|^2 while its error is
  ~2 sigma^2/|h_hat|^2: ~1.97, which fails.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from diffsem import channel  # noqa: E402
from diffsem.experiments import csi_model  # noqa: E402

SNR = 10.0
FRAMES, SYMBOLS = 100, 256


def test_estimated_csi_matches_burst_receiver(monkeypatch):
    r = csi_model.measure("selective", SNR, n_frames=FRAMES, n_symbols=SYMBOLS, seed=1)
    ok = np.asarray(r["received"])
    assert ok.sum() >= 0.95 * FRAMES
    h = csi_model.carrier_gains(r["taps"][ok], SYMBOLS)
    sent = np.stack([p for p, o in zip(r["payloads"], ok) if o])
    s = torch.tensor(np.stack((sent.real, sent.imag), -1), dtype=torch.float32)
    h_t = torch.tensor(np.stack((h.real, h.imag), -1), dtype=torch.float32)
    monkeypatch.setattr(channel, "channel_gains", lambda *a, **k: h_t)
    s_hat, nv = channel.transmit(s, SNR, "selective", "estimated", generator=torch.Generator().manual_seed(0))
    nv = nv.numpy().ravel()
    err = ((s_hat - s) ** 2).sum(-1).numpy().ravel()

    qs = [0.1, 0.5, 0.9]
    q_rx = np.quantile(np.log10(r["noise_var"] / r["sigma2"]), qs)
    q_model = np.quantile(np.log10(nv / r["sigma2"]), qs)
    assert np.all(np.abs(q_model - q_rx) < 0.04), (q_rx, q_model)

    norm_rx = float(np.mean(r["sq_err"] / r["noise_var"]))
    norm_model = float(np.mean(err / nv))
    assert abs(norm_rx - 1.0) < 0.1, norm_rx  # the receiver's own noise_var is honest
    assert abs(norm_model - norm_rx) < 0.15, (norm_rx, norm_model)
