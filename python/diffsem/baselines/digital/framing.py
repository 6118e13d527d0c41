"""Frames of the digital baseline: the bit budget of k channel uses in a mode, the payload bytes
(descriptor, length, codec data, CRC-16) and their way to and from the bits on the air.
"""
from __future__ import annotations

import binascii
from dataclasses import dataclass

import numpy as np

from diffsem.baselines.digital.codec import CODECS, GREY, SIDE, Fit, decode_image
from diffsem.baselines.digital.fec import (
    CC_TAIL, conv_encode, depuncture, frame_scrambler, interleaver, puncture, punctured_length,
    viterbi_decode,
)
from diffsem.baselines.digital.modem import Mode


@dataclass(frozen=True)
class Budget:
    k: int
    mode: Mode
    coded_bits: int        # k * bits_per_symbol
    info_bits: int         # 8 * payload_bytes, before the 6 tail bits
    payload_bytes: int     # descriptor + length + data + padding + CRC
    length_bytes: int
    data_bytes: int        # what the codec may use
    pad_coded_bits: int    # coded bits left unused (zeros)

    @property
    def carries_frame(self) -> bool:
        """Room for the descriptor, length and CRC (else the mode cannot carry any image)."""
        return self.payload_bytes >= DESCRIPTOR_BYTES + self.length_bytes + CRC_BYTES

    def as_dict(self) -> dict:
        return {"k": self.k, "mode": self.mode.name, "coded_bits": self.coded_bits,
                "payload_bytes": self.payload_bytes, "codec_bytes": self.data_bytes,
                "pad_coded_bits": self.pad_coded_bits}


DESCRIPTOR_BYTES = 1
CRC_BYTES = 2
MTU = 1500  # largest frame in bytes a gr-fec async block takes (k <= 2000 at 64-QAM)


def bit_budget(k: int, mode: Mode) -> Budget:
    coded = k * mode.bits_per_symbol
    n_bytes = 0
    while punctured_length(2 * (8 * (n_bytes + 1) + CC_TAIL), mode.rate) <= coded:
        n_bytes += 1
    length_bytes = 1 if n_bytes <= 255 else 2
    data = max(0, n_bytes - DESCRIPTOR_BYTES - length_bytes - CRC_BYTES)
    used = punctured_length(2 * (8 * n_bytes + CC_TAIL), mode.rate)
    return Budget(k, mode, coded, 8 * n_bytes, n_bytes, length_bytes, data, coded - used)


NO_IMAGE = 0xFF  # descriptor of a frame that carries no image (nothing fitted)


def crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def build_payload(fit: Fit, budget: Budget) -> bytes:
    if not budget.carries_frame:
        raise ValueError(f"{budget.mode.name} at k={budget.k} carries {budget.payload_bytes} payload bytes: "
                         f"no room for descriptor, length and CRC")
    if fit.codec is None:
        desc, data = NO_IMAGE, b""
    else:
        desc, data = (CODECS.index(fit.codec) << 6) | fit.quality_index, fit.data
    if len(data) > budget.data_bytes:
        raise ValueError(f"codec data {len(data)} B exceeds the budget {budget.data_bytes} B")
    body = bytes([desc]) + len(data).to_bytes(budget.length_bytes, "big") + data
    body += bytes(budget.payload_bytes - CRC_BYTES - len(body))
    return body + crc16(body).to_bytes(2, "big")


@dataclass(frozen=True)
class Received:
    status: str                 # ok | crc_fail | bad_payload | no_image
    image: np.ndarray
    codec: str | None = None
    quality_index: int = 0
    data_bytes: int = 0


def parse_payload(payload: bytes, budget: Budget) -> Received:
    grey = np.full((SIDE, SIDE), GREY, np.float32)
    if len(payload) != budget.payload_bytes or not budget.carries_frame:
        return Received("bad_payload", grey)
    body, crc = payload[:-CRC_BYTES], int.from_bytes(payload[-CRC_BYTES:], "big")
    if crc16(body) != crc:
        return Received("crc_fail", grey)
    desc = body[0]
    if desc == NO_IMAGE:
        return Received("no_image", grey)
    codec_id, qi = desc >> 6, desc & 0x3F
    n = int.from_bytes(body[1: 1 + budget.length_bytes], "big")
    data = body[1 + budget.length_bytes: 1 + budget.length_bytes + n]
    if codec_id >= len(CODECS) or n != len(data):
        return Received("bad_payload", grey)
    try:
        image = decode_image(data, CODECS[codec_id], qi)
    except Exception:  # CRC passed but the codec refuses the bytes (undetected error): still grey
        return Received("bad_payload", grey)
    return Received("ok", image, CODECS[codec_id], qi, n)


def bytes_to_bits(payload: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(payload, np.uint8))


def bits_to_bytes(bits: np.ndarray) -> bytes:
    return np.packbits(np.asarray(bits, np.uint8)).tobytes()


def idle_frame_bits(budget: Budget, seq: int = 0) -> np.ndarray:
    """Air bits of a frame that carries nothing (the mode has no room for the frame's own
    fields): scrambled zeros, so it has the power of any other frame. The receiver, configured
    with the same k and mode, knows no image can be in it and shows grey without decoding."""
    return frame_scrambler(budget.coded_bits, seq)


def air_bits_from_mother(mother: np.ndarray, budget: Budget, seq=0) -> np.ndarray:
    """Mother-code bits [..., 2(info+6)] -> the k*bps bits on the air: puncture, pad, interleave,
    scramble (frame_scrambler of the frame's sequence number: an int, or one per frame)."""
    coded = puncture(mother, budget.mode.rate)
    pad = np.zeros(coded.shape[:-1] + (budget.pad_coded_bits,), np.uint8)
    air = np.concatenate([coded, pad], axis=-1)[..., interleaver(budget.coded_bits, budget.mode.bits_per_symbol)]
    return air ^ frame_scrambler(budget.coded_bits, seq)


def mother_llr_from_air(llr: np.ndarray, budget: Budget, seq=0) -> np.ndarray:
    """LLRs of the air bits [..., k*bps] -> LLRs of the mother code (descramble: flip the signs
    where the scrambler put a 1; punctured bits as erasures)."""
    llr = np.where(frame_scrambler(budget.coded_bits, seq).astype(bool), -llr, llr)
    coded = np.empty_like(llr)
    coded[..., interleaver(budget.coded_bits, budget.mode.bits_per_symbol)] = llr
    n_mother = 2 * (budget.info_bits + CC_TAIL)
    used = punctured_length(n_mother, budget.mode.rate)
    return depuncture(coded[..., :used], budget.mode.rate, n_mother)


def coded_frame_bits(info_bits: np.ndarray, budget: Budget, seq=0) -> np.ndarray:
    """Info bits [..., 8*payload_bytes] -> the k*bps bits on the air (encode, puncture, pad,
    interleave, scramble with the frame's sequence number)."""
    return air_bits_from_mother(conv_encode(info_bits), budget, seq)


def decode_frame_llr(llr: np.ndarray, budget: Budget, seq=0) -> np.ndarray:
    """LLRs of the k*bps bits on the air [B, coded_bits] -> info bits [B, info_bits]."""
    return viterbi_decode(mother_llr_from_air(np.asarray(llr, np.float64), budget, seq), budget.info_bits)
