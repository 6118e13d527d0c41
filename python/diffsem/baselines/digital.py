"""The digital (separation) baseline: image codec -> CRC -> convolutional code -> QAM.

Everything here is plain numpy + Pillow (no GNU Radio): bit budget, mode table, codec fitting,
framing, the K=7 convolutional code (bit-exact with gr-fec's ``cc_encoder``, polys 109/79,
terminated), puncturing, Gray QAM mapping and max-log LLR demapping, and a soft-input Viterbi
decoder equivalent to gr-fec's ``cc_decoder`` (checked against it in tests/qa_digital_link.py).
The blocks ``digital_link_tx`` / ``digital_link_rx`` run the same frames through gr-fec and the
semantic link's OFDM PHY (ofdm_analog_tx/rx, built on the stock gr-digital blocks).

How the k complex channel uses of one image are spent (the same k as the semantic link):

* **Mode** (modulation, code rate) from 802.11a's table plus 64-QAM 5/6. ``mode_for_snr`` picks
  the fastest mode whose measured threshold (frame error rate <= 1% at k=128 on AWGN, table
  ``MODE_THRESHOLDS_DB``) is below the operating SNR — link adaptation with perfect SNR
  knowledge, which is generous to this baseline. The mode is link configuration, signalled like
  802.11's SIGNAL field in the OFDM header symbols, which the semantic link has too: it is not
  counted in k. Everything else is.
* **Coded bits**: k * bits_per_symbol. The mother code adds 6 tail bits (termination) and is
  punctured to the mode's rate; the largest whole number of payload bytes whose coded length
  fits is used, and the leftover coded bits (< 8/rate + 1 bits) are zero padding. A 16-column
  block interleaver (802.11a's idea) spreads the frame's bits over the subcarriers, then
  802.11's scrambler (state from the frame's sequence number) is XORed onto all of them, so
  padding and tail bits look random on the air and the average power per channel use is 1.
* **Payload bytes**: 1 descriptor byte (codec id, quality index), a length field (1 byte, or 2
  when the payload can exceed 255 bytes), the codec data, zero padding, CRC-16-CCITT (2 bytes).
  A frame whose CRC fails shows a grey image (0.5) and is counted; so does an image for which
  no codec setting fits (``no_fit``: the transmitter sends nothing useful).
* **Codec data, headers shared out of band** where the header is a deterministic function of
  the descriptor: JPEG (28x28, standard Huffman tables, no optimisation) sends only its entropy-
  coded segment — SOI/APP0/DQT/SOF0/DHT/SOS are rebuilt from the quality, EOI appended; the
  ``jpeg14`` variant does the same on a 14x14 bicubic downsample (upsampled at the receiver),
  which is what an engineer does when 28x28 does not fit; WebP sends the VP8 frame minus its
  RIFF/chunk headers, start code and dimensions (27 bytes rebuilt from the length).
"""
from __future__ import annotations

import argparse
import binascii
import io
import json
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------------------------
# Convolutional code (K=7, rate 1/2, 802.11 / CCSDS polynomials) and puncturing
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Gray QAM, unit average power, and the max-log demapper
# --------------------------------------------------------------------------------------------

def _gray_pam(bits_per_axis: int) -> np.ndarray:
    """Amplitude of each bit pattern (MSB first) on one axis, Gray-coded, unnormalised."""
    n = 1 << bits_per_axis
    levels = 2 * np.arange(n) - (n - 1)                  # -(n-1) .. n-1
    amp = np.empty(n)
    for i in range(n):
        amp[i ^ (i >> 1)] = levels[i]                      # gray(i) -> i-th level
    return -amp if bits_per_axis == 1 else amp             # BPSK/QPSK: bit 0 -> +1


def constellation(bits_per_symbol: int) -> np.ndarray:
    """Complex points indexed by the symbol's bits read MSB first (I bits then Q bits)."""
    if bits_per_symbol == 1:
        return np.array([1.0 + 0j, -1.0 + 0j])
    if bits_per_symbol % 2:
        raise ValueError(f"no square QAM with {bits_per_symbol} bits per symbol")
    half = bits_per_symbol // 2
    pam = _gray_pam(half)
    idx = np.arange(1 << bits_per_symbol)
    pts = pam[idx >> half] + 1j * pam[idx & ((1 << half) - 1)]
    return pts / np.sqrt(np.mean(np.abs(pts) ** 2))


