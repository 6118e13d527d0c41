"""ofdm_analog_rx on a stream with faults in it: noise only, exact zeros, DC, huge amplitude,
NaN/Inf, a NaN inside a frame, a burst cut short, a corrupted header, a header claiming more
symbols than were sent, a recording resampled by 1.001 and one oversampled 2x. Each fault is
followed by good frames that must decode, and the receiver's counters are exact: every fault
lands in its named counter, every good frame in `frames` (false triggers on noise vary and are
not counted here). Each fault alone, then all of them in one stream into one receiver."""
import math
import threading

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr
from scipy.signal import resample_poly

from diffsem import phy
from gnuradio import diffsem

K, SNR_DB, SEED = 128, 20.0, 0
SYM = 80
QUIET = dict.fromkeys(("frames", "headers_ok", "salvaged", "header_crc_fail", "malformed", "nonfinite",
                       "truncated", "interfered", "clock_mismatch", "wrong_rate"), 0)


def _noise(rng, n, scale=1.0):
    sigma = phy.noise_voltage_for_snr(SNR_DB) * scale
    return (sigma * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)


def _bursts(seqs, k=K):
    """The TX's bursts of symbol_source payloads (seed SEED), each with its 320 zeros either side."""
    pad = np.zeros(320, np.complex64)
    return np.concatenate([np.concatenate((pad, phy.reference_burst(phy.reference_symbols(SEED, s, k), s), pad))
                           for s in seqs])


def _cut(seq, n_claimed, n_sent):
    """A burst whose header claims n_claimed symbols, stopped after the OFDM symbols of n_sent."""
    burst = phy.reference_burst(phy.reference_symbols(SEED, seq, n_claimed), seq)
    pad = np.zeros(320, np.complex64)
    return np.concatenate((pad, burst[:(6 + -(-n_sent // 48)) * SYM], pad))


def _fault(name, rng, first):
    """(samples with the fault, then three good frames seq first.., noise added; the counters it
    must leave; the good seqs)."""
    good = list(range(first, first + 3))
    expect = dict(QUIET, frames=3, headers_ok=3)
    if name == "noise":
        x = np.zeros(30000, np.complex64)
    elif name == "zeros":   # exact zeros: no noise on them
        b = _bursts(good)
        return np.concatenate((np.zeros(30000, np.complex64), b + _noise(rng, b.size))), expect, good
    elif name == "dc":
        x = np.full(30000, 0.5, np.complex64)
    elif name == "huge":
        x = _noise(rng, 30000, 1e21)
    elif name == "nan_inf":
        x = _noise(rng, 30000, 10.0)
        x[::7], x[3::11] = np.nan, np.inf
    elif name == "huge_frames":   # a gain 80 dB too high (an int16 recording read as float)
        x = 1e4 * _bursts([first + 3, first + 4])
        expect.update(frames=5, headers_ok=5)
    elif name == "nan_in_frame":
        x = _bursts([first + 3])
        x[320 + 8 * SYM + 40] = np.nan     # mid payload symbol 2
        expect.update(nonfinite=1)
    elif name == "truncated":     # the tail lost in noise: delivered, the tail erased
        x = _cut(first + 3, 480, 96)
        expect.update(frames=4, headers_ok=4, truncated=1)
    elif name == "corrupt_header":
        x = _bursts([first + 3])
        x[320 + 2 * SYM:320 + 6 * SYM] = _noise(rng, 4 * SYM, 30.0)
        expect.update(header_crc_fail=1)
    elif name == "overlong_header":   # claims 4095 symbols, 128 sent: must not swallow what follows
        x = _cut(first + 3, 4095, K)
        expect.update(frames=4, headers_ok=4, truncated=1)
    elif name == "clock_1.001":
        x = resample_poly(_bursts([first + 3, first + 4, first + 5], 1000), 1001, 1000).astype(np.complex64)
        expect.update(frames=6, headers_ok=6, clock_mismatch=3)
    elif name == "rate_2x":
        x = resample_poly(_bursts([first + 3, first + 4, first + 5]), 2, 1).astype(np.complex64)
        expect.update(wrong_rate=3)
    x = np.concatenate((x, _bursts(good)))
    with np.errstate(invalid="ignore"):
        return (x + _noise(rng, x.size)).astype(np.complex64), expect, good


# rate_2x first: the 2x probe runs while no frame has come lately (burst_rx.RATE_PROBE_IDLE), as
# on a stream that is all at the wrong rate
FAULTS = ("rate_2x", "noise", "zeros", "dc", "huge", "nan_inf", "huge_frames", "nan_in_frame", "truncated",
          "corrupt_header", "overlong_header", "clock_1.001")


def _receive(x):
    """Run ofdm_analog_rx over x (then a little noise so the last frame completes) until the
    flowgraph ends with the stream (the receiver decodes inside its work call, so every PDU is
    out by then); (stats, PDUs)."""
    x = np.concatenate((x, _noise(np.random.default_rng(1), 8000)))
    tb = gr.top_block()
    rx, sink = diffsem.ofdm_analog_rx(), blocks.message_debug()
    tb.connect(blocks.vector_source_c(x.tolist()), rx)
    tb.msg_connect(rx, "out", sink, "store")
    done = threading.Thread(target=tb.run, daemon=True)  # a finite stream: the flowgraph ends by itself
    done.start()
    done.join(60)
    if done.is_alive():
        tb.stop()
        tb.wait()
        raise AssertionError("the receiver stalled: the flowgraph had not ended 60 s after its start")
    pdus = [pmt.to_python(sink.get_message(i)) for i in range(sink.num_messages())]
    return rx.stats(), pdus


def _check(stats, pdus, expect, good):
    assert {k: stats[k] for k in expect} == expect, stats
    by_seq = {meta["seq"]: (meta, np.asarray(data)) for meta, data in pdus}
    for seq in good:                         # every good frame decodes
        meta, got = by_seq[seq]
        mse = float(np.mean(np.abs(got - phy.reference_symbols(SEED, seq, K)) ** 2))
        assert 10 * math.log10(mse) < -15.0, (seq, mse)
        assert "cut" not in meta
    return by_seq


@pytest.mark.parametrize("name", FAULTS)
def test_each_fault_then_good_frames(name):
    x, expect, good = _fault(name, np.random.default_rng(FAULTS.index(name)), 10)
    stats, pdus = _receive(x)
    by_seq = _check(stats, pdus, expect, good)
    if name == "truncated":
        meta, got = by_seq[13]
        assert meta["cut"] == 480 - 96 and (got[96:] == 0).all()
    if name == "overlong_header":
        assert by_seq[13][0]["cut"] == 4095 - 3 * 48   # the 3 OFDM symbols sent are kept
    if name == "clock_1.001":
        assert all(abs(by_seq[s][0]["clock_ppm"] - 1000) < 300 for s in (13, 14, 15))


def test_all_faults_in_one_stream_into_one_receiver():
    rng = np.random.default_rng(99)
    parts, total, good = [], dict(QUIET), []
    for i, name in enumerate(FAULTS):
        x, expect, seqs = _fault(name, rng, 10 * i)
        parts.append(x)
        total = {k: total[k] + expect[k] for k in total}
        good += seqs
    stats, pdus = _receive(np.concatenate(parts))
    _check(stats, pdus, total, good)
