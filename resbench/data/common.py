"""What every dataset source shares: the reader record, splits, default dirs, input checks, file cache keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from resbench.errors import ResbenchError

__all__ = ["SPLITS", "DEFAULT_DIRS", "CACHE_SLOTS", "DatasetInfo", "Reader", "check_split", "check_limit",
           "data_root", "file_key", "first_images"]

SPLITS = ("train", "test")
CACHE_SLOTS = 16  # parsed files (or statistics) each lru cache keeps

# Where each dataset is looked for when no data_dir is given. Nothing is ever downloaded.
# - fashion-mnist: Debian's `dataset-fashion-mnist` package installs the four gzipped IDX files here.
# - mnist: the same layout (train-images-idx3-ubyte.gz, ...); copy the IDX files there yourself.
# - cifar10: torchvision's `cifar-10-batches-py` folder (data_batch_1..5, test_batch), copied by hand.
# - imagefolder: no default, it always needs data_dir; synthetic needs no files.
DEFAULT_DIRS: dict[str, Path] = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
    "cifar10": Path("~/.cache/resbench/cifar-10-batches-py").expanduser(),
}

Images = tuple[torch.Tensor, torch.Tensor]  # (N, C, *sides) images/signals/clips, (N,) int64 labels


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset before seeing any image."""

    name: str
    in_chans: int
    num_classes: int
    native_size: tuple[int, ...]  # (h, w) of the stored images; (L,) of a signal set, (t, h, w) of a clip set
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Reader:
    """One dataset source: an entry of resbench.data's table, the one place a dataset name is dispatched.

    data_dir is as the caller gave it (None: the DEFAULT_DIRS entry); split and limit arrive checked.
    """

    info: Callable[..., DatasetInfo]  # (data_dir) -> channels, classes, native size
    load: Callable[..., Images]  # (split, data_dir, seed, limit) -> the first images at native size, new tensors
    stats_key: Callable[..., tuple]  # (data_dir, seed) -> what the train split's statistics depend on
    caches: tuple = ()  # the lru caches clear_caches empties
    render: Callable[..., Images] | None = None  # (split, size, seed, limit, start=0, data_dir=None) -> sampled
    # at that size;
    # None: the stored images are resized instead
    labels: Callable[..., torch.Tensor] | None = None  # (split, data_dir, seed, limit) -> the first labels, int64,
    # without the samples (a rendered set's labels come from its scene descriptions); None: load's labels


def check_split(split) -> str:
    if split not in SPLITS:
        raise ResbenchError(f"split {split!r}: expected 'train' or 'test'")
    return split


def check_limit(limit) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ResbenchError(f"limit {limit!r}: expected a positive number of images (or none for all)")
    return int(limit)


def data_root(name: str, data_dir) -> Path:
    """The folder to read `name` from: data_dir, else its DEFAULT_DIRS entry."""
    if data_dir is None:
        if name not in DEFAULT_DIRS:
            raise ResbenchError(f"{name}: needs a data dir; pass --data-dir DIR pointing at a tree "
                                f"with train/ and test/")
        return Path(DEFAULT_DIRS[name])
    return Path(data_dir).expanduser()  # the finders name it in their message when it is missing


def file_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, mtime, size): the cache key of a file, so an edited file is read again."""
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def first_images(images: Images, limit: int | None) -> Images:
    """The first `limit` images of a cached split, as copies: the cache must never see the caller's edits."""
    x, y = images
    n = len(y) if limit is None else min(limit, len(y))
    return x[:n].clone(), y[:n].clone()
