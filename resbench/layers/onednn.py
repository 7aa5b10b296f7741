"""Float32 output linears through oneDNN on the CPU, where PyTorch's own float32 products go to MKL.

PyTorch's CPU build multiplies float32 matrices with MKL and bf16 ones with oneDNN. On an AMD CPU, MKL takes a
slower code path: on the 2-core AMD EPYC VM (AVX-512) a 2048^3 float32 product ran at 208 GFLOP/s in MKL and at
462 GFLOP/s in oneDNN, and the output linear of an S4ND layer over one group of images (7,840 pixels, 128 -> 256
channels) in 2.6 ms against 1.1 ms. `linear` reaches oneDNN's inner-product primitive through the operator that
torch.compile's CPU backend uses (`torch.ops.mkldnn._linear_pointwise`). It is float32 arithmetic in another sum
order: the shipped models' logits moved by at most 6e-6 (magnitudes 5-14) against MKL's.

`linears(model)` does the same for a model's own nn.Linear layers while a sweep cell evaluates it (ConvNeXt's and
ViT's MLPs, S4ND-ConvNeXt's): evaluation without autograd or autocast, float32 input on the CPU with contiguous
rows. Off the CPU, in other dtypes, with RESBENCH_ONEDNN=0, on a PyTorch build without that operator, or for the
rest of the process once it has failed, both are `F.linear`.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["enabled", "usable", "linear", "status", "linears", "RowsLinear"]

_state = {"failed": None}  # the first error from the operator, after which every call takes F.linear


def _operator():
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


def _switched_on() -> bool:
    return os.environ.get("RESBENCH_ONEDNN", "1") != "0"


def enabled(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether products in `dtype` on `device` run through oneDNN in this process: float32 on the CPU outside
    autocast, the operator present, not switched off, not failed."""
    return (device.type == "cpu" and dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and _state["failed"] is None and _switched_on() and _operator() is not None)


def usable(x: torch.Tensor) -> bool:
    """Whether `linear` of x runs through oneDNN in this process (`enabled` for x's device and dtype)."""
    return enabled(x.device, x.dtype)


def status() -> str:
    """What a run record says of these products: on, off (RESBENCH_ONEDNN=0 or no operator) or the error."""
    if _state["failed"] is not None:
        return f"failed, MKL: {_state['failed']}"
    if not _switched_on():
        return "off (RESBENCH_ONEDNN=0)"
    return "on for float32 on the CPU" if _operator() is not None else "off (this PyTorch build has no oneDNN linear)"


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight.T + bias for x (m, in) with contiguous rows, weight (out, in): (m, out)."""
    if usable(x) and x.is_contiguous() and weight.dtype == torch.float32:
        try:
            return _operator()(x, weight, bias, "none", [], "")
        except RuntimeError as e:  # an internal operator: keep the run going on MKL, and say so in the record
            if "allocate" in str(e):  # out of memory is not the operator's fault
                raise
            _state["failed"] = str(e).splitlines()[0][:200]
    return F.linear(x, weight, bias)


class RowsLinear(nn.Linear):
    """nn.Linear whose evaluation (no autograd) on float32 CPU input with contiguous rows runs through `linear`;
    the same weights and state dict. `linears` gives a model's nn.Linear layers this class for a while."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or not x.is_contiguous() or x.numel() == 0 or not usable(x):
            return super().forward(x)
        out = linear(x.view(-1, self.in_features), self.weight, self.bias)  # (rows, out)
        return out.view(*x.shape[:-1], self.out_features)


@contextlib.contextmanager
def linears(model):
    """Within the block the model's nn.Linear layers (that class exactly: a subclass keeps its own forward) are
    RowsLinear; their class comes back on exit. A model that is not an nn.Module runs as it is."""
    layers = [m for m in model.modules() if type(m) is nn.Linear] if isinstance(model, nn.Module) else []
    for m in layers:
        m.__class__ = RowsLinear
    try:
        yield
    finally:
        for m in layers:
            m.__class__ = nn.Linear
