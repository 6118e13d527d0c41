"""Sequence numbers on the link: the OFDM header carries a 12-bit counter (phy.SEQ_MODULO), so a
receiver sees the source's frame numbers modulo 4096. One definition of what a frame's sequence
number is (`seq_of`), how a transmitter hands them out (`SeqCounter`) and how a receiver infers
lost frames from the gaps between the ones it received (`GapTracker`)."""
from __future__ import annotations

import numpy as np

from diffsem.phy import SEQ_MODULO

__all__ = ["SEQ_MODULO", "MAX_GAP_SHOWN", "seq_of", "SeqCounter", "GapTracker"]

# the longest run of lost frames a receiver shows one by one (GapTracker.lost_before)
MAX_GAP_SHOWN = 64


def seq_of(meta: dict):
    """The integer "seq" of a frame's metadata dict; None when it has none (or not an integer)."""
    seq = meta.get("seq")
    return int(seq) if isinstance(seq, (int, np.integer)) and not isinstance(seq, bool) else None


class SeqCounter:
    """Transmitter side: the header seq of each frame, the caller's own (mod SEQ_MODULO) when it
    gives one, else the next after the previous frame's."""

    def __init__(self):
        self.next_seq = 0

    def take(self, seq=None) -> int:
        seq = (self.next_seq if seq is None else int(seq)) % SEQ_MODULO
        self.next_seq = (seq + 1) % SEQ_MODULO
        return seq


class GapTracker:
    """Receiver side: the frames lost before their header decoded are the sequence numbers
    missing between two received ones (mod SEQ_MODULO).

    A frame up to MAX_GAP_SHOWN behind the latest (repeated, or late) skips nothing and moves
    nothing. An untrusted seq (a salvaged header: the most likely of the 4096, wrong now and then)
    skips nothing and moves nothing either, so a wrong guess cannot make a run of frames look
    lost; it is only left out of the next gap, which a right guess falls into."""

    def __init__(self):
        self.next_seq = None
        self._untrusted: set[int] = set()

    def received(self, seq: int, trusted: bool = True) -> list[int]:
        """Record frame `seq`; returns the sequence numbers skipped since the previous frame."""
        if self.next_seq is not None and (self.next_seq - 1 - seq) % SEQ_MODULO < MAX_GAP_SHOWN:
            return []   # the latest frame again, or one that arrived late: its gap was counted
        if not trusted:
            if len(self._untrusted) < MAX_GAP_SHOWN:
                self._untrusted.add(seq % SEQ_MODULO)
            return []
        missing = [] if self.next_seq is None else \
            [(self.next_seq + i) % SEQ_MODULO for i in range((seq - self.next_seq) % SEQ_MODULO)]
        if self._untrusted:
            missing = [m for m in missing if m not in self._untrusted]
            self._untrusted.clear()
        self.next_seq = (seq + 1) % SEQ_MODULO
        return missing

    def lost_before(self, seq: int, trusted: bool = True) -> tuple[list[int], int]:
        """received(seq, trusted) for a receiver that shows each lost frame: (the sequence numbers
        to show, the count not shown). A gap longer than MAX_GAP_SHOWN (a TX restart, a wrap after
        a long outage) is no run of lost frames to draw: nothing is shown for it, so memory and
        work stay bounded whatever the header says."""
        missing = self.received(seq, trusted)
        return (missing, 0) if len(missing) <= MAX_GAP_SHOWN else ([], len(missing))
