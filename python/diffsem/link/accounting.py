"""Frame accounting and reference matching of the semantic link (what link_metrics reports).

Accounting: sent = decoded + unmatched + crc_dropped + queue_dropped + bad_input + failed + missing.
`unmatched` frames were received but their reference was gone (older than the reference window,
when the backlog exceeds it): counted apart, never as decoded. Drop notices that name no frame
sent are counted as drops_unmatched, outside the identity. (A link with no reference stream
counts every frame out of the decoder as decoded and every notice by its reason.)
`salvaged` counts the decoded frames whose header failed its CRC and was recovered with the
link's fixed k (meta "salvaged" from ofdm_analog_rx): decoded and scored like the others, never
black, reported apart (salvaged <= decoded). `filled` counts the lost frames the decoder showed as
its fill from nothing (meta "filled", a gap in the header seq): they stay lost in the identity
(crc_dropped or missing), scored apart from the decoded frames (filled <= crc_dropped + missing).
crc_dropped comes from the receiver's own counters (header CRC failed, malformed or non-finite
payload). `missing` is in flight while the link runs; a frame still missing once the link has
drained was never detected by the receiver (lost). Receiver drops beyond the frames unaccounted
for are sync triggers on noise whose "header" failed its CRC: counted as rx_false_triggers.

References: the PHY header carries a 12-bit sequence number, so a received seq is matched
exactly first and otherwise modulo SEQ_MODULO against the references still pending (at most
MAX_REFERENCES < SEQ_MODULO are kept, so the match is unique).
"""
from __future__ import annotations

from collections import OrderedDict

from diffsem.link.seq import SEQ_MODULO

# ofdm_analog_rx.stats(): frames whose header failed its CRC, frames it dropped after the header
# (payload malformed / non-finite) and frames found at twice the sample rate: all are frames the
# receiver saw and did not deliver (truncated and clock-mismatched frames are delivered).
RX_DROP_KEYS = ("header_crc_fail", "malformed", "nonfinite", "wrong_rate")
MAX_REFERENCES = SEQ_MODULO // 2  # a 12-bit seq names one pending reference (~6 MB kept)
COUNTERS = ("sent", "decoded", "salvaged", "filled", "queue_dropped", "bad_input", "failed", "unmatched", "bad_pdu",
            "drops_unmatched")
# drop-notice reason -> the counter it goes to (anything else is "failed")
DROP_COUNTER = {"queue_full": "queue_dropped", "stopped": "queue_dropped", "bad_input": "bad_input"}


def crc_count_from_stats(stats: dict) -> int:
    """Frames the receiver dropped (header CRC failed, a malformed/non-finite payload, a 2x rate)."""
    return sum(int(stats.get(key, 0)) for key in RX_DROP_KEYS)


def drop_counter(reason: str) -> str:
    """The accounting counter of a drop notice's reason ("queue_full: ..." -> "queue_dropped")."""
    return DROP_COUNTER.get(str(reason).split(":")[0], "failed")


def settle(counters: dict, rx_dropped: int, pending: int) -> dict:
    """The accounting from the link's counters and the receiver's drop count.

    A header CRC failure carries no trustworthy seq, and a sync trigger on noise fails its CRC
    too: receiver drops are attributed to sent frames only up to the number still unaccounted
    for; the excess are false triggers, reported apart."""
    c = dict(counters)
    unaccounted = c["sent"] - (c["decoded"] + c.get("unmatched", 0) + c["queue_dropped"] + c["bad_input"]
                               + c["failed"])
    c["crc_dropped"] = min(rx_dropped, max(unaccounted, 0))
    c["rx_false_triggers"] = rx_dropped - c["crc_dropped"]
    c["missing"] = unaccounted - c["crc_dropped"]  # in flight now; lost once the link has drained
    c["pending_references"] = pending
    return c


class ReferenceBook:
    """The references sent and not yet decoded, by source seq, matched by the received header seq
    (not thread-safe: the caller locks).

    Both maps hold only the pending references: the modulus map loses a seq's entry when that
    reference is taken, discarded or falls out, so a long run's memory stays at its backlog
    (a map left with every modulus ever seen grew by 4096 entries, ~0.5 MB, over a soak's
    first 3.5 minutes)."""

    def __init__(self, limit: int = MAX_REFERENCES):
        self.limit = int(limit)
        self.references: OrderedDict[int, object] = OrderedDict()
        self._by_modulus: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.references)

    def add(self, seq: int, entry) -> None:
        self.references[seq] = entry
        self._by_modulus[seq % SEQ_MODULO] = seq
        while len(self.references) > self.limit:  # frames the link lost long ago
            old, _ = self.references.popitem(last=False)
            self._forget(old)

    def _forget(self, seq: int) -> None:
        """Drop the modulus entry of a reference that left (unless a newer seq owns it)."""
        if self._by_modulus.get(seq % SEQ_MODULO) == seq:
            del self._by_modulus[seq % SEQ_MODULO]

    def find(self, seq):
        """(source seq, entry) for a received seq; (seq, None) when nothing pending matches."""
        ref = self.references.get(seq)
        if ref is not None or seq is None or seq >= SEQ_MODULO:
            return seq, ref
        full = self._by_modulus.get(seq)  # a 12-bit header seq of a source seq >= SEQ_MODULO
        if full is not None and full in self.references:
            return full, self.references[full]
        return seq, None

    def take(self, seq):
        """find(seq), removing the match from the pending references."""
        seq, ref = self.find(seq)
        if ref is not None:
            self.references.pop(seq, None)
            self._forget(seq)
        return seq, ref

    def discard(self, seq) -> bool:
        """Remove source seq `seq`; whether it was pending."""
        if self.references.pop(seq, None) is None:
            return False
        self._forget(seq)
        return True
