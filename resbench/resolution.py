"""Resolution settings shared by every part of resbench: sizes, their order, resizing, the rate rule, bandlimits."""

from __future__ import annotations

import math
import numbers
import re
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from resbench.errors import ResbenchError

__all__ = ["MAX_SIZE", "parse_size", "parse_sizes", "format_size", "size_key", "sort_sizes", "default_test_sizes",
           "resize_images", "BANDLIMIT_NAMES", "kernel_rates", "check_alpha", "parse_bandlimit", "bandlimit_alpha"]

MAX_SIZE = 4096  # largest side accepted by parse_size
_SIZE_RE = re.compile(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", re.ASCII)
_CHUNK = 4096  # images per interpolate call: bounds the temporary memory of resize_images


# ----------------------------------------------------------------------------------------------
# sizes


def parse_size(s) -> tuple[int, int]:
    """An image size from 28, (28, 20), "28" or "28x20" (h x w) -> (h, w)."""
    if isinstance(s, bool):
        raise ResbenchError(f"size {s!r}: expected a positive integer or HxW like 28 or 28x20")
    if isinstance(s, (int, np.integer)):
        h = w = int(s)
    elif isinstance(s, (tuple, list)):
        if len(s) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in s):
            raise ResbenchError(f"size {s!r}: expected a pair of integers (h, w) like (28, 20)")
        h, w = int(s[0]), int(s[1])
    elif isinstance(s, str):
        m = _SIZE_RE.fullmatch(s)
        if m is None:
            raise ResbenchError(f"size {s!r}: expected a positive integer or HxW like 28 or 28x20")
        try:
            h, w = int(m.group(1)), int(m.group(2) or m.group(1))
        except ValueError:  # more digits than int() converts (4300): far above MAX_SIZE, refused below
            h = w = MAX_SIZE + 1
    else:
        raise ResbenchError(f"size {s!r}: expected a positive integer or HxW like 28 or 28x20")
    if not (1 <= h <= MAX_SIZE and 1 <= w <= MAX_SIZE):
        raise ResbenchError(f"size {s!r}: each side must be between 1 and {MAX_SIZE} pixels")
    return h, w


def parse_sizes(text) -> list[tuple[int, int]]:
    """A comma list of sizes like "7,14,28x20" -> [(7, 7), (14, 14), (28, 20)]."""
    if not isinstance(text, str):
        raise ResbenchError(f"sizes {text!r}: expected a comma-separated list like 7,14,28x20")
    items = text.split(",")
    if not text.strip() or any(not item.strip() for item in items):
        raise ResbenchError(f"sizes {text!r}: expected a comma-separated list like 7,14,28x20 with no empty items")
    sizes = []
    for item in items:
        try:
            sizes.append(parse_size(item))
        except ResbenchError as e:
            raise ResbenchError(f"sizes {text!r}: {e}") from None
    return sizes


def format_size(size) -> str:
    """(28, 28) -> "28", (28, 20) -> "28x20"; the inverse of parse_size."""
    h, w = parse_size(size)
    return str(h) if h == w else f"{h}x{w}"


def size_key(size) -> tuple[int, int, int]:
    """Sort key of a size: (pixels, h, w), so 7 < 14 < 28x20 < 28 < 56 (never as text: 14 < 28 < 7)."""
    h, w = parse_size(size)
    return h * w, h, w


def sort_sizes(sizes: Iterable) -> list:
    """Sizes (any form parse_size takes) in the one order of every table and plot: by size_key."""
    return sorted(sizes, key=size_key)


