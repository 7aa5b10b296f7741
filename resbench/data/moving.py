"""Moving Fashion-MNIST: clips of two items passing each other, a 3-d set rendered at any (T, H, W) from one scene."""

from __future__ import annotations

import functools

import numpy as np
import torch

from resbench.data.common import SPLITS, DatasetInfo, Reader, check_limit, check_split, first_images
from resbench.data.idx import FASHION_MNIST
from resbench.errors import ResbenchError

__all__ = ["SETTINGS", "CLASSES", "MOVING_SIZES", "NATIVE_SIZE", "moving_clip_params", "render_moving",
           "MOVING_FASHION_MNIST"]

# The scene: a field of view [0, 1] x [0, 1] watched for t in [0, 1], wrapped left to right (a torus in x).
# Two Fashion-MNIST items of different classes, each a continuous image (bilinear between its 28x28
# pixel centres, zero beyond), glide horizontally in two lanes, one towards +x and one towards -x;
# the label is the class of the one moving right. Horizontal positions are uniform on the wrapped axis
# and which lane holds the right-mover is a coin flip, so any single frame has the same distribution
# whichever item moves right: a frame names the two candidate classes, only time tells which is the label.
SETTINGS = {
    "sizes": {"train": 6000, "test": 2000},  # clips per split, classes balanced in every block of 10
    "source": "Fashion-MNIST: train clips from train-split images only, test clips from test-split images only",
    "item_size": 0.44,  # side of an item's 28x28 pixels, as a fraction of the field of view
    "lanes": (0.25, 0.75),  # item centres' heights; the right-mover's lane is a coin flip per clip
    "lane_jitter": 0.02,  # +- uniform on each centre's height: items never overlap (0.25 + 0.02 + 0.23 < 0.5)
    "speed": (0.3, 0.6),  # field widths per clip, uniform, drawn for each item
    "position": "uniform on [0, 1) at t = 1/2, each item, wrapped in x",
    "sampling": "exact: each pixel is the scene's mean over its area and over its frame's interval",
    "seed_rule": "v1: label = permutation(seed, split, i // 10)[i % 10]; the rest from rng(seed, split, i)",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
MOVING_SIZES = dict(SETTINGS["sizes"])
# (T, H, W) of load(): the finest size of the intended grid (train 8x14x14, test at half and double
# frame rate and side), so statistics at native size cover every size tested; 28 rows also match the
# source images' 28 rows (an item spans 12 of them: finer sizes show more of its detail).
NATIVE_SIZE = (16, 28, 28)
_MAX_SIDE = 4096
_PIX = 28  # source image side
_CACHE_SETS = 2  # rendered native sets kept in memory (a full train set is 300 MB)
_TAG_LABEL, _TAG_CLIP = 0x1AB, 0xC11


def _parse_size(size) -> tuple[int, int, int]:
    """A clip size (T, H, W) -> the same tuple of ints, checked."""
    if (not isinstance(size, (tuple, list)) or len(size) != 3
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in size)
            or not all(1 <= v <= _MAX_SIDE for v in size)):
        raise ResbenchError(f"size {size!r}: expected a clip size (T, H, W) like (8, 14, 14), "
                            f"each between 1 and {_MAX_SIDE}")
    return int(size[0]), int(size[1]), int(size[2])


def _split_range(split: str, limit: int | None, start) -> tuple[int, int]:
    n = MOVING_SIZES[split] if limit is None else min(limit, MOVING_SIZES[split])
    return min(max(0, int(start)), n), n


def _source_images(split: str, data_dir) -> tuple[np.ndarray, np.ndarray]:
    images, labels = FASHION_MNIST.load(split, data_dir, 0, None)  # (N, 1, 28, 28) uint8, (N,)
    return images.numpy(), labels.numpy()


