"""CKConv / FlexConv-style continuous depthwise convolution: the kernel is an MLP of position, sampled per grid."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.layers.resolution_aware import ResolutionAware

__all__ = ["ContinuousDepthwiseConv2d", "kernel_positions", "default_taps", "Sine"]


def kernel_positions(taps: int, train_len: int, length: int) -> torch.Tensor:
    """(k,) tap positions for a grid of `length` pixels, in units of the training kernel's half-width.

    At length == train_len these are `taps` points from -1 to 1. On a grid s = length / train_len times
    finer the taps keep the pixel spacing of the new grid (1/s training pixels) and cover the same
    continuous extent, so there are 2 * floor(s * (taps - 1) / 2) + 1 of them (about s times as many).
    """
    s = length / train_len
    half = math.floor(s * (taps - 1) / 2 + 1e-6)  # the epsilon keeps exact multiples from rounding down
    offsets = torch.arange(-half, half + 1, dtype=torch.float32) / s  # (k,) in training pixels
    return offsets / ((taps - 1) / 2)


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
        self._kernel_cache: dict | None = None  # under cache_kernels(True): kernel per input size
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

    def grid(self, size: Sequence[int]) -> tuple[torch.Tensor, float]:
        """Tap positions (kh, kw, 2) for an input of `size` and the value scale train/test per axis."""
        rows, cols = (kernel_positions(self.taps, t, n) for t, n in zip(self.train_size, size))
        positions = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)  # (kh, kw, 2)
        scale = (self.train_size[0] / size[0]) * (self.train_size[1] / size[1])
        return positions.to(self.kernel_net[0].weight), scale  # the MLP's device and dtype

    def kernel(self, size: Sequence[int]) -> torch.Tensor:
        """(channels, 1, kh, kw) depthwise kernel for an input of `size` (H, W)."""
        key = tuple(size)
        if self._kernel_cache is not None and not torch.is_grad_enabled() and key in self._kernel_cache:
            return self._kernel_cache[key]
        positions, scale = self.grid(size)
        k = (self.continuous_kernel(positions) * scale).permute(2, 0, 1).unsqueeze(1)  # (C, 1, kh, kw)
        if self._kernel_cache is not None and not torch.is_grad_enabled():  # training: weights change each step
            self._kernel_cache[key] = k
        return k

    def cache_kernels(self, enabled: bool) -> None:
        self._kernel_cache = {} if enabled else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        k = self.kernel(x.shape[-2:])  # (C, 1, kh, kw), kh and kw odd
        return F.conv2d(x, k, padding=(k.shape[-2] // 2, k.shape[-1] // 2), groups=x.shape[1])


def default_taps(train_size: Sequence[int]) -> int:
    """The odd number nearest half the smaller training side, at least 3."""
    return max(3, 2 * round((min(train_size) / 2 - 1) / 2) + 1)
