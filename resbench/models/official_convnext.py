"""The official S4ND-ConvNeXt (state-spaces/s4 `timm/convnext_*`), rebuilt so its checkpoints load by name.

Module names follow the official model (`stem.{pre_stem,stem,post_stem}`, `stages.{i}.{norm_layer,downsample,
blocks.{j}}`, `head.{norm,fc}`), so an official state dict (less its `model.` prefix) loads unchanged.
The official resolution semantics are kept: the model runs every S4ND layer (stem, downsampling, blocks)
at one rate r = img_size / input size per axis, where img_size is the grid the layers' l_max were set
from (the official `model.img_size`); the official evaluation of an image resized to img_size / r passes
exactly that r. Each S4ND layer is built from its official option dict (`S4ND.from_official`), which
refuses any option it cannot reproduce.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.layers.s4nd import S4ND
from resbench.layers.s4nd_mixing import MixingS4ND
from resbench.models.base import ModelConfig, ResModel, check_positive_int, policies
from resbench.models.official import ScalarChannelNorm
from resbench.models.registry import register_model

__all__ = ["OfficialConvNeXtConfig", "OfficialConvNeXt", "STEMS", "stage_grids", "largest_map"]

# stem kind -> (its stride is the patch size, channels it hands to stage 0 are dims[0])
STEMS = {"patch": True, "new_s4nd_patch": True, "s4nd_patch": True, "s4nd": False}
_S4ND_CHANNELS = 64  # the official `s4nd` stem's output channels (fixed in its code)


@dataclasses.dataclass
class OfficialConvNeXtConfig(ModelConfig):
    train_res: int | list[int] = 32  # the training input (img_size / train_rate); 4 stages need 32 pixels a side
    depths: list[int] = dataclasses.field(default_factory=lambda: [1, 1, 1, 1])  # blocks per stage (4 stages)
    dims: list[int] = dataclasses.field(default_factory=lambda: [8, 16, 16, 16])  # channels per stage
    img_size: list[int] = dataclasses.field(default_factory=lambda: [32, 32])  # official model.img_size: l_max grid
    patch_size: int = 4  # official model.patch_size: the stem's downsampling
    stem_type: str = "patch"  # official model.stem_type: patch, new_s4nd_patch, s4nd_patch or s4nd
    stem_channels: int = 8  # official model.stem_channels (S4ND stems only)
    stem_l_max: list[int] | None = None  # official model.stem_l_max (new_s4nd_patch only)
    downsample_type: str | None = "patch"  # official model.downsample_type: s4nd, else (the default) a strided conv
    downsample_act: bool = False  # official model.downsample_act: GELU after the downsampling S4ND layer
    downsample_glu: bool = False  # official model.downsample_glu: its 1x1 map to 2C channels, then GLU
    conv_mlp: bool = False  # official model.conv_mlp: the block MLP as 1x1 convs with a channels-first norm
    custom_ln: bool = False  # official model.custom_ln: the scalar transposed LayerNorm for channels-first norms
    head_norm_first: bool = False  # official model.head_norm_first: norm before the global pool
    layer_scale: bool = True  # official model.ls_init_value > 0: a learned per-channel scale (gamma) per block
    stem_layer: dict | None = None  # the stem's S4ND options (official names, layer merged with stem_layer)
    stage_layers: list = dataclasses.field(default_factory=lambda: [None] * 4)  # per stage, None: 7x7 conv
    bandlimit: float | None = None  # every S4ND layer's trained alpha (official layer.bandlimit)
    train_rate: float = 1.0  # official loader.train_resolution: the rate of the training input

    def __post_init__(self):
        super().__post_init__()
        if len(self.depths) != 4 or len(self.dims) != 4 or len(self.stage_layers) != 4:
            raise ResbenchError(f"official ConvNeXt depths={self.depths}, dims={self.dims}: expected 4 stages")
        for what, values in (("depths", self.depths), ("dims", self.dims), ("img_size", self.img_size)):
            for v in values:
                check_positive_int(what, v)
        check_positive_int("patch_size", self.patch_size)
        check_positive_int("stem_channels", self.stem_channels)
        if self.stem_type not in STEMS:
            raise ResbenchError(f"official ConvNeXt stem_type={self.stem_type!r}: expected one of {', '.join(STEMS)}")
        if not (isinstance(self.train_rate, (int, float)) and self.train_rate > 0):
            raise ResbenchError(f"official ConvNeXt train_rate={self.train_rate!r}: expected a positive number")


def stage_grids(config: OfficialConvNeXtConfig) -> tuple[int, list[int], list[list[int]]]:
    """(stem stride, stride of each stage, grid entering each stage at img_size), as the official model sets l_max."""
    stem_stride = config.patch_size if STEMS[config.stem_type] else 2
    grid = [s // stem_stride for s in config.img_size]
    strides, grids = [], []
    for i in range(4):
        stride = 1 if i == 0 and stem_stride == 4 else 2
        strides.append(stride)
        grids.append(grid)
        grid = [s // stride for s in grid]
    return stem_stride, strides, grids


def largest_map(size: Sequence[int], stem_width: int, stem_stride: Sequence[int], strides: Sequence[Sequence[int]],
                dims: Sequence[int]) -> int:
    """Elements of the largest feature map one input of `size` makes: the stem's at full size, or a block MLP's
    hidden map (4 C channels) at some stage (what bounds a sweep's batch)."""
    largest = stem_width * math.prod(size)
    grid = [s // st for s, st in zip(size, stem_stride)]
    for d, stride in zip(dims, strides):
        grid = [g // st for g, st in zip(grid, stride)]
        largest = max(largest, 4 * d * math.prod(grid))
    return largest


class LayerNormCF(nn.LayerNorm):
    """LayerNorm over the channel axis of a channels-first map (B, C, *L), eps 1e-6 (the official default)."""

    def __init__(self, d: int):
        super().__init__(d, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class ScalarNormCF(ScalarChannelNorm):
    """The official custom_ln norm on a channels-first map: standardise over channels, one scale and shift."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class ChannelLinear(nn.Module):
    """A linear map of the channel axis of (B, C_in, *L) -> (B, C_out, *L) (the official TransposedLinear)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(d_out))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("bu...,vu->bv...", x, self.weight)  # (B, C_out, *L)
        return y + self.bias.view(-1, *([1] * (x.dim() - 2)))


class Conv(nn.Module):
    """A plain conv where the official model has one (`.conv`): a block's depthwise 7x7, a strided downsampling."""

    def __init__(self, d_in: int, d_out: int, dims: int = 2, **conv):
        super().__init__()
        self.conv = (nn.Conv3d if dims == 3 else nn.Conv2d)(d_in, d_out, **conv)

    def forward(self, x: torch.Tensor, rate=None) -> torch.Tensor:
        return self.conv(x)


class S4Downsample(nn.Module):
    """S4ND at the finer grid, optional GELU, mean pool over stride cells, 1x1 map (to 2C and GLU, or C)."""

    def __init__(self, layer: S4ND, d_in: int, d_out: int, stride, act: bool, glu: bool):
        super().__init__()
        self.s4conv = layer
        self.act = nn.GELU() if act else nn.Identity()
        self.avgpool = (nn.AvgPool3d if layer.dim == 3 else nn.AvgPool2d)(stride, stride)  # stride: int or per axis
        self.glu = glu
        self.fc = ChannelLinear(d_in, 2 * d_out if glu else d_out)

    def forward(self, x: torch.Tensor, rate: Sequence[float]) -> torch.Tensor:  # (B, C_in, *L)
        x = self.fc(self.avgpool(self.act(self.s4conv(x, rate=rate))))  # (B, 2 C_out or C_out, *L / stride)
        return F.glu(x, dim=1) if self.glu else x


class Block(nn.Module):
    """x + gamma * mlp(norm(conv_dw(x))), conv_dw an S4ND layer (linear) or a depthwise conv."""

    def __init__(self, d: int, conv_dw: nn.Module, norm: nn.Module, conv_mlp: bool, layer_scale: bool):
        from timm.layers import ConvMlp, Mlp  # timm loads only for this model

        super().__init__()
        self.conv_dw, self.norm, self.conv_mlp = conv_dw, norm, conv_mlp
        self.mlp = (ConvMlp if conv_mlp else Mlp)(d, 4 * d, act_layer=nn.GELU)
        self.gamma = nn.Parameter(torch.full((d,), 1e-6)) if layer_scale else None

    def forward(self, x: torch.Tensor, rate: Sequence[float]) -> torch.Tensor:  # (B, C, H, W)
        y = self.conv_dw(x, rate=rate)
        y = self.mlp(self.norm(y)) if self.conv_mlp else self.mlp(self.norm(y.movedim(1, -1))).movedim(-1, 1)
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, *([1] * (y.dim() - 2)))
        return x + y


class Stage(nn.Module):
    """Optional downsampling (norm, then S4ND downsampling or a strided conv), then the blocks."""

    def __init__(self, downsample: tuple[nn.Module, nn.Module] | None, blocks: list[Block]):
        super().__init__()
        if downsample is not None:
            self.norm_layer, self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, rate: Sequence[float]) -> torch.Tensor:
        if hasattr(self, "downsample"):
            x = self.norm_layer(x)
            x = self.downsample(x, rate)
        for block in self.blocks:
            x = block(x, rate)
        return x


class Stem(nn.Module):
    """pre_stem -> stem (S4ND, at the model's rate) -> post_stem; the `patch` stem is a conv and a norm."""

    def __init__(self, kind: str, pre: nn.Module, stem: nn.Module, post: nn.Module):
        super().__init__()
        self.kind, self.pre_stem, self.stem, self.post_stem = kind, pre, stem, post

    def forward(self, x: torch.Tensor, rate: Sequence[float]) -> torch.Tensor:  # (B, C, H, W)
        if self.kind == "patch":
            return self.stem(x)
        if isinstance(self.stem, S4ND):
            return self.post_stem(self.stem(self.pre_stem(x), rate=rate))
        return self.post_stem(self.stem(self.pre_stem(x), rate))


class Head(nn.Module):
    """Global mean pool, norm (unless it came first), linear."""

    def __init__(self, norm: nn.Module, d: int, num_classes: int):
        super().__init__()
        self.norm, self.fc = norm, nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *L) -> (B, classes)
        x = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)  # (B, C, 1, ..., 1)
        return self.fc(self.norm(x).flatten(1))


