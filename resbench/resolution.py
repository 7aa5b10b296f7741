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

__all__ = ["MAX_SIZE", "MAX_LENGTH", "parse_size", "parse_sizes", "parse_size_specs", "fit_size", "format_size",
           "fit_sizes", "size_key", "sort_sizes", "default_test_sizes", "resize_images", "BANDLIMIT_NAMES",
           "kernel_rates", "check_alpha", "parse_bandlimit", "bandlimit_alpha", "KINDS", "parse_kinds"]

MAX_SIZE = 4096  # largest side of a 2-d or 3-d size accepted by parse_size
MAX_LENGTH = 2 ** 20  # largest 1-d size (samples of a signal: 65 s at 16 kHz)
_SIZE_RE = re.compile(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?(?:[xX]\s*(\d+)\s*)?", re.ASCII)
_FORMS = {1: "L like 8000", 2: "an integer or HxW like 28 or 28x20", 3: "TxHxW like 8x14x14"}
KINDS = {1: "signals", 2: "images", 3: "clips"}  # what a model's inputs are, by their number of axes
_CHUNK = 4096  # images per interpolate call: bounds the temporary memory of resize_images


# ----------------------------------------------------------------------------------------------
# sizes
#
# A size is a tuple with one side per axis: (L,) for a 1-d signal, (h, w) for an image, (t, h, w) for a clip.
# As text it is "L", "HxW" (a square as one number: "28") or "TxHxW". A bare number is therefore ambiguous
# between 1-d and a square image: the functions take `dims`, and without it a bare number is a square image.


def _sides(s) -> tuple[int, ...] | None:
    """The sides a size names explicitly ((28, 20), "8x14x14", [5]); None for a bare number (28, "28");
    ResbenchError when it is not a size at all. No range checks."""
    def refuse():
        return ResbenchError(f"size {s!r}: expected a positive integer, HxW like 28x20 or TxHxW like 8x14x14")

    if isinstance(s, bool):
        raise refuse()
    if isinstance(s, (int, np.integer)):
        return None
    if isinstance(s, (tuple, list)):
        if not 1 <= len(s) <= 3 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in s):
            raise refuse()
        return tuple(int(v) for v in s)
    if isinstance(s, str):
        m = _SIZE_RE.fullmatch(s)
        if m is None or (m.group(3) and not m.group(2)):
            raise refuse()
        try:
            sides = tuple(int(g) for g in m.groups() if g)
        except ValueError:  # more digits than int() converts (4300): far above every limit, refused below
            sides = (MAX_LENGTH + 1,) * sum(1 for g in m.groups() if g)
        return None if len(sides) == 1 else sides
    raise refuse()


def _bare(s) -> int:
    if isinstance(s, str):
        try:
            return int(s.strip())
        except ValueError:
            return MAX_LENGTH + 1
    return int(s)


def parse_size(s, dims: int | None = 2) -> tuple[int, ...]:
    """A size from any of its forms -> a tuple of ints, one per axis.

    dims=2 (default): an image, 28, (28, 20), "28" or "28x20" -> (h, w). dims=1: a signal, 8000 or (8000,)
    -> (L,). dims=3: a clip, "8x14x14" or (8, 14, 14) -> (t, h, w) (a bare number is refused: which axis
    would it be?). dims=None: whatever the explicit form says, a bare number as a square image.
    """
    if dims not in (None, 1, 2, 3):
        raise ValueError(f"parse_size: dims={dims!r}, expected 1, 2, 3 or None")
    sides = _sides(s)
    if sides is None:
        n = _bare(s)
        if dims == 3:
            raise ResbenchError(f"size {s!r}: a clip's size needs every axis, expected {_FORMS[3]}")
        sides = (n,) if dims == 1 else (n, n)
    if dims is not None and len(sides) != dims:
        raise ResbenchError(f"size {s!r}: expected a {dims}-d size, {_FORMS[dims]}")
    limit = MAX_LENGTH if len(sides) == 1 else MAX_SIZE
    if not all(1 <= v <= limit for v in sides):
        what = "the length" if len(sides) == 1 else "each side"
        raise ResbenchError(f"size {s!r}: {what} must be between 1 and {limit}")
    return sides


