"""Matched-filter frame detection (diffsem.phy.sync) and the soft header decoding of the burst
receiver, without GNU Radio."""
import math
import os
import sys

import numpy as np

from diffsem import phy
from diffsem.phy import burst_rx
from diffsem.phy.ofdm import DEFAULT_LAYOUT as LAY
from diffsem.phy.sync import PreambleDetector

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from test_phy_rx import awgn, cn, stream  # noqa: E402  (the numpy burst builder)

SYM = LAY.fft_len + LAY.cp_len


def detect(x, chunk=3000):
    det, found = PreambleDetector(LAY), []
    for i in range(0, x.size, chunk):
        found += det.scan(x[i:i + chunk])
    return found


def test_detects_every_frame_at_0_db_with_exact_timing_and_cfo():
    rng = np.random.default_rng(3)
    x, triggers = stream([cn(rng, 128) for _ in range(40)], gap=640, cfo=0.3)
    starts = np.asarray(triggers) - (SYM - min(3, LAY.cp_len // 4))
    found = detect(awgn(x, 0.0, rng))
    assert [f[0] for f in found] == starts.tolist()
    assert np.max(np.abs(np.array([f[1] for f in found]) - 0.3)) < 0.08


def test_no_detection_on_noise_or_payload():
    rng = np.random.default_rng(4)
    assert detect(cn(rng, 200_000)) == []
    payload_only = np.concatenate([np.fft.ifft(cn(rng, 64)) * 8 for _ in range(1000)]).astype(np.complex64)
    assert detect(awgn(payload_only, 20.0, rng)) == []


def test_receiver_finds_frames_without_any_trigger_at_0_db():
    rng = np.random.default_rng(5)
    x, _ = stream([cn(rng, 128) for _ in range(30)], gap=640, cfo=-0.2)
    rx = burst_rx.BurstReceiver(LAY)
    events = []
    y = awgn(x, 0.0, rng)
    for i in range(0, y.size, 4096):
        events += rx.push(y[i:i + 4096])
    seqs = [v.seq for k, v in events if k == "frame"]
    assert len(seqs) >= 29 and seqs == sorted(seqs)


def test_soft_header_corrects_weak_bits_and_refuses_garbage():
    bits = phy.header_bits(128, 77, LAY.n_data).astype(float)
    soft = (2 * bits - 1) * 1.0
    assert burst_rx.decode_header(soft, LAY.n_data) == (128, 77, 0)
    for flips in ([3], [5, 20]):
        bad = soft.copy()
        bad[flips] *= -0.1           # wrong, and the least reliable
        assert burst_rx.decode_header(bad, LAY.n_data) == (128, 77, len(flips))
    fill = soft.copy()
    fill[[40, 41]] = 0.2             # two wrong zero-fill bits are tolerated
    assert burst_rx.decode_header(fill, LAY.n_data)[:2] == (128, 77)
    rng = np.random.default_rng(6)
    wrong = sum(burst_rx.decode_header(rng.standard_normal(LAY.n_data), LAY.n_data) is not None
                for _ in range(2000))
    assert wrong < 20  # random soft values (a trigger on noise): < 1 % accepted


def test_detections_do_not_depend_on_the_chunking():
    """The detector keeps its correlations only where the metric reaches the threshold, across
    chunk boundaries: chunks of 333 samples and of 64k find the same frames, CFOs and metrics
    (to the float32 rounding of the FFT blocks, which start elsewhere)."""
    rng = np.random.default_rng(6)
    x, triggers = stream([cn(rng, 128) for _ in range(25)], gap=500, cfo=0.2)
    y = awgn(x, 3.0, rng)
    small, large = detect(y, 333), detect(y, 65536)
    assert len(small) == 25 and [f[0] for f in small] == [f[0] for f in large]
    np.testing.assert_allclose([f[1:] for f in small], [f[1:] for f in large], rtol=1e-4, atol=1e-6)


def test_nan_inf_and_huge_samples_do_not_blind_the_detector_to_the_frames_beside_them():
    """A NaN, an Inf or a 1e20 sample taken as it is turns its whole FFT block's metric into NaN
    or rounding noise, and the frames sharing the block go undetected: the detector zeroes them."""
    rng = np.random.default_rng(6)
    x, triggers = stream([cn(rng, 128) for _ in range(3)], gap=320)
    starts = (np.asarray(triggers) - (SYM - min(3, LAY.cp_len // 4))).tolist()
    for bad in (np.nan, np.inf, 1e20):
        y = awgn(x, 20.0, rng)
        y[100:300:7] = bad    # in the first gap, in the first frame's FFT block
        assert [f[0] for f in detect(y, chunk=4096)] == starts, bad
