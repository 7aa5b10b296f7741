"""BlurPool: low-pass filter, then subsample (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again")."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.errors import ResbenchError

__all__ = ["BlurPool2d", "binomial_filter"]


def binomial_filter(taps: int) -> torch.Tensor:
    """The normalised 2-d binomial filter of `taps` per axis (3: [1, 2, 1] x [1, 2, 1] / 16): (taps, taps)."""
    # on the CPU whatever the default device: a layer built on the meta device (checkpoint validation) would
    # otherwise run this arithmetic through torch's meta kernels, which import its compiler stack
    row, zero = torch.tensor([1.0], device="cpu"), torch.zeros(1, device="cpu")
    for _ in range(taps - 1):
        row = torch.cat([row, zero]) + torch.cat([zero, row])  # Pascal's triangle
    kernel = row[:, None] * row[None, :]  # (taps, taps)
    return kernel / kernel.sum()


class BlurPool2d(nn.Module):
    """(B, C, H, W) -> (B, C, ceil(H/stride), ceil(W/stride)): each channel blurred by a fixed binomial filter,
    then every `stride`-th pixel kept. The edges are replicated, which works at any size (a reflection needs
    two pixels a side)."""

    def __init__(self, channels: int, taps: int = 3, stride: int = 2):
        super().__init__()
        if taps not in (1, 2, 3, 4, 5, 6, 7):
            raise ResbenchError(f"blur taps={taps!r}: expected a whole number in 1..7")
        self.stride, self.channels = stride, channels
        self.pad = ((taps - 1) // 2, taps // 2) * 2  # (left, right, top, bottom) for F.pad
        # a buffer, not a parameter: the filter is fixed; persistent=False keeps it out of checkpoints
        filt = binomial_filter(taps).to(torch.get_default_device())  # (taps, taps)
        self.register_buffer("filt", filt.expand(channels, 1, taps, taps).contiguous(),
                             persistent=False)  # (C, 1, taps, taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad, mode="replicate")
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, groups=self.channels)
