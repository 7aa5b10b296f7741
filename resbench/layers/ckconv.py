"""CKConv / FlexConv-style continuous depthwise convolution: the kernel is an MLP of position, sampled per grid."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.layers.resolution_aware import ResolutionAware

__all__ = ["ContinuousDepthwiseConv2d", "kernel_positions", "default_taps", "Sine"]


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


class ContinuousDepthwiseConv2d(ResolutionAware):
    """Depthwise conv whose kernel is an MLP of the 2-d tap position, sampled on the input's grid.

    At `train_size` the kernel has `taps` x `taps` taps. On another grid (the FlexConv rule, FACTS 3)
    the MLP is sampled at that grid's pixel spacing over the same continuous extent, and the values are
    multiplied by (train_h / test_h) * (train_w / test_w) so a smooth input gives the same response.
    """

    def __init__(self, channels: int, taps: int, train_size: Sequence[int], hidden: int = 32, omega: float = 10.0):
        super().__init__()
        self.taps, self.train_size = taps, tuple(train_size)
        self._kernel_cache: dict | None = None  # under cache_kernels(True): kernel per (input size, adaptive)
        self.adaptive = False  # below the training size, box-prefilter each tap over its test cell
        self.kernel_net = nn.Sequential(nn.Linear(2, hidden), Sine(omega), nn.Linear(hidden, hidden), Sine(omega),
                                        nn.Linear(hidden, channels))
        with torch.no_grad():  # SIREN init: first layer spans a few periods, later ones keep unit variance
            first, mid, out = self.kernel_net[0], self.kernel_net[2], self.kernel_net[4]
            first.weight.uniform_(-1 / 2, 1 / 2)
            bound = math.sqrt(6 / hidden) / omega
            mid.weight.uniform_(-bound, bound)
            out.weight.mul_(1 / taps)  # keeps the summed taps ~ unit gain at init
            out.bias.zero_()

    def continuous_kernel(self, positions: torch.Tensor) -> torch.Tensor:
        """(..., 2) (row, col) positions -> (..., channels) kernel values, no grid scaling."""
        return self.kernel_net(positions)

    def grid(self, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Tap positions (kh, kw, 2), their coverage weights (kh, kw) and the value scale train/test per axis."""
        (rows, w_rows), (cols, w_cols) = (kernel_positions(self.taps, t, n) for t, n in zip(self.train_size, size))
        positions = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)  # (kh, kw, 2)
        scale = (self.train_size[0] / size[0]) * (self.train_size[1] / size[1])
        weight = self.kernel_net[0].weight  # the MLP's device and dtype
        return positions.to(weight), (w_rows[:, None] * w_cols[None, :]).to(weight), scale

    def kernel(self, size: Sequence[int], adaptive: bool = False) -> torch.Tensor:
        """(channels, 1, kh, kw) depthwise kernel for an input of `size` (H, W).

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
        if adaptive:
            k = self._cell_means(positions, size) * scale  # (kh, kw, C)
        else:
            k = self.continuous_kernel(positions.clamp(-1, 1)) * (coverage[..., None] * scale)  # (kh, kw, C)
        k = k.permute(2, 0, 1).unsqueeze(1)  # (C, 1, kh, kw)
        if self._kernel_cache is not None and not torch.is_grad_enabled():  # training: weights change each step
            self._kernel_cache[key] = k
        return k

    SUBSAMPLES = 8  # points per axis and test cell of the adaptive kernel's box prefilter

    def _cell_means(self, positions: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """(kh, kw, 2) tap centres -> (kh, kw, C): the MLP averaged over each tap's cell on the coarser axes.

        The support is a box, so each axis weighs its own points: on a coarser axis SUBSAMPLES points per cell,
        each 1 inside the support and 0 outside; on the other axis the centre alone, weighted by its coverage.
        """
        R = (self.taps - 1) / 2
        steps, weights = [], []  # per axis: sub-cell offsets in units of R (m,), and each point's weight (k, m)
        for axis, (t, n) in enumerate(zip(self.train_size, size)):
            centres = positions[:, 0, 0] if axis == 0 else positions[0, :, 1]  # (k,)
            if n < t:  # the cell is one test pixel, t / n training pixels
                m = self.SUBSAMPLES
                grid = (torch.arange(m, dtype=positions.dtype, device=positions.device) + 0.5) / m - 0.5  # (m,)
                step = grid * (t / n) / R
                weights.append(((centres[:, None] + step).abs() <= (R + 0.5) / R).to(positions.dtype))
            else:
                step = torch.zeros(1, dtype=positions.dtype, device=positions.device)
                weights.append(kernel_positions(self.taps, t, n)[1].to(positions)[:, None])
            steps.append(step)
        sub = torch.stack(torch.meshgrid(*steps, indexing="ij"), dim=-1)  # (mh, mw, 2)
        points = positions[:, :, None, None, :] + sub  # (kh, kw, mh, mw, 2)
        weight = weights[0][:, None, :, None] * weights[1][None, :, None, :]  # (kh, kw, mh, mw)
        return (self.continuous_kernel(points.clamp(-1, 1)) * weight[..., None]).mean(dim=(2, 3))  # (kh, kw, C)

    def cache_kernels(self, enabled: bool) -> None:
        self._kernel_cache = {} if enabled else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        k = self.kernel(x.shape[-2:], self.adaptive)  # (C, 1, kh, kw), kh and kw odd
        return F.conv2d(x, k, padding=(k.shape[-2] // 2, k.shape[-1] // 2), groups=x.shape[1])


def default_taps(train_size: Sequence[int]) -> int:
    """The odd number nearest half the smaller training side, at least 3."""
    return max(3, 2 * round((min(train_size) / 2 - 1) / 2) + 1)
