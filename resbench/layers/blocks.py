"""Building blocks the model families share: the prenorm residual block, its dropout, the GLU mixer."""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import LayerNorm2d

__all__ = ["glu_mixer", "FastDropout", "PreNormBlock"]


def glu_mixer(spatial: nn.Module, d_model: int) -> nn.Sequential:
    """spatial conv -> GELU -> per-pixel linear d -> 2d -> GLU: the output part of an S4ND layer."""
    return nn.Sequential(spatial, nn.GELU(), nn.Conv2d(d_model, 2 * d_model, 1), nn.GLU(dim=1))


class FastDropout(nn.Dropout):
    """nn.Dropout with its mask drawn by torch.rand: on this CPU 13 ms instead of 23 ms for a
    (64, 64, 28, 28) batch (bernoulli_ alone is 18.5 ms), about 9% of an s4nd_iso training step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0
        scaled_keep = torch.rand_like(x).ge_(self.p).mul_(1 / (1 - self.p))  # 1/(1-p) with probability 1-p, else 0
        return x * scaled_keep


class PreNormBlock(nn.Module):
    """x + dropout(mixer(LayerNorm over channels(x)))."""

    def __init__(self, d_model: int, mixer: nn.Module, dropout: float):
        super().__init__()
        self.norm = LayerNorm2d(d_model)
        self.mixer = mixer
        self.dropout = FastDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, H, W)
        return x + self.dropout(self.mixer(self.norm(x)))
