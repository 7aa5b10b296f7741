"""The one protocol of layers with continuous kernels: told the model's rate, able to cache kernels per grid."""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn as nn

__all__ = ["ResolutionAware", "resolution_aware_layers", "set_input_rate", "cached_kernels", "kernel_precision"]


class ResolutionAware(nn.Module):
    """A layer whose kernels are resampled on every input grid.

    - `set_input_rate(rate)`: the model calls it before each forward with train / test per axis of
      the model's input (resolution.kernel_rates), the same rate for every layer of the model.
    - `cache_kernels(enabled)`: during evaluation (weights fixed, no autograd) a layer may compute the
      kernels of each grid once; disabling drops them.

    Models, scoring and kernels.py use this protocol instead of importing each other's classes.
    """

    input_rate: tuple[float, ...] | None = None

    def set_input_rate(self, rate: Sequence[float]) -> None:
        self.input_rate = tuple(float(r) for r in rate)

    def cache_kernels(self, enabled: bool) -> None:
        """Layers whose kernels are cheap keep the default: no cache."""


def resolution_aware_layers(module: nn.Module) -> list[ResolutionAware]:
    return [m for m in module.modules() if isinstance(m, ResolutionAware)]


def set_input_rate(module: nn.Module, rate: Sequence[float]) -> None:
    """Tell every resolution-aware layer in `module` the rate of the input it is about to see."""
    for layer in resolution_aware_layers(module):
        layer.set_input_rate(rate)


@contextlib.contextmanager
def cached_kernels(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block each resolution-aware layer computes its kernels once per grid (and rate, bandlimit).

    For evaluation only (grad disabled); weights must not change inside the block. The caches are
    dropped on exit.
    """
    layers = resolution_aware_layers(module)
    for layer in layers:
        layer.cache_kernels(True)
    try:
        yield module
    finally:
        for layer in layers:
            layer.cache_kernels(False)


def kernel_precision(t: torch.Tensor):
    """A block where autocast is off on `t`'s device: continuous kernels are computed, and FFTs run, in the
    weights' own precision (float32). Their exponentials and step rates lose digits in bf16 (0.3% error
    for S4ND, 1.6% for CKConv's MLP), and CUDA's FFTs take no bf16 and fp16 only at power-of-two sizes."""
    return torch.autocast(t.device.type, enabled=False)
