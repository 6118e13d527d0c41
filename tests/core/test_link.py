"""diffsem.link without a flowgraph: sequence numbers modulo the 12-bit header counter, lost frames
inferred from the gaps, reference matching, the frame accounting identity."""
from __future__ import annotations

import numpy as np

from diffsem import phy
from diffsem.link import accounting
from diffsem.link.seq import MAX_GAP_SHOWN, SEQ_MODULO, GapTracker, SeqCounter, seq_of


def test_one_modulus_the_header_counter():
    assert SEQ_MODULO == phy.SEQ_MODULO == 1 << phy.HEADER_BITS_SEQ == 4096


def test_seq_of_takes_integers_only():
    assert seq_of({"seq": 7}) == 7 and seq_of({"seq": np.int64(7)}) == 7
    assert seq_of({}) is None and seq_of({"seq": True}) is None and seq_of({"seq": 1.0}) is None


def test_counter_wraps_and_follows_the_callers_numbers():
    c = SeqCounter()
    assert [c.take() for _ in range(2)] == [0, 1]
    assert c.take(SEQ_MODULO + 5) == 5 and c.take() == 6
    c.take(SEQ_MODULO - 1)
    assert c.take() == 0


def test_gaps_are_the_lost_frames_across_the_wrap():
    g = GapTracker()
    assert g.received(SEQ_MODULO - 2) == []            # the first frame: nothing known before it
    assert g.received(1) == [SEQ_MODULO - 1, 0]        # two lost across the wrap
    assert g.received(2) == []


def test_a_repeated_or_late_frame_opens_no_gap():
    g = GapTracker()
    g.received(10)
    assert g.received(10) == [] and g.received(7) == []    # again, and late: nothing lost, nothing moved
    assert g.received(12) == [11]
    assert g.lost_before(13 + MAX_GAP_SHOWN + 1) == ([], MAX_GAP_SHOWN + 1)   # a jump: counted, not shown


def test_a_salvaged_seq_neither_opens_a_gap_nor_reappears_in_one():
    g = GapTracker()
    g.received(100)
    assert g.received(101, trusted=False) == []     # a right guess
    assert g.received(102) == []                    # ...is not shown as lost afterwards
    assert g.received(120, trusted=False) == []     # a wrong guess: no run of 17 "lost" frames
    assert g.received(103) == []                    # ...and the next real frame is no jump back
    assert g.received(106) == [104, 105]


def test_references_match_a_12_bit_seq_to_the_pending_source_seq():
    book = accounting.ReferenceBook(limit=3)
    for seq in (SEQ_MODULO + 1, SEQ_MODULO + 2, 5, 6):   # the oldest falls out at the limit
        book.add(seq, f"ref{seq}")
    assert len(book) == 3
    assert book.take(SEQ_MODULO + 2) == (SEQ_MODULO + 2, f"ref{SEQ_MODULO + 2}")
    assert book.take(1) == (1, None)                      # fell out: no match
    assert book.find(5) == (5, "ref5")


def test_the_reference_book_holds_only_the_pending_references():
    # a soak's steady state: each frame's reference is added, then taken by its 12-bit header seq
    # (or dropped by the encoder, or falls out): nothing is kept for frames accounted for
    book = accounting.ReferenceBook(limit=8)
    for seq in range(3 * SEQ_MODULO):
        book.add(seq, seq)
        if seq % 7 == 0:
            assert book.discard(seq)
        elif seq % 5:
            assert book.take(seq % SEQ_MODULO) == (seq, seq)
        assert len(book._by_modulus) <= len(book) <= 8
    assert book.find(12280 % SEQ_MODULO) == (12280, 12280)  # one left pending still matches its 12-bit seq


def test_accounting_attributes_receiver_drops_up_to_the_frames_unaccounted_for():
    counters = dict.fromkeys(accounting.COUNTERS, 0) | {"sent": 10, "decoded": 6, "queue_dropped": 1}
    c = accounting.settle(counters, rx_dropped=5, pending=3)
    assert c["crc_dropped"] == 3 and c["rx_false_triggers"] == 2 and c["missing"] == 0
    assert c["sent"] == c["decoded"] + c["crc_dropped"] + c["queue_dropped"] + c["bad_input"] + c["failed"] + c["missing"]
    assert accounting.drop_counter("queue_full: 16 queued") == "queue_dropped"
    assert accounting.drop_counter("model error") == "failed"
    assert accounting.crc_count_from_stats({"header_crc_fail": 2, "nonfinite": 1, "frames": 9}) == 3


def test_salvaged_frames_are_decoded_frames_and_the_identity_stays_exact():
    # 10 sent: 7 decoded (2 of them on a salvaged header), 1 queue drop, 2 receiver drops
    counters = dict.fromkeys(accounting.COUNTERS, 0) | {"sent": 10, "decoded": 7, "salvaged": 2, "queue_dropped": 1}
    c = accounting.settle(counters, rx_dropped=2, pending=0)
    assert c["sent"] == c["decoded"] + c["crc_dropped"] + c["queue_dropped"] + c["bad_input"] + c["failed"] + c["missing"]
    assert c["missing"] == 0 and c["crc_dropped"] == 2 and c["salvaged"] == 2 <= c["decoded"]
    # the receiver counts a salvaged frame as delivered, not as a CRC drop
    assert accounting.crc_count_from_stats({"header_crc_fail": 2, "salvaged": 2, "frames": 9}) == 2
    # truncated and clock-mismatched frames are delivered too; a frame at twice the rate is not
    assert accounting.crc_count_from_stats({"truncated": 3, "clock_mismatch": 4, "wrong_rate": 5, "frames": 9}) == 5
