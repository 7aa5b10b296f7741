"""Datasets read from local files (IDX, CIFAR pickles, image folders) or rendered, at any resolution."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from resbench import resolution  # the module, not its names: sizes are not re-exported here
from resbench.data.cifar import CIFAR10
from resbench.data.common import (CACHE_SLOTS, DEFAULT_DIRS, SPLITS, DatasetInfo, Reader, check_limit,
                                  check_split)
from resbench.data.idx import FASHION_MNIST, MNIST, read_idx
from resbench.data.imagefolder import IMAGEFOLDER
from resbench.data.moving import MOVING_FASHION_MNIST
from resbench.data.speech import SPOKEN_DIGITS
from resbench.data.synthetic import SYNTHETIC, SYNTHETIC_SIZES, render_synthetic
from resbench.errors import ResbenchError

__all__ = [
    "DATASETS",
    "DEFAULT_DIRS",
    "SPLITS",
    "SYNTHETIC_SIZES",
    "DatasetInfo",
    "dataset_info",
    "load_raw",
    "load_labels",
    "load",
    "dataset_stats",
    "render_synthetic",
    "is_rendered",
    "render",
    "channel_stats",
    "read_idx",
    "clear_caches",
]

# The one table of sources: a new dataset is a module with a Reader and one entry here.
_READERS: dict[str, Reader] = {
    "fashion-mnist": FASHION_MNIST,
    "mnist": MNIST,
    "cifar10": CIFAR10,
    "imagefolder": IMAGEFOLDER,
    "synthetic": SYNTHETIC,
    "spoken-digits": SPOKEN_DIGITS,  # 1-d: espeak-ng digits, any sampling rate (resbench.data.speech)
    "moving-fashion-mnist": MOVING_FASHION_MNIST,  # 3-d: clips of moving items, any (T, H, W) (resbench.data.moving)
}
DATASETS = tuple(_READERS)


def _check_name(name) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key not in _READERS:
        raise ResbenchError(f"dataset {name!r}: unknown; expected one of {', '.join(DATASETS)}")
    return key


def clear_caches() -> None:
    """Forget every parsed file and computed statistic held in memory."""
    for reader in _READERS.values():
        for fn in reader.caches:
            fn.cache_clear()
    _stats_cached.cache_clear()


def dataset_info(name, data_dir=None) -> DatasetInfo:
    """Channels, classes and native size of a dataset (an image folder is scanned, nothing else is read)."""
    return _READERS[_check_name(name)].info(data_dir)


def load_raw(name, split, data_dir=None, limit=None, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples at native size (N, C, *sides) (images uint8, rendered sets float) and int64 labels (N,).

    The first `limit` images are kept. `seed` only matters for "synthetic". Parsed files are kept in
    memory (keyed by resolved path, mtime and size), so a second call is a copy; the tensors returned
    are the caller's to modify.
    """
    name = _check_name(name)
    split = check_split(split)
    limit = check_limit(limit)
    return _READERS[name].load(split, data_dir, seed, limit)


def load_labels(name, split, data_dir=None, limit=None, seed=0) -> torch.Tensor:
    """The labels (N,) int64 of load_raw's samples, without the samples where the set can say them alone
    (the rendered sets: their scene descriptions give each label)."""
    name = _check_name(name)
    split = check_split(split)
    limit = check_limit(limit)
    reader = _READERS[name]
    if reader.labels is None:
        return reader.load(split, data_dir, seed, limit)[1]
    return reader.labels(split, data_dir, seed, limit)


def is_rendered(name) -> bool:
    """Whether the set is rendered at each size (synthetic fields, signals, clips) rather than resized."""
    return _READERS[_check_name(name)].render is not None


