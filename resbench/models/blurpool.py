"""A small downsampling CNN built for resolution change: anti-aliased (blur-pooled) strides, and its plain-strided control."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from resbench.errors import ResbenchError
from resbench.layers.blocks import ChannelNorm, PreNormBlock, glu_mixer
from resbench.layers.blurpool import BlurPool2d
from resbench.models.base import ModelConfig, ResModel, check_positive_int, policies
from resbench.models.registry import register_model

__all__ = ["DownConvConfig", "DownConv", "Conv2dBlurPool", "Conv2dStrided"]


@dataclasses.dataclass
class DownConvConfig(ModelConfig):
    d_model: int = 64  # channels of every stage
    stages: int = 3  # stages of residual blocks, a downsampling step (x1/2 a side) between each two
    depth: int = 1  # residual blocks per stage
    kernel_size: int = 3  # taps of each dense conv per axis (odd: a block keeps its input's size)
    dropout: float = 0.1  # on each block's output, before the residual sum
    blur: int = 3  # taps of the binomial blur before each subsampling (conv2d_blurpool only; 3: [1, 2, 1])


class DownConv(ResModel):
    """1x1 stem -> stages of prenorm conv blocks with a downsampling step between each two -> LayerNorm, mean
    over the pixels, linear. A step is norm -> 3x3 conv -> GELU -> subsample by 2: with BLUR, a BlurPool
    (Zhang 2019: the conv runs at stride 1, its output is low-passed before it is subsampled), else the
    conv itself runs at stride 2 (the usual, aliasing, stride)."""

    config_class = DownConvConfig
    BLUR = False
    DIMS = (2,)

    def __init__(self, config: DownConvConfig):
        super().__init__(config)
        d = check_positive_int("d_model", config.d_model)
        k = check_positive_int("kernel_size", config.kernel_size)
        if k % 2 == 0:
            raise ResbenchError(f"kernel_size={k}: expected an odd number (a block keeps its input's size)")
        if not 0 <= config.dropout < 1:
            raise ResbenchError(f"dropout={config.dropout}: expected a number in [0, 1)")
        stages, depth = check_positive_int("stages", config.stages), check_positive_int("depth", config.depth)
        self.stem = nn.Conv2d(config.in_chans, d, 1)
        layers = []
        for i in range(stages):
            if i:
                layers.append(self.downsample(d, k))
            layers += [PreNormBlock(d, glu_mixer(nn.Conv2d(d, d, k, padding=k // 2), d), config.dropout)
                       for _ in range(depth)]
        self.body = nn.Sequential(*layers)
        self.norm = ChannelNorm(d)
        self.head = nn.Linear(d, config.num_classes)

    def downsample(self, d: int, k: int) -> nn.Module:
        """(B, d, H, W) -> (B, d, ceil(H/2), ceil(W/2))."""
        if self.BLUR:
            return nn.Sequential(ChannelNorm(d), nn.Conv2d(d, d, k, padding=k // 2), nn.GELU(),
                                 BlurPool2d(d, self.config.blur, stride=2))
        return nn.Sequential(ChannelNorm(d), nn.Conv2d(d, d, k, stride=2, padding=k // 2), nn.GELU())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x))  # (B, d, h, w), h = ceil(H / 2^(stages-1))
        return self.head(self.norm(x).mean(dim=(2, 3)))  # (B, num_classes)


@register_model("conv2d_blurpool")
class Conv2dBlurPool(DownConv):
    """The anti-aliased CNN baseline: every downsampling step blurs (binomial filter) before it subsamples."""

    POLICIES = policies("the same discrete kernels slide over the new grid; each downsampling step low-passes "
                        "(BlurPool) before it subsamples")
    BLUR = True


@register_model("conv2d_strided")
class Conv2dStrided(DownConv):
    """The control of conv2d_blurpool: the same network, each downsampling step a plain stride-2 conv."""

    POLICIES = policies("the same discrete kernels slide over the new grid; each downsampling step is a "
                        "stride-2 conv")
