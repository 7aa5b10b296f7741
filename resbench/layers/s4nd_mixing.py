"""S4ND that mixes channels: one N-d SSM kernel per (output, input) channel pair, summed over the inputs.

The official S4ND layer's `out_channels` option (the `new_s4nd_patch` stem of the S4ND-ConvNeXt): with
H input and C output channels every axis's kernel has C (or 2C, bidirectional) channels per input
channel, and y[c] = sum_h K[c, h] * u[h]. There is no skip term (the layer's `D` is kept for the
official state dict but unused) and nothing after the convolution (the official `linear: true`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.layers.s4nd import S4ND

__all__ = ["MixingS4ND"]


def _widened(kernel: nn.Module, channels: int) -> nn.Module:
    """A kernel of the same kind, sizes and reference grid as `kernel` with `channels` output channels."""
    S, N2 = kernel.A_real.shape
    args = (kernel.H, 2 * N2, S, channels, "diag-lin", 0.1, 1.0)  # init and dt range: the state dict replaces them
    if kernel.kind == "dplr":
        return type(kernel)(*args, rank=kernel.rank, l_max=kernel.l_max)
    return type(kernel)(*args)


class MixingS4ND(S4ND):
    """(B, H, *L) -> (B, out_channels, *L), channels first; every option but the channel count as S4ND's."""

    def __init__(self, d_model: int, out_channels: int, **kwargs):
        super().__init__(d_model, linear=True, transposed=True, **kwargs)
        if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
            raise ResbenchError(f"S4ND out_channels={out_channels!r}: expected a positive integer")
        self.out_channels = out_channels
        per_direction = out_channels * (2 if self.bidirectional else 1)
        self.kernel = nn.ModuleList(_widened(k, per_direction) for k in self.kernel)

    @classmethod
    def from_official(cls, config: dict) -> "MixingS4ND":
        """Built from an official S4ND config with `out_channels` set; every other option is checked as S4ND's."""
        config = dict(config)
        out_channels = config.pop("out_channels", None)
        base = S4ND.from_official(config)  # refuses what S4ND cannot reproduce, naming the option
        k = base.kernel[0]
        return cls(base.d_model, out_channels, d_state=2 * k.A_real.shape[-1], dim=base.dim, l_max=base.l_max,
                   bidirectional=base.bidirectional, bandlimit=base.bandlimit, n_ssm=k.S,
                   kernel=base.kernel_type, rank=getattr(k, "rank", 1))

    def forward(self, x: torch.Tensor, rate: float | Sequence[float] = 1.0, bandlimit: float | None = ...,
                method: str = "fft") -> torch.Tensor:
        if x.dim() != 2 + self.dim or x.shape[1] != self.d_model:
            raise ResbenchError(f"S4ND input shape {tuple(x.shape)}: expected (B, {self.d_model}, "
                                f"{', '.join(['L'] * self.dim)})")
        spatial = tuple(x.shape[2:])
        ks = self._operators(spatial, rate, bandlimit, "fft")  # dim x (ch, H, Lk), ch = C or 2C
        C, sizes, k_f = self.out_channels, [], None
        for axis, (k, L) in enumerate(zip(ks, spatial)):
            n = L + k.shape[-1]  # linear convolution without wrap-around: pad to L + Lk
            taps = F.pad(k[:C], (0, L))  # (C, H, n): causal taps at the front
            if self.bidirectional:
                taps = taps + F.pad(k[C:].flip(-1), (L, 0))  # anticausal taps, flipped, at the back
            f = torch.fft.rfft(taps, n=n) if axis == self.dim - 1 else torch.fft.fft(taps, n=n)  # (C, H, F_axis)
            # outer product over the axes, one at a time: (C, H, F_1, ..., F_axis)
            k_f = f if k_f is None else k_f[..., None] * f.view(*f.shape[:2], *([1] * (k_f.dim() - 2)), -1)
            sizes.append(n)
        dims = tuple(range(-self.dim, 0))
        u_f = torch.fft.rfftn(x, s=sizes, dim=dims)  # (B, H, F_1, ..., F_N)
        y_f = torch.einsum("bh...,ch...->bc...", u_f, k_f)  # (B, C, F_1, ..., F_N): summed over the inputs
        y = torch.fft.irfftn(y_f, s=sizes, dim=dims)  # (B, C, n_1, ..., n_N)
        return y[(..., *[slice(0, L) for L in spatial])]  # (B, C, *L)
