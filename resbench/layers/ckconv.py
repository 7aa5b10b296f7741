"""CKConv / FlexConv-style continuous depthwise convolution over 1, 2 or 3 axes: the kernel is an MLP of position,
sampled per grid."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.layers.resolution_aware import ResolutionAware, kernel_precision

__all__ = ["ContinuousDepthwiseConv", "ContinuousDepthwiseConv2d", "kernel_positions", "default_taps", "fft_conv1d",
           "Sine", "FFT_TAPS", "GPU_FFT_TAPS", "fft_depthwise_conv"]

# 1-d kernels longer than this run through an FFT: its cost hardly depends on the taps, a direct conv's grows
# with them. On a CPU (one thread, B=16, C=64, L=200..800) the FFT was 2-7x faster at 17-33 taps and 10x at 65,
# on par below; short kernels keep the direct conv, which GPUs run well (not timed on one here).
FFT_TAPS = 32
# On a GPU, a 2-d or 3-d kernel with a side over this many taps goes through an FFT: cuDNN's depthwise
# convolution slows with the kernel's area (ckconv_14 at 56 px, 37x37 taps: 464 images/s on an H200 directly).
GPU_FFT_TAPS = 15
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def kernel_positions(taps: int, train_len: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tap positions on a grid of `length` pixels and each tap's coverage of the kernel's support: (k,), (k,).

    Positions are in units of the training kernel's half-width R = (taps - 1) / 2 training pixels, so
    the training taps sit at -1, ..., 1. Each training tap stands for a cell of one training pixel, so
    the kernel's support is [-(R + 1/2), R + 1/2] training pixels. On a grid s = length / train_len times
    finer, the taps sit at the new grid's pixel spacing (k / s training pixels), every tap whose cell
    (1/s wide) overlaps the support, and a tap's coverage is the fraction of its cell inside it: 1 inside,
    less at the edge. So the kernel reaches as far at every ratio, integer or not (at s = 1.5 the old rule,
    floor(s R), stopped at 2.67 of 3 pixels).
    """
    s = length / train_len
    R = (taps - 1) / 2
    edge, half_cell = R + 0.5, 0.5 / s  # support edge and half a test cell, in training pixels
    n = math.ceil(s * edge + 0.5 - 1e-9) - 1  # largest k whose cell starts inside the support
    offsets = torch.arange(-n, n + 1, dtype=torch.float64) / s  # (k,) training pixels
    inside = (offsets + half_cell).clamp(max=edge) - (offsets - half_cell).clamp(min=-edge)
    coverage = (inside / (2 * half_cell)).clamp(0, 1)  # (k,)
    return (offsets / R).float(), coverage.float()


class Sine(nn.Module):
    def __init__(self, omega: float):
        super().__init__()
        self.omega = omega

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * x)