def official_layer(options: dict, d_model: int, l_max: Sequence[int], bandlimit: float | None,
                   where: str, out_channels: int | None = None) -> S4ND:
    """An S4ND layer from its official option dict, placed as the official model places it (channels first,
    l_max set by the model). `linear` reads as the official class default, true, when absent."""
    opts = {k: v for k, v in options.items() if k != "bandlimit"}
    opts.setdefault("linear", True)
    if opts["linear"]:  # the official layer builds no activation, dropout or output linear then
        for key in ("activation", "final_act", "dropout"):
            opts.pop(key, None)
    opts.update(d_model=d_model, l_max=list(l_max), dim=len(l_max), bandlimit=bandlimit, transposed=True)
    try:
        if out_channels is not None:
            return MixingS4ND.from_official({**opts, "out_channels": out_channels})
        return S4ND.from_official(opts)
    except ResbenchError as e:
        raise ResbenchError(f"{where}: {e}") from None


@register_model("s4nd_official_convnext")
class OfficialConvNeXt(ResModel):
    """An S4ND-ConvNeXt trained with the official code: S4ND stem, S4ND downsampling, S4ND blocks."""

    config_class = OfficialConvNeXtConfig
    LISTED_PARAMETERS = 12_946
    POLICIES = policies("the official rate: img_size / test size per axis at every S4ND layer (stem, downsampling "
                        "and blocks), kernels resampled on the test grid")
    has_bandlimit = True
    adaptive_kernels = True

    def __init__(self, config: OfficialConvNeXtConfig):
        stem_stride, strides, grids = stage_grids(config)
        self.min_size = stem_stride * 2 ** sum(s == 2 for s in strides)  # every stage keeps at least one pixel
        super().__init__(config)
        c = config
        norm_cf = (lambda d: ScalarNormCF()) if c.custom_ln else LayerNormCF
        norm_cl = norm_cf if c.conv_mlp else (lambda d: nn.LayerNorm(d, eps=1e-6))
        self.stem = self._stem(norm_cf)
        prev, stages = c.dims[0] if STEMS[c.stem_type] else _S4ND_CHANNELS, []
        for i, (stride, grid) in enumerate(zip(strides, grids)):
            stages.append(self._stage(i, prev, stride, grid, norm_cf, norm_cl))
            prev = c.dims[i]
        self.stages = nn.ModuleList(stages)
        self.norm_pre = norm_cf(prev) if c.head_norm_first else nn.Identity()
        self.head = Head(nn.Identity() if c.head_norm_first else norm_cf(prev), prev, c.num_classes)
        for m in self.modules():
            if isinstance(m, S4ND):
                m.train_rate = float(c.train_rate)  # the adaptive bandlimit's reference

    def _stem(self, norm_cf) -> Stem:
        c, kind = self.config, self.config.stem_type
        if kind == "patch":
            conv = nn.Conv2d(c.in_chans, c.dims[0], c.patch_size, stride=c.patch_size)
            return Stem(kind, nn.Identity(), nn.Sequential(conv, norm_cf(c.dims[0])), nn.Identity())
        if not isinstance(c.stem_layer, dict):
            raise ResbenchError(f"official ConvNeXt stem_type={kind!r} needs the stem's S4ND options (stem_layer)")
        if kind == "new_s4nd_patch":
            if not c.stem_l_max:
                raise ResbenchError("official ConvNeXt stem_type='new_s4nd_patch' needs stem_l_max")
            layer = official_layer(c.stem_layer, c.in_chans, c.stem_l_max, c.bandlimit, "stem_layer", c.stem_channels)
            post = nn.Sequential(nn.AvgPool2d(c.patch_size, c.patch_size),
                                 ChannelLinear(c.stem_channels, 2 * c.dims[0]), nn.GLU(dim=1), norm_cf(c.dims[0]))
            return Stem(kind, nn.Identity(), layer, post)
        layer = official_layer(c.stem_layer, c.stem_channels, c.img_size, c.bandlimit, "stem_layer")
        pre = nn.Conv2d(c.in_chans, c.stem_channels, 1)
        if kind == "s4nd_patch":
            down = S4Downsample(layer, c.stem_channels, c.dims[0], c.patch_size, c.downsample_act, c.downsample_glu)
            return Stem(kind, pre, down, norm_cf(c.dims[0]))
        down = S4Downsample(layer, c.stem_channels, _S4ND_CHANNELS, 2, c.downsample_act, c.downsample_glu)
        return Stem(kind, nn.Sequential(pre, norm_cf(c.stem_channels), nn.GELU()), down, nn.Identity())

    def _stage(self, i: int, d_in: int, stride: int, grid: list[int], norm_cf, norm_cl) -> Stage:
        c, d = self.config, self.config.dims[i]
        options, where = c.stage_layers[i], f"stage_layers[{i}]"
        downsample = None
        if d_in != d or stride > 1:
            if c.downsample_type == "s4nd":
                if not isinstance(options, dict):
                    raise ResbenchError(f"official ConvNeXt downsample_type='s4nd' needs S4ND options for stage {i}")
                layer = official_layer(options, d_in, grid, c.bandlimit, where)
                downsample = (norm_cf(d_in), S4Downsample(layer, d_in, d, stride, c.downsample_act, c.downsample_glu))
            else:
                downsample = (norm_cf(d_in), Conv(d_in, d, kernel_size=stride, stride=stride))
        l_max = [s // stride for s in grid]
        blocks = []
        for _ in range(c.depths[i]):
            conv_dw = Conv(d, d, kernel_size=7, padding=3, groups=d) if options is None else \
                official_layer(options, d, l_max, c.bandlimit, where)
            blocks.append(Block(d, conv_dw, norm_cl(d), c.conv_mlp, c.layer_scale))
        return Stage(downsample, blocks)

    def activation_elements(self, size: Sequence[int]) -> int:
        """The largest feature map of one image of `size` (a sweep sizes its batches by it)."""
        c = self.config
        stem_stride, strides, _ = stage_grids(c)
        stem_width = c.in_chans if c.stem_type == "patch" else max(c.stem_channels, c.in_chans)  # at full size
        return largest_map(size, stem_width, [stem_stride] * 2, [[s, s] for s in strides], c.dims)

    def rates(self, size: Sequence[int]) -> tuple[float, ...]:
        """The official rate for an input of `size`: img_size / size per axis, the same at every layer."""
        return tuple(g / s for g, s in zip(self.config.img_size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        rate = self.rates(x.shape[2:])
        x = self.stem(x, rate)  # (B, dims[0], H/p, W/p)
        for stage in self.stages:
            x = stage(x, rate)
        return self.head(self.norm_pre(x))
