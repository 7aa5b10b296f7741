"""The official S4ND-ConvNeXt-3D for video (state-spaces/s4 `timm/convnext_tiny_3d`, the HMDB-51 model).

Module names follow the official `ConvNeXt3D` (`stem.stem.*`, `stages.{i}.{norm_layer,downsample,blocks.{j}}`,
`head.{norm,fc}`), so an official state dict (less its `model.` prefix) loads unchanged. The official 3-d
model takes no resolution argument: every S4ND layer runs at rate 1 whatever the clip's frame count or
frame size (its kernels keep their length in frames and pixels, cut to min(L, l_max)); so does this one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
import torch.nn as nn

from resbench.errors import ResbenchError
from resbench.models.base import ModelConfig, ResModel, check_positive_int, policies
from resbench.models.official_convnext import (Block, ChannelLinear, Conv, Head, LayerNormCF, S4Downsample,
                                               ScalarNormCF, Stage, largest_map, official_layer)
from resbench.models.registry import register_model

__all__ = ["OfficialConvNeXt3DConfig", "OfficialConvNeXt3D", "STEMS_3D", "stage_grids_3d"]

STEMS_3D = ("patch", "new_s4nd_patch")


@dataclasses.dataclass
class OfficialConvNeXt3DConfig(ModelConfig):
    train_res: int | list[int] = dataclasses.field(default_factory=lambda: [8, 32, 32])  # the training clip
    depths: list[int] = dataclasses.field(default_factory=lambda: [1, 1, 1, 1])  # blocks per stage (4 stages)
    dims: list[int] = dataclasses.field(default_factory=lambda: [8, 16, 16, 16])  # channels per stage
    video_size: list[int] = dataclasses.field(default_factory=lambda: [8, 32, 32])  # official model.video_size
    spatial_patch_size: int = 4  # official model.spatial_patch_size
    tempor_patch_size: int = 2  # official model.tempor_patch_size
    temporal_stage_strides: list | None = dataclasses.field(default_factory=lambda: [None, 1, 1, 1])  # official
    # model.temporal_stage_strides, the HMDB-51 config's (null: 2 per stage; stage 0's is unused after a stem stride)
    stem_type: str = "patch"  # official model.stem_type: patch or new_s4nd_patch
    stem_channels: int = 8  # official model.stem_channels (new_s4nd_patch)
    stem_l_max: list[int] | None = None  # official model.stem_l_max (new_s4nd_patch)
    downsample_type: str | None = "patch"  # official model.downsample_type: s4nd, else (the default) a strided conv
    downsample_act: bool = False  # official model.downsample_act
    downsample_glu: bool = False  # official model.downsample_glu
    custom_ln: bool = False  # official model.custom_ln
    head_norm_first: bool = False  # official model.head_norm_first
    layer_scale: bool = True  # official model.ls_init_value > 0
    block_tempor_kernel: int = 3  # official model.block_tempor_kernel (blocks without S4ND)
    stem_layer: dict | None = None  # the stem's S4ND options (official names, layer merged with stem_layer)
    stage_layers: list = dataclasses.field(default_factory=lambda: [None] * 4)  # per stage, None: a conv
    bandlimit: float | None = None  # every S4ND layer's trained alpha
    train_rate: float = 1.0  # the official 3-d model runs at rate 1 (kept for the common checkpoint fields)

    def __post_init__(self):
        super().__post_init__()
        if len(self.depths) != 4 or len(self.dims) != 4 or len(self.stage_layers) != 4:
            raise ResbenchError(f"official ConvNeXt-3D depths={self.depths}, dims={self.dims}: expected 4 stages")
        if len(self.video_size) != 3:
            raise ResbenchError(f"official ConvNeXt-3D video_size={self.video_size}: expected [T, H, W]")
        for what, values in (("depths", self.depths), ("dims", self.dims), ("video_size", self.video_size)):
            for v in values:
                check_positive_int(what, v)
        for what in ("spatial_patch_size", "tempor_patch_size", "stem_channels", "block_tempor_kernel"):
            check_positive_int(what, getattr(self, what))
        if self.stem_type not in STEMS_3D:
            raise ResbenchError(f"official ConvNeXt-3D stem_type={self.stem_type!r}: expected one of "
                                f"{', '.join(STEMS_3D)}")


def stage_grids_3d(config: OfficialConvNeXt3DConfig) -> tuple[list[int], list[list[int]], list[list[int]]]:
    """(stem stride, stride of each stage, grid entering each stage at video_size), per axis (T, H, W)."""
    stem = [config.tempor_patch_size, config.spatial_patch_size, config.spatial_patch_size]
    grid = [v // s for v, s in zip(config.video_size, stem)]
    strides, grids = [], []
    for i in range(4):
        if i == 0 and any(s >= 2 for s in stem):
            stride = [1, 1, 1]
        else:
            t = 2 if config.temporal_stage_strides is None else config.temporal_stage_strides[i]
            stride = [check_positive_int(f"temporal_stage_strides[{i}]", t), 2, 2]
        strides.append(stride)
        grids.append(grid)
        grid = [g // s for g, s in zip(grid, stride)]
    return stem, strides, grids


@register_model("s4nd_official_convnext3d")
class OfficialConvNeXt3D(ResModel):
    """An S4ND-ConvNeXt-3D trained with the official code (video classifier, clips (B, C, T, H, W))."""

    config_class = OfficialConvNeXt3DConfig
    LISTED_PARAMETERS = 18_562
    POLICIES = policies("the official 3-d model: every S4ND layer at rate 1 at every clip size (kernels keep "
                        "their length in frames and pixels, cut to the layer's l_max)")
    has_bandlimit = True
    adaptive_kernels = False  # no rate reaches the layers, so there is no test grid for a kernel to follow
    DIMS = (3,)

    def __init__(self, config: OfficialConvNeXt3DConfig):
        stem, strides, grids = stage_grids_3d(config)
        self.min_sizes = [s * math.prod(st[a] for st in strides) for a, s in enumerate(stem)]
        self.min_size = min(self.min_sizes)
        super().__init__(config)
        if any(t < m for t, m in zip(self.train_size, self.min_sizes)):
            raise ResbenchError(f"{self.name} train_res={config.train_res}: expected at least {self.min_sizes}")
        c = config
        norm_cf = (lambda d: ScalarNormCF()) if c.custom_ln else LayerNormCF
        self.stem = nn.Module()
        self.stem.stem = self._stem(stem, norm_cf)
        prev, stages = c.dims[0], []
        for i, (stride, grid) in enumerate(zip(strides, grids)):
            stages.append(self._stage(i, prev, stride, grid, norm_cf))
            prev = c.dims[i]
        self.stages = nn.ModuleList(stages)
        self.norm_pre = norm_cf(prev) if c.head_norm_first else nn.Identity()
        self.head = Head(nn.Identity() if c.head_norm_first else norm_cf(prev), prev, c.num_classes)

    def _stem(self, stride: list[int], norm_cf) -> nn.Sequential:
        c = self.config
        if c.stem_type == "patch":
            return nn.Sequential(nn.Conv3d(c.in_chans, c.dims[0], stride, stride=stride), norm_cf(c.dims[0]))
        if not isinstance(c.stem_layer, dict) or not c.stem_l_max:
            raise ResbenchError("official ConvNeXt-3D stem_type='new_s4nd_patch' needs stem_layer and stem_l_max")
        layer = official_layer(c.stem_layer, c.in_chans, c.stem_l_max, c.bandlimit, "stem_layer", c.stem_channels)
        return nn.Sequential(layer, nn.AvgPool3d(stride, stride), ChannelLinear(c.stem_channels, 2 * c.dims[0]),
                             nn.GLU(dim=1), norm_cf(c.dims[0]))

    def _stage(self, i: int, d_in: int, stride: list[int], grid: list[int], norm_cf) -> Stage:
        c, d = self.config, self.config.dims[i]
        options, where = c.stage_layers[i], f"stage_layers[{i}]"
        downsample = None
        if d_in != d or max(stride) > 1:
            if c.downsample_type == "s4nd":
                if not isinstance(options, dict):
                    raise ResbenchError(f"official ConvNeXt-3D downsample_type='s4nd' needs S4ND options for "
                                        f"stage {i}")
                layer = official_layer(options, d_in, grid, c.bandlimit, where)
                downsample = (norm_cf(d_in), S4Downsample(layer, d_in, d, stride, c.downsample_act, c.downsample_glu))
            else:
                downsample = (norm_cf(d_in), Conv(d_in, d, dims=3, kernel_size=stride, stride=stride))
        l_max = [g // s for g, s in zip(grid, stride)]
        k = c.block_tempor_kernel
        blocks = []
        for _ in range(c.depths[i]):
            conv_dw = Conv(d, d, dims=3, kernel_size=(k, 7, 7), padding=(k // 2, 3, 3), groups=d) \
                if options is None else official_layer(options, d, l_max, c.bandlimit, where)
            blocks.append(Block(d, conv_dw, nn.LayerNorm(d, eps=1e-6), False, c.layer_scale))
        return Stage(downsample, blocks)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.config.in_chans or \
                any(s < m for s, m in zip(x.shape[2:], self.min_sizes)):
            raise ResbenchError(f"{self.name} input of shape {tuple(x.shape)}: expected (B, {self.config.in_chans}, "
                                f"T, H, W) with (T, H, W) >= {tuple(self.min_sizes)}")

    def activation_elements(self, size: Sequence[int]) -> int:
        """The largest feature map of one clip of `size` (a sweep sizes its batches by it)."""
        c = self.config
        stem, strides, _ = stage_grids_3d(c)
        stem_width = c.in_chans if c.stem_type == "patch" else max(c.stem_channels, c.in_chans)  # at full size
        return largest_map(size, stem_width, stem, strides, c.dims)

    def rates(self, size: Sequence[int]) -> tuple[float, ...]:
        """The official 3-d model passes no rate: 1 on every axis at every size."""
        return (1.0, 1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, classes)
        rate = self.rates(x.shape[2:])
        x = self.stem.stem(x)  # (B, dims[0], T/tp, H/sp, W/sp); its S4ND layer (if any) at rate 1
        for stage in self.stages:
            x = stage(x, rate)
        return self.head(self.norm_pre(x))