def bits_to_indices(bits: np.ndarray, bits_per_symbol: int) -> np.ndarray:
    """[..., n*bps] -> [..., n] symbol indices (MSB first)."""
    shape = bits.shape[:-1] + (-1, bits_per_symbol)
    weights = 1 << np.arange(bits_per_symbol - 1, -1, -1)
    return (bits.reshape(shape).astype(np.int64) * weights).sum(-1)


def demap_llr(symbols: np.ndarray, noise_var: np.ndarray, bits_per_symbol: int) -> np.ndarray:
    """Max-log LLR log P(b=0)/P(b=1) of every bit: symbols [B, n] complex, noise_var [B, n]
    (complex noise variance after equalisation) -> [B, n*bps]."""
    pts = constellation(bits_per_symbol)
    d2 = np.abs(symbols[..., None] - pts) ** 2                            # [B, n, M]
    idx = np.arange(len(pts))
    llr = np.empty(symbols.shape + (bits_per_symbol,))
    for j in range(bits_per_symbol):
        one = ((idx >> (bits_per_symbol - 1 - j)) & 1).astype(bool)
        llr[..., j] = d2[..., one].min(-1) - d2[..., ~one].min(-1)
    llr /= np.maximum(np.asarray(noise_var, np.float64), 1e-12)[..., None]
    return llr.reshape(symbols.shape[:-1] + (-1,))


# --------------------------------------------------------------------------------------------
# Modes and the bit budget
# --------------------------------------------------------------------------------------------

MODULATIONS = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6}


@dataclass(frozen=True)
class Mode:
    modulation: str
    rate: str

    @property
    def name(self) -> str:
        return f"{self.modulation}-{self.rate}"

    @property
    def bits_per_symbol(self) -> int:
        return MODULATIONS[self.modulation]

    @property
    def code_rate(self) -> float:
        n, d = self.rate.split("/")
        return int(n) / int(d)


MODES = tuple(Mode(m, r) for m, r in (
    ("bpsk", "1/2"), ("bpsk", "3/4"), ("qpsk", "1/2"), ("qpsk", "3/4"), ("16qam", "1/2"),
    ("16qam", "3/4"), ("64qam", "2/3"), ("64qam", "3/4"), ("64qam", "5/6")))

# SNR (Es/N0, dB) at which a k=128 frame decodes with frame error rate <= 1% on AWGN, measured
# with this module's Viterbi: `diffsem baseline digital --calibrate --k 128` (seed 0,
# 2000 random payloads per point, 0.5 dB grid, interleaver and scrambler included; 3 min on 2
# shared cores). bpsk-1/2 measured -0.5 before the scrambler, 0.0 with it (sampling noise: the
# random draws differ); its threshold changes nothing, as it is also the fallback mode below it.
MODE_THRESHOLDS_DB = {
    "bpsk-1/2": 0.0, "bpsk-3/4": 2.5, "qpsk-1/2": 3.0, "qpsk-3/4": 6.0, "16qam-1/2": 9.0,
    "16qam-3/4": 12.5, "64qam-2/3": 16.5, "64qam-3/4": 18.0, "64qam-5/6": 19.5,
}


def mode_by_name(name: str) -> Mode:
    for m in MODES:
        if m.name == name:
            return m
    raise ValueError(f"unknown mode {name!r}: choose one of {[m.name for m in MODES]}")


def mode_for_snr(snr_db: float, thresholds: dict | None = None, margin_db: float = 0.0) -> Mode | None:
    """Fastest mode whose threshold + margin_db is <= snr_db; None below the slowest mode's
    (the transmitter still sends its most robust mode: see DigitalScheme). A margin covers a
    receiver that loses some SNR to channel estimation (the OFDM flowgraph: ~1 dB)."""
    thresholds = thresholds or MODE_THRESHOLDS_DB
    ok = [m for m in MODES if thresholds[m.name] + margin_db <= snr_db]
    return max(ok, key=lambda m: m.bits_per_symbol * m.code_rate) if ok else None


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


# --------------------------------------------------------------------------------------------
# Codecs with headers shared out of band
# --------------------------------------------------------------------------------------------

GREY = 0.5
SIDE = 28
CODECS = ("jpeg", "jpeg14", "webp")
N_QUALITY = 64


def quality_of(index: int) -> int:
    """Quality index 0..63 (6 bits of the descriptor) -> Pillow quality 1..95."""
    return 1 + round(index * 94 / (N_QUALITY - 1))


