"""The base every resbench model derives from: config, resolution-change policies, bandlimit switch."""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
from typing import Iterator, Sequence

import torch
import torch.nn as nn

from resbench.errors import ResbenchError
from resbench.resolution import check_alpha, kernel_rates
from resbench.layers.resolution_aware import set_input_rate
from resbench.layers.ckconv import ContinuousDepthwiseConv
from resbench.layers.s4nd import S4ND

__all__ = ["ModelConfig", "ResModel", "policies", "resize_input", "train_hw", "set_bandlimit", "bandlimit_of",
           "bandlimit", "count_params", "s4nd_layers", "check_positive_int"]

RESIZE_INPUT = "resize-input"
# The reference policy every model offers, whatever its own ("native") way to handle a new size is.
_COMMON_POLICIES = {
    RESIZE_INPUT: "resize the test image back to the training size (bilinear, antialias) before the model sees it",
}


def policies(native: str) -> dict[str, str]:
    """A model's POLICIES: its own `native` description plus the common reference policies."""
    return {"native": native, **_COMMON_POLICIES}


def check_positive_int(what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ResbenchError(f"{what}={value!r}: expected a positive integer")
    return int(value)


def train_hw(train_res) -> tuple[int, ...]:
    """`train_res` as a size tuple: an int means a square image (h, w); a list gives every axis, [L] for a
    signal, [h, w] for an image, [t, h, w] for a clip."""
    if isinstance(train_res, (list, tuple)):
        if not 1 <= len(train_res) <= 3:
            raise ResbenchError(f"train_res={list(train_res)}: expected an int, [L], [h, w] or [t, h, w]")
        return tuple(check_positive_int(f"train_res side {i + 1}", v) for i, v in enumerate(train_res))
    size = check_positive_int("train_res", train_res)
    return size, size


@dataclasses.dataclass
class ModelConfig:
    """Fields every model shares; each model's config extends it."""
    in_chans: int = 1  # 1 for grayscale (Fashion-MNIST), 3 for RGB
    num_classes: int = 10
    train_res: int | list[int] = 14  # reference training size, int (square image), [L], [h, w] or [t, h, w]:
    # defines the model's reference grid and its number of axes

    def __post_init__(self):
        check_positive_int("in_chans", self.in_chans)
        check_positive_int("num_classes", self.num_classes)
        train_hw(self.train_res)


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def resize_input(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(B, C, *sides) -> (B, C, *size), antialiased (resolution.resize_images); the input itself when already
    that size."""
    from resbench.resolution import resize_images

    if tuple(x.shape[2:]) == tuple(size):
        return x
    return resize_images(x, tuple(size))


class ResModel(nn.Module):
    """A classifier (B, C, *sides) -> (B, num_classes) that accepts any sides >= `min_size`: an image (H, W),
    or where the family allows it (`DIMS`) a signal (L) or a clip (T, H, W); train_res says which.

    Subclasses set `config_class`, `POLICIES` (policy name -> one-line description, with "native" and
    "resize-input"), `has_bandlimit`, `min_size`, `DIMS` (and `LISTED_PARAMETERS` when timm builds them), and
    implement `_forward`; `register_model` sets `name`.
    """

    name: str = ""
    config_class: type[ModelConfig] = ModelConfig
    POLICIES: dict[str, str] = {}
    has_bandlimit: bool = False
    adaptive_kernels: bool = False  # continuous kernels that can follow the test grid (bandlimit "adaptive")
    min_size: int = 1  # smallest input side the architecture can take
    DIMS: tuple[int, ...] = (2,)  # the numbers of axes the family is built for (1: signals, 2: images, 3: clips)
    # Set by families built with timm: their parameters at `resbench models`' example size, recorded so that
    # listing the registry never imports timm (tests/test_startup.py builds each one and compares).
    LISTED_PARAMETERS: int | None = None

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.train_size = train_hw(config.train_res)  # (h, w) reference grid, (L,) or (t, h, w)
        self.dims = len(self.train_size)
        if self.dims not in self.DIMS:
            raise ResbenchError(f"{self.name} train_res={config.train_res}: this family takes "
                                f"{' or '.join(f'{d}-d' for d in self.DIMS)} inputs, not {self.dims}-d")
        if min(self.train_size) < self.min_size:
            raise ResbenchError(f"{self.name} train_res={config.train_res}: expected at least {self.min_size} "
                                f"pixels a side for this architecture")

    def config_dict(self) -> dict:
        """The config as plain JSON-able values: `create_model(self.name, **d)` rebuilds the model."""
        return {f.name: _jsonable(getattr(self.config, f.name)) for f in dataclasses.fields(self.config)}

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 + self.dims or x.shape[1] != self.config.in_chans or min(x.shape[2:]) < self.min_size:
            sides = {1: "L", 2: "H, W", 3: "T, H, W"}[self.dims]
            raise ResbenchError(f"{self.name} input of shape {tuple(x.shape)}: expected (B, {self.config.in_chans}, "
                                f"{sides}) with {sides} >= {self.min_size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The "native" policy: (B, C, *sides) -> (B, num_classes) logits at the input's own size.

        Every resolution-aware layer gets the model's one rate first (resolution.kernel_rates).
        """
        self.check_input(x)
        set_input_rate(self, kernel_rates(self.train_size, x.shape[2:]))
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_policy(self, x: torch.Tensor, policy: str) -> torch.Tensor:
        """Apply the named resolution-change policy to x, then the model."""
        if policy not in self.POLICIES:
            raise ResbenchError(f"policy {policy!r} for model {self.name}: expected one of "
                                f"{', '.join(self.POLICIES)}")
        if policy == RESIZE_INPUT:
            x = resize_input(x, self.train_size)
        return self(x)


def s4nd_layers(model: nn.Module) -> list[S4ND]:
    return [m for m in model.modules() if isinstance(m, S4ND)]


def set_bandlimit(model: nn.Module, alpha: float | None, adaptive: bool = False, capped: bool = False) -> None:
    """Set every S4ND layer's bandlimit (None: off), fixed, capped at the test grid's Nyquist below the
    training size (`capped`: min(alpha, test/train) per axis, the cap alone when alpha is None) or scaled
    (`adaptive`, the older rule: alpha x min(1, test/train) per axis). Only attributes change, never a weight.

    The model's config keeps the value it was built (and trained) with.
    """
    alpha = check_alpha(alpha)
    layers = s4nd_layers(model)
    if alpha is not None and not layers:
        raise ResbenchError(f"bandlimit={alpha}: model {getattr(model, 'name', type(model).__name__)} has no "
                            f"S4ND layers; expected None")
    for layer in layers:
        layer.bandlimit, layer.bandlimit_adaptive, layer.bandlimit_capped = alpha, adaptive, capped


def bandlimit_of(model: nn.Module) -> float | None:
    """The S4ND layers' common bandlimit alpha; None when off or when the model has no S4ND layer."""
    values = {layer.bandlimit for layer in s4nd_layers(model)}
    if len(values) > 1:
        raise ResbenchError(f"model S4ND layers have different bandlimits {sorted(values, key=str)}: "
                            f"expected one value (use set_bandlimit)")
    return values.pop() if values else None


@contextlib.contextmanager
def bandlimit(model: nn.Module, alpha: float | None, adaptive: bool = False,
              capped: bool = False) -> Iterator[nn.Module]:
    """Within the block every S4ND layer uses `alpha`; with `capped` S4ND's alpha is capped at the test grid's
    Nyquist below the training size (min(alpha, test/train) per axis); with `adaptive` every continuous kernel
    follows the test grid by the older rule (S4ND: alpha x min(1, test/train) per axis; CKConv: each tap the
    mean over its test cell below the training size). Each layer's own setting is restored after."""
    layers, convs = s4nd_layers(model), [m for m in model.modules() if isinstance(m, ContinuousDepthwiseConv)]
    saved = [(layer.bandlimit, layer.bandlimit_adaptive, layer.bandlimit_capped) for layer in layers]
    saved_convs = [conv.adaptive for conv in convs]
    if layers or alpha is not None:
        set_bandlimit(model, alpha, adaptive, capped)
    for conv in convs:
        conv.adaptive = adaptive
    try:
        yield model
    finally:
        for layer, (value, was_adaptive, was_capped) in zip(layers, saved):
            layer.bandlimit, layer.bandlimit_adaptive, layer.bandlimit_capped = value, was_adaptive, was_capped
        for conv, was_adaptive in zip(convs, saved_convs):
            conv.adaptive = was_adaptive


def count_params(model: nn.Module) -> int:
    """Number of parameter values (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
