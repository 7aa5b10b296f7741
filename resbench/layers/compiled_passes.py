"""Passes of evaluation compiled by torch.compile (inductor's C++ backend), in bf16/fp16 on the CPU: the norm over
channels before each S4ND layer and the layout change after it, in one loop (`norm_to_channel_major`); S4ND's GLU
and residual sum into a float32 stream (`glu_residual_`, or `glu_add_` over the stream itself); the whole prenorm
block of the Conv-ISO baselines (`conv_glu_block`); the iso models' head norm and mean (`norm_mean`).

Eager PyTorch runs the layer norm over 64 channels at about ten memory passes' cost and then transposes its
output into the channel-major layout of the Toeplitz products (`channel_major`). Compiled as one kernel the two
take 2-3x less time (2-core AMD EPYC VM, one thread, 2 to 20 images at 14-56 px), and a bf16 `s4nd_iso` forward
1.20x less at 28 px, 1.23x at 56 (1.09x at 14, 0.97x at 7). In float32 the model gained nothing (0.93-1.03x),
so float32 keeps the eager passes. The pass compiles on first use in a process, a few seconds (inductor keeps
the compiled code in its cache folder for later processes); every dim but the channels is dynamic, so a new
batch, group or grid does not recompile. With RESBENCH_COMPILE=0, off the CPU, or once compiling has failed
(no C++ compiler) the eager passes run: the same math, rounded once in the same dtype.

The Conv-ISO block (norm, k-tap convolution, GELU, 1x1 convolution, GLU, residual sum) compiled keeps the two
convolutions as oneDNN calls and fuses the passes around them; its norm is taken in float32. The iso models keep
their residual stream in float32 under autocast (models/iso.py): S4ND's half-precision output is gated and added
to it in one float32 pass, and the Conv-ISO block adds its half output to the float32 stream. The head's norm and
mean over every pixel run in float32 in one loop, and the features reach the classifier in float32.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["enabled", "status", "norm_to_channel_major", "conv_glu_block", "norm_mean", "glu_residual_", "glu_add_",
           "RECOMPILE_LIMIT"]

RECOMPILE_LIMIT = 64  # versions of one pass a process may compile (see _compile)
_state = {"failed": None}  # the first compile error, after which every pass runs eager
_HALF = (torch.bfloat16, torch.float16)


def enabled(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether a group on `device` computed in `dtype` takes the compiled pass in this process."""
    return device.type == "cpu" and dtype in _HALF and _state["failed"] is None and _switched_on()


def status() -> str:
    """What a run record says of the compiled pass: on, off (RESBENCH_COMPILE=0) or the compile error."""
    if _state["failed"] is not None:
        return f"failed, eager passes: {_state['failed']}"
    return "on for bf16/fp16 on the CPU" if _switched_on() else "off"


def _switched_on() -> bool:
    """Not turned off by RESBENCH_COMPILE=0, on a Python torch.compile supports."""
    return os.environ.get("RESBENCH_COMPILE", "1") != "0" and sys.version_info < (3, 14)