def render(name, split, size, seed=0, start=0, stop=None, data_dir=None) -> torch.Tensor:
    """Samples `start` to `stop` (exclusive) of a rendered set at `size` (the set's own axes), unnormalised:
    what a sweep draws batch by batch."""
    name = _check_name(name)
    reader = _READERS[name]
    if reader.render is None:
        raise ResbenchError(f"dataset {name!r} is stored, not rendered: use load")
    size = resolution.parse_size(size, len(reader.info(None).native_size))
    return reader.render(check_split(split), size, seed, stop, start, data_dir)[0]


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of (N, C, *sides) images, signals or clips (uint8 is scaled)."""
    if not isinstance(images, torch.Tensor) or not 3 <= images.ndim <= 5 or images.numel() == 0:
        raise ValueError(f"channel_stats: expected a non-empty (N, C, *sides) tensor with 1 to 3 sides, got "
                         f"{getattr(images, 'shape', type(images))}")
    over = (0, *range(2, images.ndim))  # every axis but the channels
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)  # (C,)
    total_sq = torch.zeros(c, dtype=torch.float64)  # (C,)
    step = max(1, 2 ** 22 // max(1, images[0].numel()))
    for s in range(0, len(images), step):
        # float64: sums over millions of pixels lose digits in float32
        chunk = images[s:s + step].to(torch.float64)
        if images.dtype == torch.uint8:
            chunk /= 255.0
        total += chunk.sum(dim=over)
        total_sq += chunk.square().sum(dim=over)
    count = images.numel() // c
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in var.sqrt())


@functools.lru_cache(maxsize=CACHE_SLOTS)
def _stats_cached(key: tuple, data_dir, seed: int):
    mean, std = channel_stats(load_raw(key[0], "train", data_dir=data_dir, seed=seed)[0])
    # a constant channel has std 0: divide by 1 instead, so it is only centred
    return mean, tuple(v if v > 0 else 1.0 for v in std)


def dataset_stats(name, data_dir=None, seed=0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of the train split at native size; what `load` uses when stats is None.

    A constant channel gets std 1.0 so that normalising never divides by zero.
    """
    name = _check_name(name)
    data_dir = None if data_dir is None else str(Path(data_dir).expanduser())
    # the key names what the statistics depend on (files, their mtimes, the seed): an edited set counts again
    key = (name,) + _READERS[name].stats_key(data_dir, seed)
    return _stats_cached(key, data_dir, int(seed))


def _check_stats(stats, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        mean, std = stats
        mean = torch.as_tensor([float(v) for v in mean], dtype=torch.float32)  # (C,)
        std = torch.as_tensor([float(v) for v in std], dtype=torch.float32)  # (C,)
    except (TypeError, ValueError):
        raise ResbenchError(f"stats {stats!r}: expected (mean, std), each a list of {c} numbers") from None
    if len(mean) != c or len(std) != c:
        raise ResbenchError(f"stats {stats!r}: expected {c} means and {c} stds, one per channel")
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise ResbenchError(f"stats {stats!r}: expected finite means and positive stds")
    return mean, std


def load(name, split, size, data_dir=None, stats=None, limit=None, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised float32 samples (N, C, *size) at `size` and int64 labels (N,).

    `size` takes the dataset's own number of axes: (h, w) or 28 for images, (L,) or 8000 for signals,
    (t, h, w) for clips. Stored images are resized with bilinear antialiasing (as in the S4ND paper);
    rendered sets ("synthetic", signals, clips) are rendered at the size instead. Normalisation uses
    `stats=(mean, std)` (e.g. from a checkpoint), else the train split's statistics at native size.
    `limit` keeps the first N samples, the same ones at every size.
    """
    name = _check_name(name)
    split = check_split(split)
    info = dataset_info(name, data_dir)
    dims = len(info.native_size)
    size = resolution.parse_size(size, dims)
    if stats is None:
        stats = dataset_stats(name, data_dir, seed)
    mean, std = _check_stats(stats, info.in_chans)
    reader = _READERS[name]
    if reader.render is not None:
        x, y = reader.render(split, size, seed, limit, 0, data_dir)
    else:
        raw, y = load_raw(name, split, data_dir=data_dir, limit=limit, seed=seed)
        x = resolution.resize_images(raw, size)
    # in place is safe: x is either new or load_raw's fresh clone
    per_channel = (slice(None),) + (None,) * dims  # (C, 1, ..., 1)
    x.sub_(mean[per_channel]).div_(std[per_channel])
    return x, y