def parse_sizes(text, dims: int | None = 2) -> list[tuple[int, ...]]:
    """A comma list of sizes like "7,14,28x20" -> [(7, 7), (14, 14), (28, 20)] (dims as in parse_size)."""
    if not isinstance(text, str):
        raise ResbenchError(f"sizes {text!r}: expected a comma-separated list like 7,14,28x20")
    items = text.split(",")
    if not text.strip() or any(not item.strip() for item in items):
        raise ResbenchError(f"sizes {text!r}: expected a comma-separated list like 7,14,28x20 with no empty items")
    sizes = []
    for item in items:
        try:
            sizes.append(parse_size(item, dims))
        except ResbenchError as e:
            raise ResbenchError(f"sizes {text!r}: {e}") from None
    return sizes


def parse_size_specs(text) -> list:
    """A comma list of sizes as a user gives them to a sweep of models of any dimensions: each item is a
    tuple when it names its axes ("28x20", "8x14x14") and an int when bare ("28": a square image, or a
    signal's length; see fit_size)."""
    if not isinstance(text, str) or not text.strip() or any(not item.strip() for item in text.split(",")):
        parse_sizes(text)  # the list's own errors, with their messages
    specs = []
    for item in text.split(","):
        try:
            specs.append(parse_size(item, 1)[0] if _sides(item) is None else parse_size(item, None))
        except ResbenchError as e:
            raise ResbenchError(f"sizes {text!r}: {e}") from None
    return specs


def fit_size(spec, dims: int) -> tuple[int, ...] | None:
    """A size spec (from parse_size_specs, or any size form) for a model of `dims` axes; None when it does
    not apply (an image size for a clip model, a bare number for a clip model)."""
    sides = _sides(spec)
    if sides is None:
        return None if dims == 3 else parse_size(str(_bare(spec)), dims)  # as text: errors name it as typed
    return parse_size("x".join(str(v) for v in sides), dims) if len(sides) == dims else None


def fit_sizes(specs, dims: int, name: str) -> list[tuple[int, ...]]:
    """The sizes of `specs` (a sweep's --test-res) that fit a model of `dims` axes called `name`, each once and
    in size order; a user error when none does."""
    sizes = sort_sizes({s for s in (fit_size(spec, dims) for spec in specs) if s is not None})
    if not sizes:
        raise ResbenchError(f"--test-res: no size fits {name}, a {dims}-d model; give {_FORMS[dims]}")
    return sizes


def parse_kinds(text: str | None) -> set[int] | None:
    """--kind "images,clips" -> {2, 3} (the numbers of axes); None or "all" -> None (every kind)."""
    if text is None or str(text).strip() == "all":
        return None
    by_name = {name: dims for dims, name in KINDS.items()}
    words = [w.strip() for w in str(text).split(",")]
    bad = [w for w in words if w not in by_name]
    if bad or not words:
        raise ResbenchError(f"--kind {text!r}: expected all or a list of {', '.join(by_name)}")
    return {by_name[w] for w in words}


def format_size(size, dims: int | None = None) -> str:
    """(28, 28) -> "28", (28, 20) -> "28x20", (8000,) -> "8000", (8, 14, 14) -> "8x14x14"; the inverse of
    parse_size. A bare number stays a bare number (checked against the range of `dims`, none: 1-d's)."""
    if _sides(size) is None:
        return format_size(parse_size(size, dims or 1))
    sides = parse_size(size, dims)
    if len(sides) == 2 and sides[0] == sides[1]:
        return str(sides[0])
    return "x".join(str(v) for v in sides)


def size_key(size, dims: int | None = None) -> tuple[int, ...]:
    """Sort key of a size: (samples, *sides), so 7 < 14 < 28x20 < 28 < 56 (never as text: 14 < 28 < 7).

    A bare number is a square image unless `dims` says otherwise; no range check, so a table of 1-d sizes
    ("4000", "16000") sorts as well.
    """
    sides = _sides(size)
    if sides is None:
        n = _bare(size)
        sides = (n,) * (dims or 2)
    return math.prod(sides), *sides


def sort_sizes(sizes: Iterable, dims: int | None = None) -> list:
    """Sizes (any form parse_size takes) in the one order of every table and plot: by size_key."""
    return sorted(sizes, key=lambda s: size_key(s, dims))


