"""The synthetic set: band-limited plane-wave fields rendered at any resolution, from a seed alone."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from resbench.data.common import CACHE_SLOTS, SPLITS, DatasetInfo, Reader, check_limit, check_split
from resbench.resolution import parse_size

__all__ = ["SYNTHETIC_SIZES", "render_synthetic", "SYNTHETIC"]

# Each image is a sum of plane waves cos(2*pi*(fx*x + fy*y) + phase) on the unit square. The class
# is the orientation of its main waves (0, 45, 90, 135 degrees, +-11.25 degrees jitter); one weaker
# wave of random orientation is a distractor. Every frequency is below _SYN_MAX_FREQ < 3 cycles per
# image on each axis and radially, so the field is band-limited below the Nyquist limit (3.5 cycles)
# of a 7x7 grid and every grid from 7x7 up samples it without aliasing.
SYNTHETIC_SIZES = {"train": 2000, "test": 1000}
_SYN_CLASSES = ("0deg", "45deg", "90deg", "135deg")
_SYN_WAVES = 3  # class waves per image, plus one distractor
_SYN_MIN_FREQ, _SYN_MAX_FREQ = 1.0, 2.9  # cycles per image (radial)
_SYN_JITTER = math.pi / 16
_SYN_NATIVE = (28, 28)


@functools.lru_cache(maxsize=CACHE_SLOTS)
def _synthetic_params(split: str, seed: int) -> tuple[np.ndarray, ...]:
    """Labels and per-wave (fx, fy, phase, amplitude) of every image in a split, from the seed alone."""
    n = SYNTHETIC_SIZES[split]
    rng = np.random.default_rng([seed & 0xFFFFFFFF, SPLITS.index(split), 0x5EED])
    k = len(_SYN_CLASSES)
    labels = rng.permutation(np.arange(n) % k)  # (n,) balanced classes in random order
    theta = labels[:, None] * (math.pi / k) + rng.uniform(-_SYN_JITTER, _SYN_JITTER, (n, _SYN_WAVES))  # (n, K)
    radius = rng.uniform(_SYN_MIN_FREQ, _SYN_MAX_FREQ, (n, _SYN_WAVES))  # (n, K)
    amp = rng.uniform(0.5, 1.0, (n, _SYN_WAVES))  # (n, K)
    # one distractor wave per image: any orientation, weaker, anywhere in the band
    theta = np.concatenate([theta, rng.uniform(0, math.pi, (n, 1))], axis=1)  # (n, K+1)
    radius = np.concatenate([radius, rng.uniform(0.5, _SYN_MAX_FREQ, (n, 1))], axis=1)  # (n, K+1)
    amp = np.concatenate([amp, rng.uniform(0.0, 0.5, (n, 1))], axis=1)  # (n, K+1)
    phase = rng.uniform(0, 2 * math.pi, theta.shape)  # (n, K+1)
    fx, fy = radius * np.cos(theta), radius * np.sin(theta)  # (n, K+1) cycles per image along w, h
    amp = amp / amp.sum(axis=1, keepdims=True)  # each field stays in [-1, 1]
    return labels.astype(np.int64), fx, fy, phase, amp


def render_synthetic(split, size, seed=0, limit=None, start=0) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthetic split sampled at pixel centres of an (h, w) grid: (x float32 (N, 1, h, w) in [0, 1], y).

    Images `start` to `limit` (exclusive) of the split, so large sizes can be rendered batch by batch.
    """
    split = check_split(split)
    h, w = parse_size(size)
    limit = check_limit(limit)
    labels, fx, fy, phase, amp = _synthetic_params(split, int(seed))
    n = len(labels) if limit is None else min(limit, len(labels))
    start = min(max(0, int(start)), n)
    ys = (np.arange(h) + 0.5) / h  # (h,) row centres on [0, 1]
    xs = (np.arange(w) + 0.5) / w  # (w,) column centres on [0, 1]
    out = np.empty((n - start, 1, h, w), dtype=np.float32)  # (N, 1, h, w)
    step = max(1, 2 ** 22 // (h * w * fx.shape[1]))  # images per chunk: bounds the complex temporaries
    for s in range(start, n, step):
        e = min(n, s + step)
        # separable: cos(2pi(fx x + fy y) + phase) = Re(exp(2pi i fx x) * exp(i(2pi fy y + phase)))
        ey = amp[s:e, :, None] * np.exp(1j * (2 * np.pi * fy[s:e, :, None] * ys + phase[s:e, :, None]))  # (n, K+1, h)
        ex = np.exp(2j * np.pi * fx[s:e, :, None] * xs)  # (n, K+1, w)
        field = np.einsum("nkh,nkw->nhw", ey, ex).real  # (n, h, w) in [-1, 1]
        # float32: the dtype models take; the float64 sums above keep sizes consistent to ~1e-7
        out[s - start:e - start, 0] = (0.5 + 0.5 * field).astype(np.float32)
    return torch.from_numpy(out), torch.from_numpy(labels[start:n].copy())  # (N, 1, h, w), (N,)


def _info(data_dir) -> DatasetInfo:
    return DatasetInfo("synthetic", 1, len(_SYN_CLASSES), _SYN_NATIVE, _SYN_CLASSES)


def _load(split: str, data_dir, seed: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    return render_synthetic(split, _SYN_NATIVE, seed=seed, limit=limit)  # data_dir: nothing is read


def _stats_key(data_dir, seed: int) -> tuple:
    return (int(seed),)  # the seed alone makes the set


def _render(split, size, seed=0, limit=None, start=0, data_dir=None) -> tuple[torch.Tensor, torch.Tensor]:
    return render_synthetic(split, size, seed, limit, start)  # data_dir: nothing is read


def _labels(split: str, data_dir, seed: int, limit: int | None) -> torch.Tensor:
    labels = _synthetic_params(split, int(seed))[0]  # nothing rendered
    return torch.from_numpy(labels[:limit].copy())  # limit None: all


SYNTHETIC = Reader(_info, _load, _stats_key, caches=(_synthetic_params,), render=_render, labels=_labels)
