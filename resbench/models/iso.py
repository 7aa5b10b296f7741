"""Isotropic backbones of the S4ND paper's resolution experiment: S4ND-ISO and its discrete Conv twins, for
signals (1-d), images (2-d) and clips (3-d); the number of axes comes from train_res."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.layers import compiled_passes
from resbench.layers.blocks import PreNormBlock, compiled_dtype, glu_mixer, has_forward_hooks
from resbench.layers.rate_s4nd import RateS4ND
from resbench.models.base import ModelConfig, ResModel, check_positive_int, policies
from resbench.models.fields import S4NDFields, s4nd_layer
from resbench.models.registry import register_model

__all__ = ["IsoConfig", "S4NDIsoConfig", "ConvIsoConfig", "IsoModel", "S4NDIso", "Conv1dIso", "Conv2dIso",
           "Conv3dIso"]


@dataclasses.dataclass
class IsoConfig(ModelConfig):
    d_model: int = 64  # channels of every block
    n_layers: int = 4  # residual blocks
    dropout: float = 0.1  # on each block's output, before the residual sum


@dataclasses.dataclass
class S4NDIsoConfig(S4NDFields, IsoConfig):
    pass


@dataclasses.dataclass
class ConvIsoConfig(IsoConfig):
    kernel_size: int = 3  # taps of each dense conv per axis (odd: the output keeps the input's size)


class IsoModel(ResModel):
    """1x1 stem -> n_layers prenorm residual blocks at full resolution -> LayerNorm, mean over every axis, linear."""

    config_class = IsoConfig

    def __init__(self, config: IsoConfig):
        super().__init__(config)
        d = check_positive_int("d_model", config.d_model)
        check_positive_int("n_layers", config.n_layers)
        if not 0 <= config.dropout < 1:
            raise ResbenchError(f"dropout={config.dropout}: expected a number in [0, 1)")
        self.stem = nn.Conv2d(config.in_chans, d, 1)  # used as the per-pixel linear it is (see _forward)
        self.blocks = nn.Sequential(*[PreNormBlock(d, self.make_mixer(), config.dropout)
                                      for _ in range(config.n_layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.num_classes)

    def make_mixer(self) -> nn.Module:
        """One block's mixer over every axis, (B, D, *sides) -> (B, D, *sides)."""
        raise NotImplementedError

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last memory: the norms and the per-pixel linears read it without copies, and
        # S4ND hands its output back channel-innermost. Eval at 28x28 is about 1/3 faster this way.
        # The 1x1 stem is applied as the per-pixel linear it is, which writes channels-last directly
        # (a 1x1 convolution writes channel-first and needs a transposing copy after it). Under autocast the
        # stem runs in float32, so the residual stream stays float32: each block computes in the half dtype and
        # adds its output to a float32 sum. A half-precision stream rounds that sum at every block, which
        # flipped 3-10x more predictions against float32 (docs/benchmarks.md, "bf16").
        x = x.movedim(1, -1)  # (B, *sides, C)
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                x = F.linear(x.float(), self.stem.weight.flatten(1).float(), self.stem.bias.float())  # (B, *sides, D)
        else:
            x = F.linear(x, self.stem.weight.flatten(1), self.stem.bias)  # (B, *sides, D)
        x = x.movedim(-1, 1)  # (B, D, *sides), channels-last in memory
        if has_forward_hooks(self.blocks, *self.blocks):  # a hook sees each block's input as it was
            x = self.blocks(x)
        else:  # the stream is this forward's own: each block may write its sum over its input
            for block in self.blocks:
                x = block(x, overwrite=True)
        x = x.movedim(1, -1)  # (B, *sides, D)
        if compiled_dtype(x) is not None and not has_forward_hooks(self.norm):  # one compiled float32 pass
            with torch.autocast(x.device.type, enabled=False):
                x = compiled_passes.norm_mean(x, self.norm.weight, self.norm.bias, self.norm.eps)  # (B, D)
        else:
            x = self.norm(x).mean(dim=tuple(range(1, 1 + self.dims)))  # (B, D)
        return self.head(x)  # (B, num_classes)


@register_model("s4nd_iso")
class S4NDIso(IsoModel):
    """The isotropic S4ND model: each block mixes space with a bidirectional S4ND layer (GLU output)."""

    config_class = S4NDIsoConfig
    POLICIES = policies("rescale each S4ND step per axis: rate = train/test feature-map size, same continuous kernel")
    has_bandlimit = True
    adaptive_kernels = True
    DIMS = (1, 2, 3)

    def make_mixer(self) -> nn.Module:
        return RateS4ND(s4nd_layer(self.config, self.config.d_model, self.train_size,
                                   activation="gelu", final_act="glu"))


class ConvIso(IsoModel):
    """The discrete baseline: the same backbone with a dense conv (kernel_size taps per axis) in place of S4ND."""

    config_class = ConvIsoConfig
    POLICIES = policies("the same discrete kernels slide over the bigger (or smaller) grid")

    def make_mixer(self) -> nn.Module:
        d, k = self.config.d_model, check_positive_int("kernel_size", self.config.kernel_size)
        if k % 2 == 0:
            raise ResbenchError(f"kernel_size={k}: expected an odd number (the output keeps the input's size)")
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[self.dims]
        return glu_mixer(conv(d, d, k, padding=k // 2), d, self.dims)


@register_model("conv1d_iso")
class Conv1dIso(ConvIso):
    """The Conv1D twin of 1-d S4ND-ISO (signals): train_res [L]."""

    DIMS = (1,)


@register_model("conv2d_iso")
class Conv2dIso(ConvIso):
    """The Conv2D baseline of S4ND-ISO (images)."""

    DIMS = (2,)


@register_model("conv3d_iso")
class Conv3dIso(ConvIso):
    """The Conv3D twin of 3-d S4ND-ISO (clips): train_res [t, h, w]."""

    DIMS = (3,)
