"""MNIST and Fashion-MNIST: unsigned-byte IDX files (gzipped or not) in Debian's or torchvision's layout."""

from __future__ import annotations

import functools
import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from resbench.data.common import CACHE_SLOTS, DatasetInfo, Reader, data_root, file_key, first_images
from resbench.errors import ResbenchError

__all__ = ["read_idx", "FASHION_MNIST", "MNIST"]

_CLASSES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(d) for d in range(10)),
}
_TORCHVISION_DIRS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}  # torchvision's download layout
_INSTALL_HINTS = {
    "fashion-mnist": "install it with 'apt-get install dataset-fashion-mnist' or pass --data-dir DIR",
    "mnist": "copy the four MNIST IDX files there or pass --data-dir DIR",
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its suffix)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ResbenchError(f"{path}: cannot read ({e.strerror}); check the file's permissions") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ResbenchError(f"{path}: gzip data is truncated or corrupt ({e}); "
                                f"replace it with a good copy") from None
    return raw


def read_idx(path) -> np.ndarray:
    """An unsigned-byte IDX file (gzipped or not) as a read-only uint8 array with the file's dims."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ResbenchError(f"{path}: {len(raw)} bytes, too short for an IDX header; replace it with a good copy")
    magic = int.from_bytes(raw[:4], "big")
    ndim = raw[3]
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= ndim <= 4:
        raise ResbenchError(f"{path}: bad IDX magic number 0x{magic:08x}, expected 0x000008NN "
                            f"(unsigned bytes, NN dims); is this an MNIST-style IDX file?")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ResbenchError(f"{path}: truncated IDX header ({len(raw)} bytes); replace it with a good copy")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(dims)
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ResbenchError(f"{path}: {what}: {len(raw)} bytes but dims {dims} need {expected}; "
                            f"replace it with a good copy")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)  # dims, e.g. (N, 28, 28)


@functools.lru_cache(maxsize=CACHE_SLOTS)
def _idx_pair_cached(images_key: tuple, labels_key: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    images_path, labels_path = Path(images_key[0]), Path(labels_key[0])
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ResbenchError(f"{images_path}: image dims {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1:
        raise ResbenchError(f"{labels_path}: label dims {labels.shape}, expected (N,)")
    if len(images) != len(labels):
        raise ResbenchError(f"{labels_path}: {len(labels)} labels for {len(images)} images in "
                            f"{images_path}; the two files must come from the same split")
    if len(labels) and labels.max() >= 10:
        raise ResbenchError(f"{labels_path}: label {int(labels.max())} out of range, expected 0..9")
    # copy: np.frombuffer views are read-only and torch wants writable memory it owns
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28) uint8
    # int64: the label dtype cross_entropy expects
    y = torch.from_numpy(labels.astype(np.int64))  # (N,)
    return x, y


def _find_idx(name: str, root: Path, split: str) -> tuple[Path, Path]:
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    for d in (root, root / "raw", root / _TORCHVISION_DIRS[name] / "raw"):
        found = []
        for stem in stems:
            plain, gz = d / stem, d / f"{stem}.gz"
            found.append(plain if plain.is_file() else gz if gz.is_file() else None)
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
        if found[0] is not None:
            raise ResbenchError(f"{name} labels not found: looked for {d / stems[1]}(.gz) next to "
                                f"{found[0]}; put the labels file there")
    raise ResbenchError(f"{name} not found: looked for {root / stems[0]}(.gz); {_INSTALL_HINTS[name]}")


def _split_files(name: str, data_dir, split: str) -> tuple[Path, Path]:
    return _find_idx(name, data_root(name, data_dir), split)


def _info(name: str, data_dir) -> DatasetInfo:
    return DatasetInfo(name, 1, 10, (28, 28), _CLASSES[name])


def _load(name: str, split: str, data_dir, seed: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    images_path, labels_path = _split_files(name, data_dir, split)  # seed: the files are fixed
    return first_images(_idx_pair_cached(file_key(images_path), file_key(labels_path)), limit)


def _stats_key(name: str, data_dir, seed: int) -> tuple:
    return tuple(file_key(p) for p in _split_files(name, data_dir, "train"))


def _reader(name: str) -> Reader:
    """An MNIST-style dataset: 28x28 grey images, ten classes, the same file names."""
    return Reader(functools.partial(_info, name), functools.partial(_load, name),
                  functools.partial(_stats_key, name), caches=(_idx_pair_cached,))


FASHION_MNIST = _reader("fashion-mnist")
MNIST = _reader("mnist")
