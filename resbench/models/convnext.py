"""A small ConvNeXt built from timm's ConvNeXt stages, and its S4ND twin (depthwise convs -> S4ND layers)."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from resbench.errors import ResbenchError
from resbench.models.base import ModelConfig, ResModel, check_positive_int, policies
from resbench.layers.rate_s4nd import RateS4ND
from resbench.models.fields import S4NDFields, s4nd_layer
from resbench.models.registry import register_model

__all__ = ["ConvNeXtShape", "ConvNeXtConfig", "S4NDConvNeXtConfig", "S4NDConvNeXtOfficialConfig", "ConvNeXt",
           "S4NDConvNeXt", "S4NDConvNeXtOfficial"]


@dataclasses.dataclass
class ConvNeXtShape(ModelConfig):
    depths: list[int] = dataclasses.field(default_factory=lambda: [2, 2, 2])  # blocks per stage
    dims: list[int] = dataclasses.field(default_factory=lambda: [32, 64, 128])  # channels per stage
    patch_size: int = 1  # stem stride; every later stage halves the grid, so 7 px inputs need 1 with 3 stages
    ls_init_value: float | None = 1e-6  # layer-scale init (timm's ConvNeXt default); None: no layer scale
    drop_path_rate: float = 0.1  # stochastic depth, growing stage by stage


@dataclasses.dataclass
class ConvNeXtConfig(ConvNeXtShape):
    kernel_size: int = 7  # depthwise conv taps


@dataclasses.dataclass
class S4NDConvNeXtConfig(S4NDFields, ConvNeXtShape):
    # between stages: "conv" = timm's LayerNorm + strided 2x2 conv (a discrete kernel, fixed in pixels);
    # "s4nd" = LayerNorm -> S4ND layer (output linear + GLU, no activation) -> 2x2 average pool -> 1x1 conv,
    # as the official S4ND-ConvNeXt's downsample_type=s4nd, so no layer's reach is fixed in pixels
    downsample: str = "conv"


@dataclasses.dataclass
class S4NDConvNeXtOfficialConfig(S4NDFields, ConvNeXtShape):
    pass  # the official arrangement has one downsampling (S4ND), so no `downsample` field


DOWNSAMPLES = ("conv", "s4nd")


def _init_weights(module: nn.Module) -> None:
    """timm's ConvNeXt init: truncated normal (std 0.02) conv and linear weights, zero biases."""
    from timm.layers import trunc_normal_

    if isinstance(module, (nn.Conv2d, nn.Linear)):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ConvNeXtBase(ResModel):
    """patch stem -> ConvNeXt stages (the first at stem resolution, each later one halves it) -> pooled head."""

    config_class = ConvNeXtShape

    def __init__(self, config: ConvNeXtShape, kernel_size: int):
        from timm.layers import LayerNorm, LayerNorm2d, NormMlpClassifierHead  # timm loads only for these models
        from timm.models.convnext import ConvNeXtStage

        depths = [check_positive_int("depths entry", d) for d in config.depths]
        dims = [check_positive_int("dims entry", d) for d in config.dims]
        if not depths or len(depths) != len(dims):
            raise ResbenchError(f"depths={list(config.depths)}, dims={list(config.dims)}: expected lists of the "
                                f"same non-zero length (one entry per stage)")
        patch = check_positive_int("patch_size", config.patch_size)
        self.min_size = patch * 2 ** (len(depths) - 1)  # every stage keeps at least one pixel
        super().__init__(config)
        self.convnext = nn.Module()  # timm's names below it: stem, stages.i.blocks.j.conv_dw, head
        self.convnext.stem = nn.Sequential(nn.Conv2d(config.in_chans, dims[0], patch, stride=patch),
                                           LayerNorm2d(dims[0]))
        n_blocks = sum(depths)
        drop_path = [config.drop_path_rate * i / max(1, n_blocks - 1) for i in range(n_blocks)]
        stages, prev = [], dims[0]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            stages.append(ConvNeXtStage(prev, dim, kernel_size=kernel_size, stride=1 if i == 0 else 2,
                                        depth=depth, drop_path_rates=drop_path[sum(depths[:i]):sum(depths[:i + 1])],
                                        ls_init_value=config.ls_init_value, norm_layer=LayerNorm2d,
                                        norm_layer_cl=LayerNorm))
            prev = dim
        self.convnext.stages = nn.Sequential(*stages)
        self.convnext.head = NormMlpClassifierHead(dims[-1], config.num_classes, pool_type="avg",
                                                   norm_layer=LayerNorm2d)
        self.convnext.apply(_init_weights)

    def stage_sizes(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """Feature-map (h, w) of each stage for an input of `size`: stem floor(L/p), then floor(L/2) per stage."""
        h, w = size[0] // self.config.patch_size, size[1] // self.config.patch_size
        out = []
        for i in range(len(self.config.depths)):
            if i:
                h, w = h // 2, w // 2
            out.append((h, w))
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convnext.stem(x)  # (B, dims[0], H/p, W/p)
        x = self.convnext.stages(x)  # (B, dims[-1], h, w)
        return self.convnext.head(x)  # (B, num_classes)


@register_model("convnext")
class ConvNeXt(ConvNeXtBase):
    """Small ConvNeXt: fully convolutional, so a new size just means a bigger feature map."""

    config_class = ConvNeXtConfig
    LISTED_PARAMETERS = 413_066
    POLICIES = policies("fully convolutional: the same discrete depthwise kernels on the bigger grid, global mean pool")

    def __init__(self, config: ConvNeXtConfig):
        k = config.kernel_size
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ResbenchError(f"convnext kernel_size={k!r}: expected an odd positive integer")
        super().__init__(config, kernel_size=k)


@register_model("s4nd_convnext")
class S4NDConvNeXt(ConvNeXtBase):
    """S4ND-ConvNeXt: every depthwise conv `stages[i].blocks[j].conv_dw` is an S4ND layer.

    Each layer's reference grid l_max is its stage's feature size at train_res; as in the official
    S4ND-ConvNeXt it has no activation and no GLU (the block's MLP follows it).
    """

    config_class = S4NDConvNeXtConfig
    LISTED_PARAMETERS = 493_578
    POLICIES = policies("rescale each S4ND step per axis: rate = train/test input size, the same at every stage")
    has_bandlimit = True
    adaptive_kernels = True

    def __init__(self, config: S4NDConvNeXtConfig):
        if config.downsample not in DOWNSAMPLES:
            raise ResbenchError(f"s4nd_convnext downsample={config.downsample!r}: expected one of "
                                f"{', '.join(DOWNSAMPLES)}")
        from timm.layers import LayerNorm2d

        super().__init__(config, kernel_size=3)  # the smallest conv: it is replaced right away
        sizes = self.stage_sizes(self.train_size)
        for i, (stage, dim, l_max) in enumerate(zip(self.convnext.stages, config.dims, sizes)):
            for block in stage.blocks:
                block.conv_dw = RateS4ND(s4nd_layer(config, dim, l_max, activation="id", final_act="id"))
            if i and config.downsample == "s4nd":
                prev = config.dims[i - 1]  # the previous stage's channels, on its grid sizes[i - 1]
                stage.downsample = nn.Sequential(
                    LayerNorm2d(prev), RateS4ND(s4nd_layer(config, prev, sizes[i - 1], activation="id")),
                    nn.AvgPool2d(2), nn.Conv2d(prev, dim, 1))
                _init_weights(stage.downsample[-1])


class GLUChannels(nn.Module):
    """GLU over the channel axis of a (B, 2C, H, W) map -> (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.glu(x, dim=1)


@register_model("s4nd_convnext_official")
class S4NDConvNeXtOfficial(ConvNeXtBase):
    """The official S4ND-ConvNeXt arrangement (state-spaces/s4 convnext_timm.py, downsample_type=s4nd).

    - every depthwise conv is an S4ND layer with the official `linear: true`: K * u + D u and nothing
      after it (no activation, no output linear; the block's norm and MLP follow, as in ConvNeXt);
    - between stages: LayerNorm -> S4ND (linear) -> 2x2 average pool -> 1x1 conv to 2C -> GLU
      (S4DownSample with downsample_glu=True, downsample_act=False), so no kernel is fixed in pixels;
    - stem: the patch stem (a patch_size x patch_size conv and LayerNorm; with patch_size 1 it mixes
      channels only). The official ImageNet config's `new_s4nd_patch` stem needs an S4ND layer that mixes
      channels (`out_channels`), which resbench does not have.
    Every layer runs at the global rate train / test, as the official model passes one rate to all stages.
    """

    config_class = S4NDConvNeXtOfficialConfig
    LISTED_PARAMETERS = 442_666
    POLICIES = policies("rescale each S4ND step per axis: rate = train/test input size, the same at every stage "
                        "(official arrangement: S4ND downsampling, no output linear)")
    has_bandlimit = True
    adaptive_kernels = True

    def __init__(self, config: S4NDConvNeXtOfficialConfig):
        from timm.layers import LayerNorm2d

        super().__init__(config, kernel_size=3)  # the smallest conv: it is replaced right away
        sizes = self.stage_sizes(self.train_size)
        for i, (stage, dim, l_max) in enumerate(zip(self.convnext.stages, config.dims, sizes)):
            for block in stage.blocks:
                block.conv_dw = RateS4ND(s4nd_layer(config, dim, l_max, linear=True))
            if i:
                prev = config.dims[i - 1]  # the previous stage's channels, on its grid sizes[i - 1]
                stage.downsample = nn.Sequential(
                    LayerNorm2d(prev), RateS4ND(s4nd_layer(config, prev, sizes[i - 1], linear=True)),
                    nn.AvgPool2d(2), nn.Conv2d(prev, 2 * dim, 1), GLUChannels())
                _init_weights(stage.downsample[3])
