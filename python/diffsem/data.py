"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package (read locally, never downloaded).

Images are float32 in [0, 1], shape [N, 1, 28, 28]; labels int64. The validation split is the
last `VAL_SIZE` images of the training file (fixed, so every recipe sees the same split).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
VAL_SIZE = 5000
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DatasetMissing(FileNotFoundError):
    pass


def data_dir() -> Path:
    return Path(os.environ.get("DIFFSEM_FMNIST_DIR", DEFAULT_DIR))


def _read_idx(path: Path, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise ValueError(f"{path}: not an IDX file of the expected kind (magic {got:#x}, want {magic:#x})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _load_file_split(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name not in _cache:
        d = data_dir()
        img_name, lab_name = _FILES[name]
        if not (d / img_name).exists():
            raise DatasetMissing(
                f"Fashion-MNIST not found in {d}: install the Debian package `dataset-fashion-mnist` "
                f"(apt-get install dataset-fashion-mnist) or set DIFFSEM_FMNIST_DIR")
        images = _read_idx(d / img_name, 0x803).astype(np.float32)[:, None] / 255.0
        labels = _read_idx(d / lab_name, 0x801).astype(np.int64)
        _cache[name] = (images, labels)
    return _cache[name]


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (images [N,1,28,28] float32 in [0,1], labels [N] int64) for train | val | test."""
    if split == "test":
        return _load_file_split("test")
    images, labels = _load_file_split("train")
    if split == "train":
        return images[:-VAL_SIZE], labels[:-VAL_SIZE]
    if split == "val":
        return images[-VAL_SIZE:], labels[-VAL_SIZE:]
    raise ValueError(f"unknown split {split!r}: use train, val or test")


def count_of(split: str, first: int = 0, count: int = 0) -> int:
    """How many images `count` takes from index `first` of `split`: all that are left when
    `count` is 0 (a command's "all", diffsem.args.count_or_all), never more than are left."""
    left = max(len(load(split)[0]) - int(first), 0)
    return left if int(count) <= 0 else min(int(count), left)