def _clip_params(split: str, seed: int, start: int, n: int, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per clip (index 0: the right-mover, 1: the left-mover) from (seed, split, index) and the split's labels."""
    by_class = [np.flatnonzero(labels == c) for c in range(10)]  # source indices of each class, in file order
    s, seed = SPLITS.index(split), int(seed) & 0xFFFFFFFF  # numpy seeds must be non-negative
    m = n - start
    out = {"label": np.empty(m, np.int64), "other": np.empty(m, np.int64), "sources": np.empty((m, 2), np.int64),
           "x": np.empty((m, 2)), "y": np.empty((m, 2)), "v": np.empty((m, 2))}
    lo, hi = SETTINGS["speed"]
    for j, i in enumerate(range(start, n)):
        perm = np.random.default_rng([seed, s, i // 10, _TAG_LABEL]).permutation(10)
        rng = np.random.default_rng([seed, s, i, _TAG_CLIP])
        a = int(perm[i % 10])
        b = (a + int(rng.integers(1, 10))) % 10  # any other class, uniform: the pair's law is symmetric
        out["label"][j], out["other"][j] = a, b
        for k, c in enumerate((a, b)):
            if len(by_class[c]) == 0:
                raise ResbenchError(f"moving-fashion-mnist: the {split} split has no image of class {c}; "
                                    f"check the Fashion-MNIST files")
            out["sources"][j, k] = by_class[c][rng.integers(len(by_class[c]))]
        top = rng.random() < 0.5  # the right-mover's lane
        out["y"][j] = np.array(SETTINGS["lanes"] if top else SETTINGS["lanes"][::-1]) + rng.uniform(
            -SETTINGS["lane_jitter"], SETTINGS["lane_jitter"], 2)
        out["x"][j] = rng.random(2)  # centres at t = 1/2
        out["v"][j] = rng.uniform(lo, hi, 2) * np.array([1.0, -1.0])
    return out


def moving_clip_params(split, seed=0, limit=None, start=0, data_dir=None) -> dict[str, np.ndarray]:
    """What clips `start` to `limit` (exclusive) show: label (N,) the right-mover's class, other (N,) the
    left-mover's, sources (N, 2) their indices in the split's Fashion-MNIST file, and x, y (N, 2) centres at
    t = 1/2 and v (N, 2) horizontal velocities in field widths per clip (index 0: right-mover)."""
    split = check_split(split)
    start, n = _split_range(split, check_limit(limit), start)
    return _clip_params(split, seed, start, n, _source_images(split, data_dir)[1])


# ----------------------------------------------------------------------------------------------
# exact sampling: a bilinear image is a sum of hat functions, so its mean over a pixel (and over a frame's
# motion) is a difference of the hat's antiderivatives, separable in x and y


def _hat_int1(u: np.ndarray) -> np.ndarray:
    """F1, the antiderivative of the hat max(0, 1 - |u|) that is 0 below -1 (1 above 1)."""
    c = np.clip(u, -1, 1)
    return np.where(c < 0, (c + 1) ** 2 / 2, 1 - (1 - c) ** 2 / 2)


def _hat_int2(u: np.ndarray) -> np.ndarray:
    """F2, the antiderivative of F1 that is 0 below -1: ((c+1)^3 - 2 max(c, 0)^3) / 6 + max(u - 1, 0) with
    c = u clamped to [-1, 1] (exactly u above 1: no cancelling cubes). In place where it can: the hot loop."""
    c = np.clip(u, -1, 1)
    r = np.maximum(c, 0)
    c += 1
    out = c * c
    out *= c
    r3 = r * r
    r3 *= r
    out -= 2 * r3
    out /= 6
    out += np.maximum(u - 1, 0)
    return out


def _weights_y(y: np.ndarray, h: int) -> np.ndarray:
    """(B, 2) item centres -> (B, 2, h, 28): each source row's share of each output row (mean over the row)."""
    d = SETTINGS["item_size"] / _PIX  # a source pixel's side, in field units
    edges = np.arange(h + 1) / h  # (h+1,)
    rows = (np.arange(_PIX) + 0.5) * d - SETTINGS["item_size"] / 2  # (28,) offsets from the item's centre
    u = (edges[:, None] - y[:, :, None, None] - rows) / d  # (B, 2, h+1, 28) in source pixels
    f = _hat_int1(u)
    return (f[:, :, 1:] - f[:, :, :-1]) * (h * d)  # (B, 2, h, 28)


def _weights_x(x: np.ndarray, v: np.ndarray, t: int, w: int) -> np.ndarray:
    """(B, 2) centres at t = 1/2 and velocities -> (B, t, 2, 28, w): each source column's share of each
    output column over each frame (mean over the column's width and the frame's interval)."""
    d = SETTINGS["item_size"] / _PIX
    edges = np.arange(w + 1) / w  # (w+1,)
    times = np.arange(t + 1) / t  # (t+1,) frame boundaries
    cols = (np.arange(_PIX) + 0.5) * d - SETTINGS["item_size"] / 2  # (28,)
    centre = x[:, None, :] + v[:, None, :] * (times[:, None] - 0.5)  # (B, t+1, 2)
    out = 0
    for wrap in (-1.0, 0.0, 1.0):  # the field is a torus in x: an item leaving one side enters the other
        u = (edges - (centre[..., None, None] + wrap) - cols[:, None]) / d  # (B, t+1, 2, 28, w+1) source pixels
        g = _hat_int2(u)
        # double integral over the column (u) and the shift (s) of hat(u - s): F2's second difference
        out = out + (g[:, :-1, ..., 1:] - g[:, :-1, ..., :-1] - g[:, 1:, ..., 1:] + g[:, 1:, ..., :-1])
    # the integration box: a frame's shift (speeds are never 0) times a column's width, in source pixels
    box = v[:, None, :, None, None] / (t * d) / (w * d)  # (B, 1, 2, 1, 1)
    return out / box  # (B, t, 2, 28, w)


def _render_batch(images: np.ndarray, p: dict[str, np.ndarray], size: tuple[int, int, int]) -> np.ndarray:
    """(B, 2, 28, 28) item images in [0, 1] -> clips (B, T, H, W), both items summed (they never overlap)."""
    t, h, w = size
    b = len(images)
    rows = _weights_y(p["y"], h) @ images  # (B, 2, h, 28): each item's rows sampled, its columns still pixels
    rows = rows.transpose(0, 2, 1, 3).reshape(b, 1, h, 2 * _PIX)  # (B, 1, h, 2*28)
    cols = _weights_x(p["x"], p["v"], t, w).reshape(b, t, 2 * _PIX, w)  # (B, t, 2*28, w)
    return rows @ cols  # (B, t, h, w)


def render_moving(split, size, seed=0, limit=None, start=0, reverse=False, data_dir=None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips `start` to `limit` (exclusive) of a split sampled at size (T, H, W): (x float32 (N, 1, T, H, W)
    in [0, 1], y int64 (N,)). The same scene at every size: each pixel is its exact mean over area and time.

    reverse=True plays each clip backwards (t -> 1 - t): the same frames in reverse order, the other item
    now moves right, and y is its class. data_dir: the Fashion-MNIST folder (None: the default).
    """
    split = check_split(split)
    size = _parse_size(size)
    start, n = _split_range(split, check_limit(limit), start)
    images, labels = _source_images(split, data_dir)
    p = _clip_params(split, seed, start, n, labels)
    if reverse:  # t -> 1 - t mirrors every velocity about t = 1/2; the left-mover becomes the right-mover
        p = dict(p, v=-p["v"], label=p["other"], other=p["label"])
    t, h, w = size
    out = np.empty((n - start, 1, t, h, w), dtype=np.float32)  # (N, 1, T, H, W)
    # clips per batch: _weights_x's temporaries near 64K elements (0.5 MB) stay in cache (measured 4x
    # faster than 4M)
    step = max(1, 2 ** 16 // (2 * (t + 1) * (w + 1) * _PIX))
    for s in range(0, n - start, step):
        e = min(n - start, s + step)
        # float64: the antiderivative differences cancel; items as uint8 / 255 in [0, 1]
        items = images[p["sources"][s:e].ravel(), 0].astype(np.float64).reshape(e - s, 2, _PIX, _PIX) / 255
        clips = _render_batch(items, {k: a[s:e] for k, a in p.items()}, size)  # (B, T, H, W)
        # float32: the dtype models take; clip: rounding leaves values like -1e-17 at empty pixels
        out[s:e, 0] = np.clip(clips, 0.0, 1.0)
    return torch.from_numpy(out), torch.from_numpy(p["label"].copy())


def _info(data_dir) -> DatasetInfo:
    return DatasetInfo("moving-fashion-mnist", 1, len(CLASSES), NATIVE_SIZE, CLASSES)


@functools.lru_cache(maxsize=_CACHE_SETS)
def _native_set(split: str, data_key: tuple, seed: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    return render_moving(split, NATIVE_SIZE, seed=seed, limit=limit, data_dir=data_key[0])


def _load(split: str, data_dir, seed: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    # the key holds the train files' (path, mtime, size): a new Fashion-MNIST copy renders again
    key = (data_dir, FASHION_MNIST.stats_key(data_dir, 0))
    return first_images(_native_set(split, key, int(seed), limit), limit)


def _stats_key(data_dir, seed: int) -> tuple:
    return (int(seed),) + FASHION_MNIST.stats_key(data_dir, seed)  # the seed and the train files make the set


def _labels(split: str, data_dir, seed: int, limit: int | None) -> torch.Tensor:
    return torch.from_numpy(moving_clip_params(split, seed, limit, data_dir=data_dir)["label"])  # nothing rendered


MOVING_FASHION_MNIST = Reader(_info, _load, _stats_key, caches=(_native_set,), render=render_moving,
                              labels=_labels)