class ContinuousDepthwiseConv(ResolutionAware):
    """Depthwise conv whose kernel is an MLP of the tap position, sampled on the input's grid.

    One axis per entry of `train_size`: (L,) signals, (h, w) images, (t, h, w) clips. At `train_size` the
    kernel has `taps` taps per axis. On another grid (the FlexConv rule, FACTS 3) the MLP is sampled at that
    grid's pixel spacing over the same continuous extent, and the values are multiplied by train/test on every
    axis (their product) so a smooth input gives the same response.
    """

    def __init__(self, channels: int, taps: int, train_size: Sequence[int], hidden: int = 32, omega: float = 10.0):
        super().__init__()
        self.taps, self.train_size = taps, tuple(train_size)
        self.dims = len(self.train_size)
        if self.dims not in _CONV:
            raise ResbenchError(f"ContinuousDepthwiseConv train_size={list(train_size)}: expected 1, 2 or 3 sides")
        self._kernel_cache: dict | None = None  # under cache_kernels(True): kernel per (input size, adaptive)
        self.adaptive = False  # below the training size, box-prefilter each tap over its test cell
        self.kernel_net = nn.Sequential(nn.Linear(self.dims, hidden), Sine(omega), nn.Linear(hidden, hidden),
                                        Sine(omega), nn.Linear(hidden, channels))
        with torch.no_grad():  # SIREN init: first layer spans a few periods, later ones keep unit variance
            first, mid, out = self.kernel_net[0], self.kernel_net[2], self.kernel_net[4]
            first.weight.uniform_(-1 / 2, 1 / 2)
            bound = math.sqrt(6 / hidden) / omega
            mid.weight.uniform_(-bound, bound)
            out.weight.mul_(1 / taps)  # keeps the summed taps ~ unit gain at init
            out.bias.zero_()

    def continuous_kernel(self, positions: torch.Tensor) -> torch.Tensor:
        """(..., dims) positions (row, col, ...) -> (..., channels) kernel values, no grid scaling."""
        return self.kernel_net(positions)

    def grid(self, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Tap positions (*k, dims), their coverage weights (*k) and the value scale: the product of train/test
        over the axes."""
        axes = [kernel_positions(self.taps, t, n) for t, n in zip(self.train_size, size)]  # per axis (k,), (k,)
        positions = torch.stack(torch.meshgrid(*(p for p, _ in axes), indexing="ij"), dim=-1)  # (*k, dims)
        coverage = axes[0][1]
        for _, w in axes[1:]:  # outer product over the axes
            coverage = coverage[..., None] * w  # (*k)
        scale = math.prod(t / n for t, n in zip(self.train_size, size))
        weight = self.kernel_net[0].weight  # the MLP's device and dtype
        return positions.to(weight), coverage.to(weight), scale

    def kernel(self, size: Sequence[int], adaptive: bool = False) -> torch.Tensor:
        """(channels, 1, *k) depthwise kernel for an input of `size` (one side per axis).

        Each tap samples the MLP at its centre, clipped to the training taps' extent (the MLP's trained
        domain), times its coverage. `adaptive`: on an axis coarser than training, each tap is instead the
        mean of the MLP over its cell (SUBSAMPLES points per axis; parts outside the support count 0), a box
        prefilter at the test pixel that removes what the coarse grid would alias.
        """
        adaptive = adaptive and any(n < t for t, n in zip(self.train_size, size))
        key = (tuple(size), adaptive)
        if self._kernel_cache is not None and not torch.is_grad_enabled() and key in self._kernel_cache:
            return self._kernel_cache[key]
        positions, coverage, scale = self.grid(size)
        with kernel_precision(positions):  # the MLP in float32 under autocast too (see kernel_precision)
            if adaptive:
                k = self._cell_means(positions, size) * scale  # (*k, C)
            else:
                k = self.continuous_kernel(positions.clamp(-1, 1)) * (coverage[..., None] * scale)  # (*k, C)
        k = k.movedim(-1, 0).unsqueeze(1)  # (C, 1, *k)
        if self._kernel_cache is not None and not torch.is_grad_enabled():  # training: weights change each step
            self._kernel_cache[key] = k
        return k

    SUBSAMPLES = 8  # points per axis and test cell of the adaptive kernel's box prefilter

    def _cell_means(self, positions: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """(*k, dims) tap centres -> (*k, C): the MLP averaged over each tap's cell on the coarser axes.

        The support is a box, so each axis weighs its own points: on a coarser axis SUBSAMPLES points per cell,
        each 1 inside the support and 0 outside; on the other axes the centre alone, weighted by its coverage.
        """
        R = (self.taps - 1) / 2
        d = self.dims
        steps, weights = [], []  # per axis: sub-cell offsets in units of R (m,), and each point's weight (k, m)
        for t, n in zip(self.train_size, size):
            centres, coverage = (v.to(positions) for v in kernel_positions(self.taps, t, n))  # (k,), (k,)
            if n < t:  # the cell is one test pixel, t / n training pixels
                m = self.SUBSAMPLES
                grid = (torch.arange(m, dtype=positions.dtype, device=positions.device) + 0.5) / m - 0.5  # (m,)
                step = grid * (t / n) / R
                weights.append(((centres[:, None] + step).abs() <= (R + 0.5) / R).to(positions.dtype))
            else:
                step = torch.zeros(1, dtype=positions.dtype, device=positions.device)
                weights.append(coverage[:, None])
            steps.append(step)
        sub = torch.stack(torch.meshgrid(*steps, indexing="ij"), dim=-1)  # (*m, dims)
        points = positions.reshape(*positions.shape[:-1], *[1] * d, d) + sub  # (*k, *m, dims)
        weight = 1
        for axis, w in enumerate(weights):  # (k, m) of one axis placed at its k and m dims of (*k, *m)
            shape = [1] * (2 * d)
            shape[axis], shape[d + axis] = w.shape
            weight = weight * w.reshape(shape)  # (*k, *m)
        return (self.continuous_kernel(points.clamp(-1, 1)) * weight[..., None]).mean(dim=tuple(range(d, 2 * d)))

    def cache_kernels(self, enabled: bool) -> None:
        self._kernel_cache = {} if enabled else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *sides) -> (B, C, *sides)
        k = self.kernel(x.shape[2:], self.adaptive)  # (C, 1, *k), every side of k odd
        if x.dim() == 3 and k.shape[-1] > FFT_TAPS:
            return fft_conv1d(x, k)
        if x.is_cuda and max(k.shape[2:]) > GPU_FFT_TAPS:
            return fft_depthwise_conv(x, k)
        return _CONV[x.dim() - 2](x, k, padding=tuple(s // 2 for s in k.shape[2:]), groups=x.shape[1])


ContinuousDepthwiseConv2d = ContinuousDepthwiseConv  # the former name, kept for imports; train_size (h, w)


def fft_conv1d(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Depthwise F.conv1d(x, k, padding=k // 2, groups=C) through an FFT: (B, C, L), (C, 1, K odd) -> (B, C, L)."""
    L, K = x.shape[-1], k.shape[-1]
    n = 1 << (L + K - 2).bit_length()  # a power of two >= L + K - 1: no wrap-around, and a fast FFT size
    # at least float32: torch's half-precision FFTs take power-of-two sizes only and lose digits over long sums
    dtype = torch.promote_types(x.dtype, torch.float32)
    spectrum = torch.fft.rfft(x.to(dtype), n) * torch.fft.rfft(k[:, 0].to(dtype).flip(-1), n)  # (B, C, n // 2 + 1)
    y = torch.fft.irfft(spectrum, n)  # (B, C, n): the full convolution, flipped kernel = F.conv1d's correlation
    return y[..., K // 2:K // 2 + L].to(x.dtype)  # (B, C, L)


def fft_depthwise_conv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Depthwise F.convNd(x, k, padding=k // 2, groups=C) through an N-d FFT: (B, C, *L), (C, 1, *K odd) -> (B, C, *L)."""
    sides, taps = x.shape[2:], k.shape[2:]
    dims = tuple(range(2, x.dim()))
    sizes = [1 << (L + K - 2).bit_length() for L, K in zip(sides, taps)]  # no wrap-around, fast FFT sizes
    dtype = torch.promote_types(x.dtype, torch.float32)  # as in fft_conv1d
    with kernel_precision(x):
        spectrum = torch.fft.rfftn(x.to(dtype), sizes, dim=dims) * torch.fft.rfftn(
            k[:, 0].to(dtype).flip(tuple(d - 1 for d in dims)), sizes, dim=tuple(d - 1 for d in dims))
        y = torch.fft.irfftn(spectrum, sizes, dim=dims)  # (B, C, *sizes): the full convolution
    return y[(..., *[slice(K // 2, K // 2 + L) for L, K in zip(sides, taps)])].to(x.dtype)  # (B, C, *L)


def default_taps(train_size: Sequence[int]) -> int:
    """The odd number nearest half the smaller training side, at least 3."""
    return max(3, 2 * round((min(train_size) / 2 - 1) / 2) + 1)