@contextlib.contextmanager
def _quiet_cpp_extension():
    """Within the block torch's C++ extension logger keeps its warnings (on a machine without CUDA the first
    compile warns "No CUDA runtime is found", a line in every bf16 sweep's output that concerns nothing here)."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _compiled(channel_dim: int, activations: int = 1) -> Callable[[Callable], Callable]:
    """fn through torch.compile, built on first call; eager once any compile has failed. Every dim of the first
    `activations` arguments (the activations) but `channel_dim` is marked dynamic, so one compiled kernel serves
    every batch, group and grid; the channel count stays fixed, which lets inductor unroll the reduction over it
    (with every dim dynamic the compiled layer norm over 64 channels ran 4x slower than eager)."""
    return functools.partial(_compile, channel_dim=channel_dim, activations=activations)


def _compile(fn: Callable, channel_dim: int, activations: int = 1) -> Callable:
    holder: dict = {}

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _state["failed"] is not None:
            return fn(*args, **kwargs)
        for x in args[:activations]:  # the activations: weights keep their shapes
            for d in range(x.dim()):
                if d != channel_dim % x.dim():
                    torch._dynamo.maybe_mark_dynamic(x, d)
        try:
            if "fn" not in holder:  # torch.compile only wraps fn here; the compiling happens in the first call
                # each pass compiles once per rank, channel count and dtypes: more than dynamo's default limit of
                # 8 versions in a sweep of many models, which fullgraph would turn into a failure (eager for good)
                torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
                holder["fn"] = torch.compile(fn, fullgraph=True)
                with _quiet_cpp_extension():
                    return holder["fn"](*args, **kwargs)
            return holder["fn"](*args, **kwargs)
        except (TimeoutError, MemoryError):  # a sweep's time limit or memory: not the compiler's failure
            raise
        except Exception as e:  # no C++ compiler, an inductor bug: the eager pass computes the same
            _state["failed"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            return fn(*args, **kwargs)

    call.eager = fn
    return call


@_compiled(channel_dim=-1)
def norm_to_channel_major(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                          perm: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """LayerNorm over the channels of x (b, *L, H) in x's dtype, then laid out (b, H, *L) -> `perm` in `dtype`,
    contiguous."""
    y = F.layer_norm(x, (x.shape[-1],), weight, bias, eps).movedim(-1, 1)  # (b, H, *L)
    return y.permute(perm).to(dtype).contiguous()  # (H, L1, ..., b, LN)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@_compiled(channel_dim=1)
def conv_glu_block(x: torch.Tensor, norm_weight: torch.Tensor, norm_bias: torch.Tensor, eps: float,
                   weight: torch.Tensor, bias: torch.Tensor, padding: tuple[int, ...], groups: int,
                   out_weight: torch.Tensor, out_bias: torch.Tensor, overwrite: bool = False) -> torch.Tensor:
    """x + GLU(conv1x1(GELU(conv(norm(x))))) for x (b, D, *L) in float32 or the convolutions' half dtype, the norm
    over channels in float32 (its weights float32), the rest in the weights' dtype, the sum in x's: (b, D, *L) in
    x's dtype and memory format; with `overwrite` the sum is written into x (and x returned)."""
    conv = _CONV[x.dim() - 2]
    y = F.layer_norm(x.movedim(1, -1).float(), (x.shape[1],), norm_weight, norm_bias, eps)
    y = y.to(weight.dtype).movedim(-1, 1)  # (b, D, *L)
    y = F.gelu(conv(y, weight, bias, padding=padding, groups=groups))
    y = F.glu(conv(y, out_weight, out_bias), 1)
    return x.add_(y) if overwrite else x + y


@_compiled(channel_dim=-1)
def norm_mean(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the channels of x (b, *L, D), then the mean over every pixel, in float32: (b, D)."""
    y = F.layer_norm(x.float(), (x.shape[-1],), weight, bias, eps)
    return y.mean(dim=tuple(range(1, x.dim() - 1)))


@_compiled(channel_dim=-1, activations=3)
def glu_residual_(out: torch.Tensor, dst: torch.Tensor, res: torch.Tensor) -> None:
    """dst = res + GLU(out) over the last dim, in float32 from a half `out`: out (..., 2H) in the pixel order of
    dst and res (..., H), which may be strided views, not of the same memory (glu_add_ is that case); written
    into dst."""
    dst.copy_(res.float() + F.glu(out.float(), -1))


@_compiled(channel_dim=-1, activations=2)
def glu_add_(out: torch.Tensor, dst: torch.Tensor) -> None:
    """dst += GLU(out) over the last dim, in float32 from a half `out` (see glu_residual_): the sum written over
    the residual itself. (Compiled with two views of one tensor as inputs, inductor fails to build their common
    base under dynamic shapes, so the overwriting case has its own pass.)"""
    dst.add_(F.glu(out.float(), -1))
