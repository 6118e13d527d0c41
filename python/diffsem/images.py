"""Image helpers for the semantic link: PNG folders in, PNG bytes and mosaics out.

Every image the link carries is a 28x28 grayscale float32 array in [0, 1] (Fashion-MNIST's
format: a light garment on a black background). PNG folders given by users are converted to
that: grayscale, fitted into 28x28 keeping the aspect ratio and centred on black.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

SIDE = 28
N_PIXELS = SIDE * SIDE
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """A file that should be an image could not be read or converted (the message names it)."""


def as_image(pixels) -> np.ndarray:
    """A 28x28 float32 view of 784 pixels ([784], [28,28] or [1,28,28]), clipped to [0, 1]; NaN -> 0."""
    arr = np.asarray(pixels, dtype=np.float32)
    if arr.size != N_PIXELS:
        raise ValueError(f"an image has {N_PIXELS} pixels (28x28); got {arr.size} (shape {arr.shape})")
    return np.clip(np.nan_to_num(arr.reshape(SIDE, SIDE), nan=0.0), 0.0, 1.0)


def to_uint8(image) -> np.ndarray:
    return np.round(np.clip(np.nan_to_num(np.asarray(image, np.float32), nan=0.0), 0, 1) * 255).astype(np.uint8)


def convert_pil(img, side: int = SIDE) -> np.ndarray:
    """PIL image -> [side, side] float32 in [0,1]: grayscale, aspect kept, centred on black."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "P"):  # composite transparency onto black (the dataset's background)
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    gray = img.convert("L")
    w, h = gray.size
    if w == 0 or h == 0:
        raise ValueError("image has zero size")
    scale = side / max(w, h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    gray = gray.resize((new_w, new_h), Image.LANCZOS)
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(gray, ((side - new_w) // 2, (side - new_h) // 2))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def read_image(path) -> np.ndarray:
    """One image file -> [28, 28] float32 in [0,1]; ImageReadError naming the file if unreadable."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return convert_pil(img)
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: no such file") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from exc


def read_folder(folder, strict: bool = True) -> tuple[np.ndarray, list[str]]:
    """All image files of `folder` (sorted by name) -> ([N,1,28,28] float32, names).

    strict=True raises ImageReadError on the first unreadable file; strict=False skips it and
    the caller can report the names that were skipped (returned names are the ones read).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageReadError(f"{folder}: contains no image files ({', '.join(IMAGE_SUFFIXES)})")
    images, names = [], []
    for path in files:
        try:
            images.append(read_image(path))
            names.append(path.name)
        except ImageReadError:
            if strict:
                raise
    if not images:
        raise ImageReadError(f"{folder}: none of its {len(files)} image files could be read")
    return np.stack(images)[:, None], names


def encode_png(image, text: dict | None = None, scale: int = 1) -> bytes:
    """8-bit grayscale PNG bytes of an image in [0,1] (any 2-D shape, or 784 pixels).

    `text` is stored as PNG tEXt chunks (str -> str), e.g. {"seq": "12"}: readers that ignore
    them still see a plain PNG.
    """
    from PIL import Image, PngImagePlugin

    arr = np.asarray(image, np.float32)
    if arr.ndim != 2:
        arr = as_image(arr)
    img = Image.fromarray(to_uint8(arr), mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(str(key), str(value))
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def decode_png(data: bytes) -> tuple[np.ndarray, dict]:
    """PNG bytes -> (float32 image in [0,1] as stored, tEXt chunks as a dict of str)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        text = dict(getattr(img, "text", {}) or {})
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return arr, text


def mosaic(rows, pad: int = 2, fill: float = 1.0) -> np.ndarray:
    """Grid of equally sized 2-D images (a list of rows, each a list; None leaves a blank tile)."""
    rows = [list(r) for r in rows]
    if not rows or not any(rows):
        raise ValueError("mosaic needs at least one image")
    shape = next(np.asarray(im).shape for r in rows for im in r if im is not None)
    h, w = shape[-2], shape[-1]
    n_cols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad), fill, dtype=np.float32)
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            if im is None:
                continue
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = np.clip(np.asarray(im, np.float32).reshape(h, w), 0, 1)
    return out


def labelled_mosaic(rows, row_labels, col_labels=None, scale: int = 3, pad: int = 2, marked=()):
    """A mosaic as a PIL image, upscaled, with a text label left of each row (and above columns).
    `marked`: (row, column) tiles drawn in a grey frame and labelled "lost" (images the receiver
    invented whole: a frame it never received, shown as its decoder's fill)."""
    from PIL import Image, ImageDraw, ImageFont

    grid = mosaic(rows, pad=pad)
    tile = Image.fromarray(to_uint8(grid), mode="L").resize(
        (grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    font = ImageFont.load_default()
    label_w = 8 + max(int(font.getlength(str(t))) for t in row_labels)
    top = 16 if col_labels else 0
    canvas = Image.new("L", (tile.width + label_w, tile.height + top), 255)
    canvas.paste(tile, (label_w, top))
    draw = ImageDraw.Draw(canvas)
    cell = (SIDE + pad) * scale
    for i, text in enumerate(row_labels):
        draw.text((4, top + pad * scale + i * cell + cell // 2 - 6), str(text), fill=0, font=font)
    for j, text in enumerate(col_labels or []):
        draw.text((label_w + pad * scale + j * cell, 2), str(text), fill=0, font=font)
    for i, j in marked:
        x, y = label_w + pad * scale + j * cell, top + pad * scale + i * cell
        draw.rectangle((x, y, x + SIDE * scale - 1, y + SIDE * scale - 1), outline=128, width=3)
        draw.text((x + 5, y + 4), "lost", fill=255, font=font)
    return canvas


def save_png(path, image) -> Path:
    """Write a float image in [0,1] (or a PIL image) to `path` as PNG, creating folders; atomic."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_png(image) if isinstance(image, np.ndarray) else _pil_png(image)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a viewer refreshing the file never sees half a PNG
    return path


def _pil_png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
