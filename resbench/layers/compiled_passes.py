"""Passes of evaluation compiled by torch.compile (inductor's C++ backend), in bf16/fp16 on the CPU: the norm over
channels before each S4ND layer and the layout change after it, in one loop (`norm_to_channel_major`); the whole
prenorm block of the Conv-ISO baselines (`conv_glu_block`); the iso models' head norm and mean (`norm_mean`).

Eager PyTorch runs the layer norm over 64 channels at about ten memory passes' cost and then transposes its
output into the channel-major layout of the Toeplitz products (`channel_major`). Compiled as one kernel the two
take 2-3x less time (2-core AMD EPYC VM, one thread, 2 to 20 images at 14-56 px), and a bf16 `s4nd_iso` forward
1.20x less at 28 px, 1.23x at 56 (1.09x at 14, 0.97x at 7). In float32 the model gained nothing (0.93-1.03x),
so float32 keeps the eager passes. The pass compiles on first use in a process, a few seconds (inductor keeps
the compiled code in its cache folder for later processes); every dim but the channels is dynamic, so a new
batch, group or grid does not recompile. With RESBENCH_COMPILE=0, off the CPU, or once compiling has failed
(no C++ compiler) the eager passes run: the same math, rounded once in the same dtype.

The Conv-ISO block (norm, k-tap convolution, GELU, 1x1 convolution, GLU, residual sum) compiled keeps the two
convolutions as oneDNN calls and fuses the passes around them; its norm is taken in float32 from the bf16 stream
(eager autocast takes it in bf16). The head's norm and mean over every pixel run in float32 in one loop, and the
features reach the classifier in float32 (eager autocast rounds them to bf16 first).
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

__all__ = ["enabled", "status", "norm_to_channel_major", "conv_glu_block", "norm_mean"]

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


def _compiled(channel_dim: int) -> Callable[[Callable], Callable]:
    """fn through torch.compile, built on first call; eager once any compile has failed. Every dim of the first
    argument (the activations) but `channel_dim` is marked dynamic, so one compiled kernel serves every batch,
    group and grid;
    the channel count stays fixed, which lets inductor unroll the reduction over it (with every dim dynamic the
    compiled layer norm over 64 channels ran 4x slower than eager)."""
    return functools.partial(_compile, channel_dim=channel_dim)


def _compile(fn: Callable, channel_dim: int) -> Callable:
    holder: dict = {}

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _state["failed"] is not None:
            return fn(*args, **kwargs)
        x = args[0]  # the activations: weights keep their shapes
        for d in range(x.dim()):
            if d != channel_dim % x.dim():
                torch._dynamo.maybe_mark_dynamic(x, d)
        try:
            if "fn" not in holder:  # torch.compile only wraps fn here; the compiling happens in the first call
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
                   out_weight: torch.Tensor, out_bias: torch.Tensor) -> torch.Tensor:
    """x + GLU(conv1x1(GELU(conv(norm(x))))) for x (b, D, *L) in a half dtype, the norm over channels in float32
    (its weights float32), the convolutions' weights in x's dtype: (b, D, *L) in x's dtype and memory format."""
    conv = _CONV[x.dim() - 2]
    y = F.layer_norm(x.movedim(1, -1).float(), (x.shape[1],), norm_weight, norm_bias, eps)
    y = y.to(x.dtype).movedim(-1, 1)  # (b, D, *L)
    y = F.gelu(conv(y, weight, bias, padding=padding, groups=groups))
    return x + F.glu(conv(y, out_weight, out_bias), 1)


@_compiled(channel_dim=-1)
def norm_mean(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the channels of x (b, *L, D), then the mean over every pixel, in float32: (b, D)."""
    y = F.layer_norm(x.float(), (x.shape[-1],), weight, bias, eps)
    return y.mean(dim=tuple(range(1, x.dim() - 1)))
