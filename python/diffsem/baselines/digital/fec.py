"""The channel coding of the digital baseline: the K=7 rate-1/2 convolutional code (bit-exact with
gr-fec's ``cc_encoder``, polys 109/79, terminated), puncturing, the soft-input Viterbi decoder
(equivalent to gr-fec's ``cc_decoder``), the block interleaver and 802.11's scrambler.
"""
from __future__ import annotations

import numpy as np


CC_K = 7
CC_POLYS = (109, 79)         # gr-fec cc_encoder convention: bit i of a poly taps input u[t-i]
CC_TAIL = CC_K - 1           # terminated: 6 zero bits flush the encoder back to state 0
_N_STATES = 1 << (CC_K - 1)

# Puncturing patterns over the interleaved mother-code output (A1 B1 A2 B2 ...), 802.11a/n.
PUNCTURE = {
    "1/2": (1, 1),
    "2/3": (1, 1, 1, 0),
    "3/4": (1, 1, 1, 0, 0, 1),
    "5/6": (1, 1, 1, 0, 0, 1, 1, 0, 0, 1),
}

_REG = np.arange(1 << CC_K)  # register value r: bit0 = u[t], bit i = u[t-i]
_BRANCH_BITS = np.stack([np.array([bin(r & p).count("1") & 1 for r in _REG]) for p in CC_POLYS], axis=1)


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Terminated rate-1/2 encoding of bits [..., N] (0/1) -> [..., 2(N+6)], output order A B A B."""
    bits = np.asarray(bits, dtype=np.uint8)
    u = np.concatenate([bits, np.zeros(bits.shape[:-1] + (CC_TAIL,), np.uint8)], axis=-1)
    out = np.empty(u.shape + (2,), np.uint8)
    for j, poly in enumerate(CC_POLYS):
        acc = np.zeros_like(u)
        for i in range(CC_K):
            if (poly >> i) & 1:
                acc[..., i:] ^= u[..., : u.shape[-1] - i]
        out[..., j] = acc
    return out.reshape(bits.shape[:-1] + (-1,))


def punctured_length(n_mother: int, rate: str) -> int:
    pat = PUNCTURE[rate]
    full, rest = divmod(n_mother, len(pat))
    return full * sum(pat) + sum(pat[:rest])


def _keep_mask(n_mother: int, rate: str) -> np.ndarray:
    pat = np.asarray(PUNCTURE[rate], bool)
    return np.resize(pat, n_mother)


def puncture(coded: np.ndarray, rate: str) -> np.ndarray:
    return coded[..., _keep_mask(coded.shape[-1], rate)]


def depuncture(llr: np.ndarray, rate: str, n_mother: int) -> np.ndarray:
    """Put received LLRs back at their mother-code positions; punctured bits become erasures (0)."""
    mask = _keep_mask(n_mother, rate)
    out = np.zeros(llr.shape[:-1] + (n_mother,), np.float64)
    out[..., mask] = llr[..., : int(mask.sum())]
    return out


def viterbi_decode(llr: np.ndarray, n_info: int) -> np.ndarray:
    """Soft-input Viterbi for the terminated code: llr [B, 2(n_info+6)] (log P(0)/P(1); 0 = erasure)
    -> bits [B, n_info]. Max-log metric (correlation), start and end in state 0."""
    llr = np.atleast_2d(np.asarray(llr, np.float64))
    b = llr.shape[0]
    steps = n_info + CC_TAIL
    pairs = llr.reshape(b, steps, 2)
    sign = 1.0 - 2.0 * _BRANCH_BITS                                  # [128, 2]: +1 for bit 0
    nxt = np.arange(_N_STATES)
    pred0, pred1 = nxt >> 1, (nxt >> 1) | (_N_STATES >> 1)
    reg0, reg1 = nxt, nxt | _N_STATES                                # register of each branch
    metric = np.full((b, _N_STATES), -1e18)
    metric[:, 0] = 0.0
    decisions = np.empty((steps, b, _N_STATES), bool)
    for t in range(steps):
        bm = pairs[:, t, :] @ sign.T                                  # [B, 128]
        c0 = metric[:, pred0] + bm[:, reg0]
        c1 = metric[:, pred1] + bm[:, reg1]
        decisions[t] = c1 > c0
        metric = np.maximum(c0, c1)
        metric -= metric.max(axis=1, keepdims=True)
    state = np.zeros(b, np.int64)
    out = np.empty((b, steps), np.uint8)
    rows = np.arange(b)
    for t in range(steps - 1, -1, -1):
        out[:, t] = state & 1
        state = (state >> 1) | (decisions[t, rows, state].astype(np.int64) << (CC_K - 2))
    return out[:, :n_info]


INTERLEAVER_COLUMNS = 16  # as 802.11a: neighbouring coded bits land ~1/16 of the frame apart


def interleaver(n_bits: int, bits_per_symbol: int = 1, columns: int = INTERLEAVER_COLUMNS) -> np.ndarray:
    """802.11a's two-step block interleaver over a frame's n air bits; air[j] = coded[perm[j]].

    1. Written row by row into `columns` columns, read column by column (pruned when n is not a
       multiple): neighbouring coded bits land n/columns apart, i.e. on subcarriers far apart
       (symbol i rides subcarrier i % 48), so one faded subcarrier cannot wipe out a trellis path.
    2. Within each group of s = max(bps/2, 1) bits, rotate by the column index: successive coded
       bits alternate between the strong and weak bit positions of a Gray QAM symbol instead of
       sitting on the same one (which costs ~1 dB at 64-QAM)."""
    rows = -(-n_bits // columns)
    k = np.arange(n_bits)
    first = np.empty(n_bits, np.int64)
    first[np.argsort((k % columns) * rows + k // columns, kind="stable")] = k   # coded k -> position
    s = max(bits_per_symbol // 2, 1)
    if s > 1 and n_bits % s == 0:
        start = s * (first // s)
        shift = (columns * start) // n_bits            # the column the group starts in
        first = start + (first - start + s - shift % s) % s
    perm = np.empty(n_bits, np.int64)
    perm[first] = k
    return perm


SCRAMBLER_PERIOD = 127  # 802.11's scrambler x^7 + x^4 + 1: an m-sequence of period 127


def scrambler_sequence(n_bits: int, state: int = 0x7F) -> np.ndarray:
    """The first n_bits of 802.11a's scrambler (x^7 + x^4 + 1) from a nonzero 7-bit state; the
    all-ones state gives 00001110 11110010 ... as in the standard."""
    state = int(state)
    if not 0 < state < 128:
        raise ValueError("scrambler state must be a nonzero 7-bit value")
    out = np.empty(n_bits, np.uint8)
    for i in range(n_bits):
        bit = ((state >> 6) ^ (state >> 3)) & 1
        state = ((state << 1) | bit) & 0x7F
        out[i] = bit
    return out


_scrambler_table: list = []  # [128, 127] uint8: row s = one period from state s (row 0 unused)


def frame_scrambler(n_bits: int, seq=0) -> np.ndarray:
    """Scrambling bits of a frame's n_bits air bits: [n_bits] for an int seq, [B, n_bits] for an
    array of B sequence numbers. The state is 127 - seq % 127 (seq 0: the all-ones state).

    Why: XORed onto the air bits after the interleaver (as LTE scrambles its coded bits), it
    makes the Gray QAM points near uniform over a frame whatever the data. Unscrambled, a frame
    that is mostly zeros (payload padding, coded padding, the tail, a short or absent image) sits
    on one corner of the constellation (16-QAM: power 1.8 for all-zero bits); at k=32 almost
    every frame is such a frame. The state follows the frame's sequence number (the OFDM header
    carries it; the library Scheme uses the frame's index in the batch), as 802.11 changes its
    seed per frame, so identical frames do not all get the same power and the average power per
    channel use over frames is 1 (over the 127 states every 6-bit pattern occurs equally often
    but for one). The receiver flips its LLR signs where the sequence is 1, which costs nothing."""
    if not _scrambler_table:
        table = np.zeros((128, SCRAMBLER_PERIOD), np.uint8)
        for state in range(1, 128):
            table[state] = scrambler_sequence(SCRAMBLER_PERIOD, state)
        table.flags.writeable = False
        _scrambler_table.append(table)
    states = SCRAMBLER_PERIOD - np.asarray(seq, np.int64) % SCRAMBLER_PERIOD
    return _scrambler_table[0][states[..., None], np.arange(n_bits) % SCRAMBLER_PERIOD]
