"""The official S4ND isotropic classifier (state-spaces/s4): linear encoder, residual S4ND blocks, pooling decoder.

Module names mirror the official LightningModule (`encoder.0`, `model.layers.{i}.layer`,
`model.layers.{i}.norm.norm`, `model.norm.norm`, `decoder.0.output_transform`), so an official state
dict loads by name, unchanged. The official resolution semantics are kept: every S4ND layer takes the
rate relative to the grid its `l_max` describes, and the checkpoint records the rate it was trained at
(`train_rate`, the official `loader.train_resolution`) at its training size (`train_res`). At a test
size s the rate is train_rate * train_res / s per axis, which is what the official evaluation passes
for an image resized to s.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn as nn

from resbench.errors import ResbenchError
from resbench.layers.s4nd import S4ND
from resbench.models.base import ModelConfig, ResModel, check_positive_int, policies
from resbench.models.registry import register_model

__all__ = ["OfficialS4NDConfig", "OfficialS4NDIso", "NORMS"]

NORMS = ("layer", "batch", "none")


@dataclasses.dataclass
class OfficialS4NDConfig(ModelConfig):
    d_model: int = 64  # official model.d_model
    n_layers: int = 2  # official model.n_layers
    dim: int = 2  # spatial axes of the input: 1 (signals), 2 (images) or 3 (video)
    prenorm: bool = True  # official model.prenorm: norm before each layer (and a final norm) or after the residual
    norm: str = "layer"  # official model.norm: layer, batch or none
    transposed: bool = False  # official model.transposed: where the norm's channel axis is (changes LayerNorm's kind)
    layer: dict = dataclasses.field(default_factory=dict)  # official model.layer options (read by S4ND.from_official)
    bandlimit: float | None = None  # the layers' trained bandlimit alpha (official model.layer.bandlimit)
    train_rate: float = 1.0  # official loader.train_resolution: the S4ND rate the model was trained with

    def __post_init__(self):
        # train_res is an int, or one size per axis (a 1-d or 3-d model has 1 or 3)
        check_positive_int("in_chans", self.in_chans)
        check_positive_int("num_classes", self.num_classes)
        check_positive_int("d_model", self.d_model)
        check_positive_int("n_layers", self.n_layers)
        if self.dim not in (1, 2, 3):
            raise ResbenchError(f"official S4ND dim={self.dim!r}: expected 1, 2 or 3")
        sizes = self.train_res if isinstance(self.train_res, (list, tuple)) else [self.train_res] * self.dim
        if len(sizes) != self.dim:
            raise ResbenchError(f"official S4ND train_res={self.train_res!r}: expected {self.dim} sizes")
        for s in sizes:
            check_positive_int("train_res", s)
        if self.norm not in NORMS:
            raise ResbenchError(f"official S4ND norm={self.norm!r}: expected one of {', '.join(NORMS)}")
        if not (isinstance(self.train_rate, (int, float)) and self.train_rate > 0):
            raise ResbenchError(f"official S4ND train_rate={self.train_rate!r}: expected a positive number")


class ScalarChannelNorm(nn.Module):
    """The official transposed LayerNorm: standardise over channels, then one learned scale and shift.

    y = s / std(x) * (x - mean(x) + m), std without Bessel's correction and without an epsilon.
    """

    def __init__(self):
        super().__init__()
        self.m = nn.Parameter(torch.zeros(1))
        self.s = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *L, D), the channel last
        std, mean = torch.std_mean(x, dim=-1, unbiased=False, keepdim=True)
        return self.s / std * (x - mean + self.m)


class ChannelNorm(nn.Module):
    """The official `Normalization` wrapper: `.norm` holds the module (state-dict name `norm.norm.*`)."""

    def __init__(self, d: int, kind: str, transposed: bool):
        super().__init__()
        self.kind = kind
        if kind == "layer":
            self.norm = ScalarChannelNorm() if transposed else nn.LayerNorm(d)
        elif kind == "batch":
            self.norm = nn.BatchNorm1d(d)
        else:
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *L, D) -> (B, *L, D)
        if self.kind != "batch":
            return self.norm(x)
        flat = x.reshape(x.shape[0], -1, x.shape[-1]).transpose(1, 2)  # (B, D, N): BatchNorm1d's layout
        return self.norm(flat).transpose(1, 2).reshape(x.shape)


class Block(nn.Module):
    """x + layer(norm(x)) (pre-norm) or norm(x + layer(x)) (post-norm); dropout is inactive in eval."""

    def __init__(self, layer: S4ND, norm: ChannelNorm, prenorm: bool):
        super().__init__()
        self.layer, self.norm, self.prenorm = layer, norm, prenorm

    def forward(self, x: torch.Tensor, rate: Sequence[float]) -> torch.Tensor:  # (B, *L, D)
        y = self.layer(self.norm(x) if self.prenorm else x, rate=rate)
        return x + y if self.prenorm else self.norm(x + y)


class Backbone(nn.Module):
    """The official SequenceModel: blocks, then the final norm (pre-norm models only)."""

    def __init__(self, blocks: list[Block], norm: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(blocks)
        self.norm = norm

    def forward(self, x: torch.Tensor, rate: Sequence[float]) -> torch.Tensor:
        for block in self.layers:
            x = block(x, rate)
        return self.norm(x)


class PoolDecoder(nn.Module):
    """The official `nd` decoder in `pool` mode: mean over every spatial axis, then a linear map."""

    def __init__(self, d_model: int, num_classes: int):
        super().__init__()
        self.output_transform = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *L, D) -> (B, classes)
        return self.output_transform(x.mean(dim=tuple(range(1, x.dim() - 1))))


@register_model("s4nd_official")
class OfficialS4NDIso(ResModel):
    """An S4ND classifier trained with the official code: isotropic S4ND blocks at full resolution."""

    config_class = OfficialS4NDConfig
    POLICIES = policies("the official rate: train_rate x train/test size per axis, kernels resampled on the "
                        "test grid (what the official evaluation passes for an image resized to that size)")
    has_bandlimit = True
    adaptive_kernels = True

    def __init__(self, config: OfficialS4NDConfig):
        nn.Module.__init__(self)  # ResModel's own __init__ assumes a 2-d train_res
        self.config = config
        sizes = config.train_res if isinstance(config.train_res, (list, tuple)) else [config.train_res] * config.dim
        self.train_size = tuple(int(s) for s in sizes)
        d = config.d_model
        # l_max defaults to the training grid; the trained bandlimit lives in the config's own field
        layer_config = {"l_max": list(self.train_size), **config.layer, "d_model": d, "transposed": False,
                        "bandlimit": config.bandlimit}
        blocks = [Block(S4ND.from_official(layer_config), ChannelNorm(d, config.norm, config.transposed),
                        config.prenorm) for _ in range(config.n_layers)]
        for block in blocks:
            block.layer.train_rate = float(config.train_rate)  # the adaptive bandlimit's reference
            if block.layer.dim != config.dim:
                raise ResbenchError(f"official S4ND layer has {block.layer.dim} axes (l_max), "
                                    f"the model {config.dim}")
        final = ChannelNorm(d, config.norm, config.transposed) if config.prenorm else nn.Identity()
        self.encoder = nn.Sequential(nn.Linear(config.in_chans, d))
        self.model = Backbone(blocks, final)
        self.decoder = nn.Sequential(PoolDecoder(d, config.num_classes))

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 + self.config.dim or x.shape[1] != self.config.in_chans:
            axes = ", ".join("L" * self.config.dim)
            raise ResbenchError(f"{self.name} input of shape {tuple(x.shape)}: expected (B, {self.config.in_chans}, "
                                f"{axes})")

    def rates(self, size: Sequence[int]) -> tuple[float, ...]:
        """The official S4ND rate for an input of `size`, per axis."""
        return tuple(self.config.train_rate * t / s for t, s in zip(self.train_size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *L) -> (B, classes)
        rate = self.rates(x.shape[2:])
        h = self.encoder(x.movedim(1, -1))  # (B, *L, D): the official models run channel-last
        return self.decoder(self.model(h, rate))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *L) -> (B, *L, D): the backbone's output as it enters the decoder."""
        self.check_input(x)
        return self.model(self.encoder(x.movedim(1, -1)), self.rates(x.shape[2:]))


def official_rate_to_size(train_size: Sequence[int], train_rate: float, rate: float) -> tuple[int, ...]:
    """The input size at which the official code runs a loader of `rate`: train_size * train_rate / rate."""
    return tuple(int(round(t * train_rate / rate)) for t in train_size)