def default_test_sizes(train_sizes: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Multiples of 7 from half the smallest to twice the largest training side (at least 7)."""
    sides = [max(s) for s in train_sizes]
    lo, hi = max(7, min(sides) // 2), 2 * max(sides)
    sizes = {(s, s) for s in range(7 * math.ceil(lo / 7), hi + 1, 7)} | {(s, s) for s in sides}
    return sort_sizes(sizes)


def resize_images(x: torch.Tensor, size) -> torch.Tensor:
    """(N, C, H, W) images -> float32 (N, C, h, w), bilinear with antialias; uint8 is scaled to [0, 1].

    At the same size the only work is the float conversion (a float32 input is returned as is).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"resize_images: expected a (N, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
    h, w = parse_size(size)
    scale = 255.0 if x.dtype == torch.uint8 else None

    def to_float(t: torch.Tensor) -> torch.Tensor:
        # float32: interpolate needs floats; uint8 pixels become [0, 1] intensities
        t = t.to(torch.float32)
        return t.div_(scale) if scale is not None else t

    n, c, H, W = x.shape
    if (H, W) == (h, w):
        return to_float(x)
    out = torch.empty(n, c, h, w, dtype=torch.float32, device=x.device)  # (N, C, h, w)
    step = max(1, min(_CHUNK, 2 ** 24 // max(1, c * max(H * W, h * w))))  # bounded temporaries
    for s in range(0, n, step):
        out[s:s + step] = F.interpolate(to_float(x[s:s + step]), size=(h, w), mode="bilinear",
                                        align_corners=False, antialias=True)
    return out


# ----------------------------------------------------------------------------------------------
# rates and bandlimits

# Named bandlimit settings of a sweep cell: "on" (the alpha the model was trained with), "off" (no
# mask), "none" (the model has no bandlimit at all), "adaptive" (continuous kernels follow the test grid:
# S4ND's trained alpha x min(1, test/train) per axis, CKConv's taps averaged over each test cell; it
# differs from "on"/"none" only below the training size). Any other setting is an explicit alpha.
BANDLIMIT_NAMES = ("on", "off", "none", "adaptive")
SWEEP_BANDLIMITS = ("on", "off", "adaptive")  # the names a sweep's --bandlimit takes


def kernel_rates(train_size, test_size) -> tuple[float, ...]:
    """train / test per axis: how much a continuous kernel's step shrinks on the test grid.

    The one rate rule of every model and every plot. It is global: a feature map downsampled by 2^i
    has a pixel spacing of 2^i input pixels at every input size, so each stage of a multi-stage model
    runs at the same rate as its input (as the official S4ND-ConvNeXt passes one rate to all stages),
    not at the ratio of its own rounded-down sizes.
    """
    if len(train_size) != len(test_size):
        raise ValueError(f"kernel_rates: train size {tuple(train_size)} and test size {tuple(test_size)} "
                         "differ in dimensions")
    return tuple(t / s for t, s in zip(train_size, test_size))


def check_alpha(value, what: str = "bandlimit") -> float | None:
    """None (off) or a finite alpha in (0, 1]; bools are refused because True would read as alpha 1.

    alpha keeps the modes below alpha/2 cycles per reference step: 1 keeps everything up to the
    reference grid's Nyquist, so a larger value (or inf) would not be a bandlimit at all.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value <= 1):
        # `not (0 < v <= 1)` is also true for nan
        raise ResbenchError(f"{what}={value!r}: expected a number in (0, 1] (alpha) or None (off)")
    return float(value)


def parse_bandlimit(text, what: str = "--bandlimit", names=SWEEP_BANDLIMITS) -> str:
    """A bandlimit setting as typed -> its canonical text: one of `names` (lower case) or an alpha
    written as Python writes the float (e.g. '0.3'), so equal settings key equal result rows."""
    word = str(text).strip().lower()
    if word in names:
        return word
    try:
        alpha = float(word)
    except ValueError:
        alpha = math.nan
    if not (0 < alpha <= 1):  # also refuses nan and inf, which float() reads from 'nan', 'inf'
        raise ResbenchError(f"{what} {text!r}: expected {', '.join(names)} or an alpha in (0, 1] such as 0.5")
    return repr(alpha)


def bandlimit_alpha(setting: str, trained: float | None) -> float | None:
    """The alpha a cell's layers run with: the trained one for "on" and "adaptive" (which scales it per axis),
    None for "off"/"none", else the number."""
    if setting in ("on", "adaptive"):
        return trained
    if setting in ("off", "none"):
        return None
    return float(setting)