def _pil(image_u8: np.ndarray):
    from PIL import Image
    return Image.fromarray(image_u8, "L")


def _jpeg_bytes(image_u8: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    _pil(image_u8).save(buf, "JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def _jpeg_split(jpeg: bytes) -> tuple[bytes, bytes]:
    """(header through the end of SOS, entropy-coded data without EOI)."""
    sos = jpeg.index(b"\xff\xda")
    end = sos + 2 + int.from_bytes(jpeg[sos + 2: sos + 4], "big")
    if not jpeg.endswith(b"\xff\xd9"):
        raise ValueError("JPEG without EOI")
    return jpeg[:end], jpeg[end:-2]


_jpeg_header_cache: dict[tuple[int, int], bytes] = {}


def jpeg_header(quality: int, side: int) -> bytes:
    """The header Pillow writes for a side x side grayscale JPEG at this quality: it does not
    depend on the pixels (standard Huffman tables), so both ends rebuild it from the quality."""
    key = (quality, side)
    if key not in _jpeg_header_cache:
        _jpeg_header_cache[key] = _jpeg_split(_jpeg_bytes(np.zeros((side, side), np.uint8), quality))[0]
    return _jpeg_header_cache[key]


_WEBP_STRIP = 27  # RIFF(4) size(4) WEBP(4) 'VP8 '(4) size(4) | frame tag kept | start code(3) dims(4)


def _webp_payload(image_u8: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    _pil(image_u8).convert("RGB").save(buf, "WEBP", quality=quality, method=6)
    webp = buf.getvalue()
    if webp[12:16] != b"VP8 ":
        raise ValueError("unexpected WebP layout (expected a simple lossy 'VP8 ' chunk)")
    vp8_len = int.from_bytes(webp[16:20], "little")
    vp8 = webp[20: 20 + vp8_len]
    return vp8[:3] + vp8[10:]


def _webp_rebuild(payload: bytes, side: int = SIDE) -> bytes:
    vp8 = payload[:3] + b"\x9d\x01\x2a" + side.to_bytes(2, "little") + side.to_bytes(2, "little") + payload[3:]
    pad = b"\x00" if len(vp8) % 2 else b""
    body = b"WEBP" + b"VP8 " + len(vp8).to_bytes(4, "little") + vp8 + pad
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def encode_image(image_u8: np.ndarray, codec: str, quality_index: int) -> bytes:
    """The bytes that travel for this image (headers stripped as described above)."""
    q = quality_of(quality_index)
    if codec == "jpeg":
        return _jpeg_split(_jpeg_bytes(image_u8, q))[1]
    if codec == "jpeg14":
        small = np.asarray(_pil(image_u8).resize((SIDE // 2, SIDE // 2), _resample("BICUBIC")))
        return _jpeg_split(_jpeg_bytes(small, q))[1]
    if codec == "webp":
        return _webp_payload(image_u8, q)
    raise ValueError(f"unknown codec {codec!r}")


def _resample(name: str):
    from PIL import Image
    return getattr(Image, "Resampling", Image)[name] if hasattr(Image, "Resampling") else getattr(Image, name)


def decode_image(data: bytes, codec: str, quality_index: int) -> np.ndarray:
    """Rebuild the file around the received bytes and decode -> [28, 28] float32 in [0, 1].
    Raises ValueError (or Pillow's errors) if the bytes are not a decodable image."""
    from PIL import Image
    q = quality_of(quality_index)
    if codec == "jpeg":
        blob = jpeg_header(q, SIDE) + data + b"\xff\xd9"
    elif codec == "jpeg14":
        blob = jpeg_header(q, SIDE // 2) + data + b"\xff\xd9"
    elif codec == "webp":
        blob = _webp_rebuild(data)
    else:
        raise ValueError(f"unknown codec {codec!r}")
    img = Image.open(io.BytesIO(blob))
    img.load()
    img = img.convert("L")
    if img.size != (SIDE, SIDE):
        img = img.resize((SIDE, SIDE), _resample("BICUBIC"))
    return np.asarray(img, np.float32) / 255.0


def to_u8(image) -> np.ndarray:
    x = np.nan_to_num(np.asarray(image, np.float32).reshape(SIDE, SIDE), nan=0.0)
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel()) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-10))


@dataclass(frozen=True)
class Fit:
    codec: str | None            # None: nothing fits
    quality_index: int
    data: bytes
    image: np.ndarray            # what the receiver shows if the frame arrives
    psnr: float

    @property
    def quality(self) -> int:
        return quality_of(self.quality_index)


def fit_codec(image, max_bytes: int, codecs=CODECS) -> Fit:
    """Best-PSNR (codec, quality) whose data fits max_bytes: for each codec the highest quality
    that fits (binary search; sizes grow with quality), then the codec with the best PSNR."""
    ref = np.asarray(image, np.float32).reshape(SIDE, SIDE)
    u8 = to_u8(ref)
    best = Fit(None, 0, b"", np.full((SIDE, SIDE), GREY, np.float32), psnr(np.full_like(ref, GREY), ref))
    for codec in codecs:
        lo, hi, found = 0, N_QUALITY - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            data = encode_image(u8, codec, mid)
            if len(data) <= max_bytes:
                found, lo = (mid, data), mid + 1
            else:
                hi = mid - 1
        if found is None:
            continue
        rec = decode_image(found[1], codec, found[0])
        p = psnr(rec, ref)
        if best.codec is None or p > best.psnr:
            best = Fit(codec, found[0], found[1], rec, p)
    return best


# --------------------------------------------------------------------------------------------
# Frames: payload bytes <-> info bits
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The Scheme (library channel: numpy Viterbi), and the command that prints the cliff
# --------------------------------------------------------------------------------------------

def _to_numpy(x):
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy(), True
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x), False


class DigitalScheme:
    """Scheme interface for the separation baseline on the library channel.

    The mode is link configuration, known to both ends: a fixed ``mode``, or link adaptation
    from ``link_snr_db`` (set it per operating point: ``scheme.link_snr_db = snr``; the sweep
    does) and, when that is None, from the snr_db given to encode/decode (the same value must
    reach both, as evaluate.transmit_and_decode's decode call does). Counters of the last
    decode are in ``last_stats`` (frames, ok, crc_fail, no_image, bad_payload); the codec fits
    of the last encode (what an error-free frame shows) in ``last_fits``.
    """

    name = "digital"
    steps = 0

    def __init__(self, k: int, mode: str | None = None, codecs=CODECS, thresholds: dict | None = None,
                 link_snr_db: float | None = None, margin_db: float = 0.0):
        if k < 1:
            raise ValueError("digital baseline: k must be >= 1")
        self.k = k
        self.fixed_mode = mode_by_name(mode) if mode else None
        self.codecs = tuple(codecs)
        self.thresholds = thresholds or MODE_THRESHOLDS_DB
        self.link_snr_db = link_snr_db
        self.margin_db = float(margin_db)
        self.last_stats: dict = {}
        self.last_fits: list[Fit] = []

    def __repr__(self):
        how = self.fixed_mode.name if self.fixed_mode else f"adaptive@{self.link_snr_db}"
        return f"DigitalScheme(k={self.k}, mode={how}, codecs={self.codecs})"

    def mode_for(self, snr_db) -> Mode:
        if self.fixed_mode is not None:
            return self.fixed_mode
        if self.link_snr_db is not None:
            snr_db = self.link_snr_db
        if snr_db is None:
            raise ValueError("digital baseline: link adaptation needs the SNR: set link_snr_db, "
                             "pass snr_db, or give a fixed mode")
        return mode_for_snr(float(snr_db), self.thresholds, self.margin_db) or MODES[0]

    def _modes(self, snr_db, batch: int) -> list[Mode]:
        if snr_db is None or self.fixed_mode is not None or self.link_snr_db is not None:
            return [self.mode_for(None if snr_db is None else np.ravel(_to_numpy(snr_db)[0])[0])] * batch
        snr, _ = _to_numpy(snr_db)
        snr = np.broadcast_to(np.asarray(snr, np.float64).reshape(-1), (batch,))
        return [self.mode_for(s) for s in snr]

    @staticmethod
    def _seqs(seq, batch: int) -> np.ndarray:
        """Sequence numbers of the frames (they pick the scrambler state): the batch index by default."""
        if seq is None:
            return np.arange(batch)
        seq = np.broadcast_to(np.asarray(_to_numpy(seq)[0], np.int64).reshape(-1), (batch,))
        return seq

    def encode(self, images, snr_db=None, seq=None):
        """Images -> [B, k, 2] symbols. seq: the frames' sequence numbers (default 0..B-1), which
        choose each frame's scrambler state; decode must be given the same."""
        x, as_torch = _to_numpy(images)
        x = np.asarray(x, np.float32).reshape(len(x), SIDE, SIDE)
        out = np.empty((len(x), self.k, 2), np.float32)
        seqs = self._seqs(seq, len(x))
        self.last_fits = []
        for i, (img, mode) in enumerate(zip(x, self._modes(snr_db, len(x)))):
            budget = bit_budget(self.k, mode)
            if not budget.carries_frame:  # nothing to send: an idle frame goes out, the RX shows grey
                self.last_fits.append(fit_codec(img, -1, ()))
                bits = idle_frame_bits(budget, seqs[i])
            else:
                fit = fit_codec(img, budget.data_bytes, self.codecs)
                self.last_fits.append(fit)
                bits = coded_frame_bits(bytes_to_bits(build_payload(fit, budget)), budget, seqs[i])
            sym = constellation(mode.bits_per_symbol)[bits_to_indices(bits, mode.bits_per_symbol)]
            out[i, :, 0], out[i, :, 1] = sym.real, sym.imag
        if as_torch:
            import torch
            return torch.from_numpy(out)
        return out

    def decode(self, symbols, snr_db=None, noise_var=None, rng=None, seq=None):
        y, as_torch = _to_numpy(symbols)
        y = np.asarray(y, np.float64)
        b = len(y)
        seqs = self._seqs(seq, b)
        if noise_var is None:
            noise_var = np.ones((b, self.k)) if snr_db is None else \
                np.repeat(10 ** (-np.asarray(_to_numpy(snr_db)[0], np.float64).reshape(-1, 1) / 10), self.k, 1)
        nv = np.broadcast_to(np.asarray(_to_numpy(noise_var)[0], np.float64).reshape(b, -1), (b, self.k))
        cplx = y[..., 0] + 1j * y[..., 1]
        modes = self._modes(snr_db, b)
        images = np.empty((b, 1, SIDE, SIDE), np.float32)
        stats = {"frames": b, "ok": 0, "crc_fail": 0, "no_image": 0, "bad_payload": 0}
        for mode in set(modes):  # decode frames that share a mode together (vectorised Viterbi)
            rows = [i for i, m in enumerate(modes) if m == mode]
            budget = bit_budget(self.k, mode)
            if not budget.carries_frame:
                stats["no_image"] += len(rows)
                images[rows] = GREY
                continue
            finite = np.isfinite(cplx[rows]).all(axis=1) & np.isfinite(nv[rows]).all(axis=1)
            llr = demap_llr(np.nan_to_num(cplx[rows]), np.nan_to_num(nv[rows], nan=1e6), mode.bits_per_symbol)
            info = decode_frame_llr(llr, budget, seqs[rows]) if budget.info_bits else \
                np.zeros((len(rows), 0), np.uint8)
            for j, i in enumerate(rows):
                rec = parse_payload(bits_to_bytes(info[j]), budget) if finite[j] else \
                    Received("bad_payload", np.full((SIDE, SIDE), GREY, np.float32))
                stats[rec.status] += 1
                images[i, 0] = rec.image
        self.last_stats = stats
        if as_torch:
            import torch
            return torch.from_numpy(images)
        return images


def calibrate(k: int = 128, frames: int = 2000, seed: int = 0, target_fer: float = 0.01,
              step_db: float = 0.5) -> dict:
    """Lowest SNR (on a step_db grid) where random payloads of each mode decode with FER <= target."""
    rng = np.random.default_rng(seed)
    out = {}
    for mode in MODES:
        budget = bit_budget(k, mode)
        if not budget.carries_frame:
            continue
        snr = MODE_THRESHOLDS_DB[mode.name] - 3.0  # start below the table's value: fewer steps
        while True:
            info = rng.integers(0, 2, (frames, budget.info_bits), dtype=np.uint8)
            bits = coded_frame_bits(info, budget)
            sym = constellation(mode.bits_per_symbol)[bits_to_indices(bits, mode.bits_per_symbol)]
            nv = 10 ** (-snr / 10)
            noise = rng.normal(0, math.sqrt(nv / 2), sym.shape + (2,))
            rx = sym + noise[..., 0] + 1j * noise[..., 1]
            dec = decode_frame_llr(demap_llr(rx, np.full(rx.shape, nv), mode.bits_per_symbol), budget)
            fer = float(np.mean((dec != info).any(axis=1)))
            if fer <= target_fer:
                out[mode.name] = snr
                break
            snr += step_db
    return out


def run_curve(k: int, snrs, n: int, seed: int, channel: str = "awgn", mode: str | None = None,
              margin_db: float = 0.0):
    """PSNR vs SNR of the digital link on the library channel: one JSON-able dict per SNR."""
    import torch
    from diffsem import data
    from diffsem.channel import transmit
    from diffsem.baselines import classifier_accuracy
    images, labels = data.load("test")
    images, labels = images[:n], labels[:n]
    scheme = DigitalScheme(k, mode=mode, margin_db=margin_db)
    for snr in snrs:
        t0 = time.time()
        scheme.link_snr_db = float(snr)
        tx = scheme.encode(images)
        fits = scheme.last_fits
        g = torch.Generator().manual_seed(seed)
        s_hat, nv = transmit(torch.from_numpy(tx), float(snr), channel, generator=g)
        rec = scheme.decode(s_hat.numpy(), np.full(len(images), float(snr)), nv.numpy())
        p = [psnr(r, x) for r, x in zip(rec, images)]
        m = scheme.mode_for(float(snr))
        budget = bit_budget(k, m)
        codecs = [f.codec for f in fits if f.codec]
        yield {"scheme": "digital", "k": k, "channel": channel, "snr_db": float(snr), "mode": m.name,
               "codec_bytes": budget.data_bytes, "psnr": round(float(np.mean(p)), 3),
               "accuracy": classifier_accuracy(rec, labels),
               "psnr_if_delivered": round(float(np.mean([f.psnr for f in fits])), 3),
               "fit_rate": round(len(codecs) / len(fits), 4),
               "codecs": {c: codecs.count(c) for c in sorted(set(codecs))},
               "mean_quality": round(float(np.mean([f.quality for f in fits if f.codec])), 1) if codecs else None,
               **{key: v for key, v in scheme.last_stats.items()}, "n": len(images), "seed": seed,
               "seconds": round(time.time() - t0, 2)}


def frame_power(k: int, n: int):
    """Power per complex channel use of DigitalScheme frames (every symbol of the k: fields,
    codec data, padding, CRC, tail, coded padding; idle frames where the mode has no room) over
    the first n test images, per mode: one dict per mode."""
    from diffsem import data
    images, _ = data.load("test")
    images = images[:n]
    for mode in MODES:
        sym = DigitalScheme(k, mode=mode.name).encode(images).astype(np.float64)
        power = (sym ** 2).sum(-1).mean(1)
        yield {"k": k, "mode": mode.name, "carries_frame": bit_budget(k, mode).carries_frame, "n": len(images),
               "power_mean": round(float(power.mean()), 4), "power_frame_std": round(float(power.std()), 4),
               "power_min": round(float(power.min()), 3), "power_max": round(float(power.max()), 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsem baseline digital",
                                description="digital (separation) baseline on the library channel: JSON lines")
    p.add_argument("--k", type=int, nargs="+", default=[128, 32])
    p.add_argument("--snr", type=float, nargs="+", default=[0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30])
    p.add_argument("--n", type=int, default=500, help="test images per point")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channel", default="awgn")
    p.add_argument("--mode", default=None, help="fixed mode (e.g. qpsk-1/2) instead of link adaptation")
    p.add_argument("--margin", type=float, default=0.0, help="link adaptation back-off (dB) over the thresholds")
    p.add_argument("--calibrate", action="store_true", help="measure the mode thresholds (FER <= 1%% at k)")
    p.add_argument("--budget", action="store_true", help="print the bit budget of every mode for each k")
    p.add_argument("--power", action="store_true",
                   help="average power per channel use of every mode over --n test images (mean, per-frame std)")
    args = p.parse_args(argv)
    if args.power:
        for k in args.k:
            for row in frame_power(k, args.n):
                print(json.dumps(row), flush=True)
        return 0
    if args.calibrate:
        for k in args.k:
            print(json.dumps({"k": k, "thresholds_db": calibrate(k, seed=args.seed)}), flush=True)
        return 0
    if args.budget:
        for k in args.k:
            for m in MODES:
                print(json.dumps(bit_budget(k, m).as_dict()))
        return 0
    for k in args.k:
        for row in run_curve(k, args.snr, args.n, args.seed, args.channel, args.mode, args.margin):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