# 1-d signals and 3-d clips: the default test sizes are these multiples of each training side (a signal's
# half and twice its sampling rate; a clip's frame rate and frame size halved and doubled, alone and together)
_DEFAULT_FACTORS_1D = (0.5, 0.75, 1.0, 1.5, 2.0)
_DEFAULT_FACTORS_3D = (0.5, 1.0, 2.0)
# images: nine factors, a quarter octave apart, from half to twice the training size
_LADDER = tuple(2 ** (k / 4) for k in range(-4, 5))


def _ladder_side(side: float) -> int:
    """One side of a default test size, rounded as the field does: multiples of 16 from 128 px, of 8 from
    64, of 4 from 16, whole pixels below (at least 4)."""
    step = 16 if side >= 128 else 8 if side >= 64 else 4 if side >= 16 else 1
    return max(4, step * round(side / step))


def _image_ladder(train: tuple[int, ...]) -> set[tuple[int, ...]]:
    """The training size scaled by each of _LADDER (both sides by one factor, so 28x20 keeps its shape),
    each side rounded by _ladder_side, and the training size itself."""
    return {tuple(_ladder_side(f * s) for s in train) for f in _LADDER} | {tuple(train)}


def default_test_sizes(train_sizes: Iterable[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Test sizes for models trained at `train_sizes` (all of one dimension).

    Images: a ladder of nine factors from 1/2 to 2 (2 ** (k / 4), k = -4..4) times each training size, each
    side rounded like the field's sizes (multiples of 16 from 128 px, of 8 from 64, of 4 from 16), the
    training sizes included: 224 gets 112, 128, 160, 192, 224, 272, 320, 384, 448; 28 gets 14 to 56. Models
    of several training sizes share the union of their ladders. Signals: 1/2, 3/4, 1, 3/2 and 2 times each
    training length. Clips: every combination of 1/2, 1 and 2 times the frames with 1/2, 1 and 2 times the
    frame size.
    """
    train_sizes = [tuple(s) for s in train_sizes]
    dims = {len(s) for s in train_sizes}
    if len(dims) != 1:
        raise ValueError(f"default_test_sizes: sizes of different dimensions {sorted(dims)}")
    if dims == {1}:
        return sort_sizes({(max(1, round(f * s[0])),) for s in train_sizes for f in _DEFAULT_FACTORS_1D})
    if dims == {3}:
        return sort_sizes({(max(1, round(ft * t)), max(1, round(fs * h)), max(1, round(fs * w)))
                           for t, h, w in train_sizes for ft in _DEFAULT_FACTORS_3D for fs in _DEFAULT_FACTORS_3D})
    return sort_sizes(set().union(*(_image_ladder(s) for s in train_sizes)))


def _resample_axis(x: torch.Tensor, axis: int, n: int) -> torch.Tensor:
    """x resampled to n samples along `axis`: linear with antialias (a triangle filter as wide as the
    coarser step), done as a 2-d bilinear interpolation over (1, axis), the one antialiased form torch has.
    (Not over (axis, 1): torch 2.14's antialiased bilinear returns a constant for an (L, 1) input.)"""
    if x.shape[axis] == n:
        return x
    moved = x.movedim(axis, -1)  # (..., L)
    lead = moved.shape[:-1]
    flat = moved.reshape(1, -1, 1, moved.shape[-1])  # (1, M, 1, L)
    out = F.interpolate(flat, size=(1, n), mode="bilinear", align_corners=False, antialias=True)  # (1, M, 1, n)
    return out.reshape(*lead, n).movedim(-1, axis)


# CUDA's antialiased bilinear kernel fails when one output pixel covers more than about 94 input pixels per
# axis (an 800 px image tested at 7 px); a larger reduction on a GPU runs in stages of at most this factor.
CUDA_MAX_REDUCTION = 64


def _antialiased_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) float -> (N, C, *size), bilinear with antialias; on CUDA in stages where one would fail."""
    while x.is_cuda and any(s > CUDA_MAX_REDUCTION * m for s, m in zip(x.shape[2:], size)):
        step = tuple(max(m, -(-s // CUDA_MAX_REDUCTION)) for s, m in zip(x.shape[2:], size))
        x = F.interpolate(x, size=step, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _resample_signal(x: torch.Tensor, n: int) -> torch.Tensor:
    """(N, C, L) signals -> float32 (N, C, n) by scipy.signal.resample_poly (polyphase, Kaiser-windowed FIR):
    the band above the coarser rate's Nyquist is removed, so upsampling leaves no spectral images (linear
    interpolation leaves them) and downsampling folds nothing back. The rendered signal datasets use it too."""
    import scipy.signal

    g = math.gcd(n, x.shape[-1])
    # float64 in scipy, float32 back: the filter's sums keep their precision; the models take float32
    y = scipy.signal.resample_poly(x.detach().cpu().numpy().astype("float64"), n // g, x.shape[-1] // g, axis=-1)
    return torch.from_numpy(y).to(device=x.device, dtype=torch.float32)


def resize_images(x: torch.Tensor, size) -> torch.Tensor:
    """(N, C, *sides) images, signals or clips -> float32 (N, C, *size), antialiased; uint8 is scaled to [0, 1].

    Images: bilinear with antialias (as in the S4ND paper). Signals: scipy.signal.resample_poly, a proper
    band-limited resampler (_resample_signal). Clips: linear with antialias along each axis in turn (time
    first). At the same size the only work is the float conversion (a float32 input is returned as is).
    """
    if not isinstance(x, torch.Tensor) or not 3 <= x.ndim <= 5:
        raise ValueError(f"resize_images: expected a (N, C, *sides) tensor with 1 to 3 sides, got "
                         f"{getattr(x, 'shape', type(x))}")
    size = parse_size(size, x.ndim - 2)
    scale = 255.0 if x.dtype == torch.uint8 else None

    def to_float(t: torch.Tensor) -> torch.Tensor:
        # float32: interpolate needs floats; uint8 pixels become [0, 1] intensities
        t = t.to(torch.float32)
        return t.div_(scale) if scale is not None else t

    n, c, *sides = x.shape
    if tuple(sides) == size:
        return to_float(x)
    out = torch.empty(n, c, *size, dtype=torch.float32, device=x.device)  # (N, C, *size)
    step = max(1, min(_CHUNK, 2 ** 24 // max(1, c * max(math.prod(sides), math.prod(size)))))  # bounded temporaries
    for s in range(0, n, step):
        chunk = to_float(x[s:s + step])
        if len(size) == 2:
            out[s:s + step] = _antialiased_bilinear(chunk, size)
            continue
        if len(size) == 1:
            out[s:s + step] = _resample_signal(chunk, size[0])
            continue
        for axis, m in enumerate(size):
            chunk = _resample_axis(chunk, 2 + axis, m)
        out[s:s + step] = chunk
    return out


# ----------------------------------------------------------------------------------------------
# rates and bandlimits

# Named bandlimit settings of a sweep cell: "on" (the alpha the model was trained with), "off" (no
# mask), "none" (the model has no bandlimit at all), "capped" (S4ND's anti-aliasing rule: below the training
# size no mode above the test grid's Nyquist, alpha_eff = min(trained alpha, test/train) per axis; the cap
# alone for a checkpoint trained without the mask), "adaptive" (the older rule, out of the defaults:
# S4ND's trained alpha x min(1, test/train) per axis, which cuts below the test grid's Nyquist whenever
# alpha < 1; CKConv's taps averaged over each test cell, the sampling S4ND's zero-order hold always uses).
# "capped" and "adaptive" differ from "on"/"none" only below the training size. Any other setting is an alpha.
BANDLIMIT_NAMES = ("on", "off", "none", "capped", "adaptive")
SWEEP_BANDLIMITS = ("on", "off", "capped", "adaptive")  # the names a sweep's --bandlimit takes
DEFAULT_BANDLIMITS = ("on", "off")  # a sweep's settings unless told


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
    """The alpha a cell's layers run with: the trained one for "on", "capped" and "adaptive" (which cap or
    scale it per axis), None for "off"/"none", else the number."""
    if setting in ("on", "capped", "adaptive"):
        return trained
    if setting in ("off", "none"):
        return None
    return float(setting)
