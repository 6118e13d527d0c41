"""A header whose CRC fails is salvaged when the link's k is fixed: maximum likelihood over the
4096 sequence numbers with the length known (burst_rx.decode_header_known_length)."""
import numpy as np

from diffsem import phy
from diffsem.phy import burst_rx


def _soft(seq, k=144, sd=0.0, rng=None):
    bits = np.where(phy.header_bits(k, seq, 48) > 0, 1.0, -1.0)
    return bits + (rng.normal(0, sd, bits.size) if sd else 0.0)


def test_known_length_recovers_headers_the_crc_chase_loses_and_rarely_a_wrong_seq():
    rng = np.random.default_rng(0)
    ok = wrong = failed_chase = 0
    for _ in range(600):
        soft = _soft(1234, sd=0.6, rng=rng)
        if burst_rx.decode_header(soft, 48) is not None:
            continue
        failed_chase += 1
        got = burst_rx.decode_header_known_length(soft, 48, 144)
        if got is not None:
            ok += got[1] == 1234
            wrong += got[1] != 1234
    assert failed_chase > 50 and ok > 0.3 * failed_chase and wrong == 0
    assert burst_rx.decode_header_known_length(_soft(77), 48, 144)[:2] == (144, 77)


def test_known_length_refuses_most_noise():
    rng = np.random.default_rng(1)
    taken = sum(burst_rx.decode_header_known_length(rng.normal(0, 1, 48), 48, 144) is not None for _ in range(500))
    assert taken < 0.1 * 500    # noise triggers are refused before (preamble fit, BPSK quality)
    near = sum(burst_rx.decode_header_known_length(rng.normal(0, 1, 48), 48, 144, 100) is not None for _ in range(500))
    assert near < 0.02 * 500    # the expected seqs are 16 of 4096: noise rarely favours them


def test_the_seqs_after_the_last_good_header_are_searched_first_and_a_restart_is_not_forced_into_them():
    """A lost frame's seq is most likely a few after the last header that passed its CRC: searched
    there first, more failed headers are salvaged than over all 4096 alike, none with a wrong seq.
    A frame from a restarted TX (its seq far from the expected ones) must not be taken for one of
    them."""
    rng = np.random.default_rng(2)
    window = all_alike = wrong = failed = restart_wrong = 0
    for _ in range(400):
        seq = int(rng.integers(phy.SEQ_MODULO))
        expect = (seq - int(rng.geometric(0.5)) + 1) % phy.SEQ_MODULO
        soft = _soft(seq, sd=0.6, rng=rng)
        if burst_rx.decode_header(soft, 48) is not None:
            continue
        failed += 1
        got = burst_rx.decode_header_known_length(soft, 48, 144, expect)
        window += got is not None
        wrong += got is not None and got[1] != seq
        all_alike += burst_rx.decode_header_known_length(soft, 48, 144) is not None
        far = burst_rx.decode_header_known_length(soft, 48, 144, (seq + 1000) % phy.SEQ_MODULO)
        restart_wrong += far is not None and far[1] != seq
    assert failed > 50 and window > 1.8 * all_alike and wrong == 0 and restart_wrong == 0
