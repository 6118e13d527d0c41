"""Image codecs with their headers shared out of band (JPEG, JPEG on a 14x14 downsample, WebP):
the best setting that fits a byte budget.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from diffsem.metrics import psnr


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


def _psnr(a, b) -> float:
    """diffsem.metrics.psnr of one image."""
    return float(psnr(a[None], b[None])[0])


def fit_codec(image, max_bytes: int, codecs=CODECS) -> Fit:
    """Best-PSNR (codec, quality) whose data fits max_bytes: for each codec the highest quality
    that fits (binary search; sizes grow with quality), then the codec with the best PSNR."""
    ref = np.asarray(image, np.float32).reshape(SIDE, SIDE)
    u8 = to_u8(ref)
    best = Fit(None, 0, b"", np.full((SIDE, SIDE), GREY, np.float32), _psnr(np.full_like(ref, GREY), ref))
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
        p = _psnr(rec, ref)
        if best.codec is None or p > best.psnr:
            best = Fit(codec, found[0], found[1], rec, p)
    return best
