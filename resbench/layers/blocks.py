"""Building blocks the model families share: the prenorm residual block, its dropout, the GLU mixer."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.layers import compiled_passes

__all__ = ["GLU", "NARROW_GLU", "narrow_half_glu", "glu_mixer", "FastDropout", "ChannelNorm", "PreNormBlock",
           "has_forward_hooks", "compiled_dtype", "conv_glu_convs"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


# A bf16/fp16 GLU over a dim with unit stride and fewer values than this runs in float32: the CPU's half-type
# GLU kernel is slow on narrow rows. Measured on the 2-core AMD VM: over 2 x 32 channels last, 12,544 rows,
# 1.14 ms (with a residual add) against 0.27 ms through float32; the channels-last output of a bf16 1x1 Conv3d
# (8 clips of 16x28x28, 2 x 32 channels) 8.3 ms against 2.5 ms. Over 2 x 64 values the bf16 kernel is as fast.
NARROW_GLU = 128


def narrow_half_glu(x: torch.Tensor, dim: int) -> bool:
    """Whether a GLU of x over `dim` is faster through float32 (see NARROW_GLU)."""
    return x.dtype in (torch.bfloat16, torch.float16) and x.stride(dim) == 1 and x.shape[dim] < NARROW_GLU


class GLU(nn.GLU):
    """nn.GLU (same name in state dicts: it has no weights) whose narrow half-precision case runs in float32
    (see NARROW_GLU); the output keeps the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if narrow_half_glu(x, self.dim):
            return F.glu(x.float(), self.dim).to(x.dtype)  # float32 for speed; rounded once, as the half kernel
        return F.glu(x, self.dim)


def glu_mixer(spatial: nn.Module, d_model: int, dims: int = 2) -> nn.Sequential:
    """spatial conv -> GELU -> per-pixel linear d -> 2d -> GLU: the output part of an S4ND layer."""
    return nn.Sequential(spatial, nn.GELU(), _CONV[dims](d_model, 2 * d_model, 1), GLU(dim=1))


def has_forward_hooks(*modules: nn.Module) -> bool:
    """Whether a forward (pre-)hook would see calls of these modules: a fused path that skips their forward
    (S4ND.prenorm_residual) is taken only without them, so hooks see what they always saw."""
    from torch.nn.modules import module as torch_module

    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of (B, C, *sides) with any number of sides (as timm's LayerNorm2d for 2,
    eps included, so checkpoints made with it load and compute the same)."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps).movedim(-1, 1)


class FastDropout(nn.Dropout):
    """nn.Dropout with its mask drawn by torch.rand: on this CPU 13 ms instead of 23 ms for a
    (64, 64, 28, 28) batch (bernoulli_ alone is 18.5 ms), about 9% of an s4nd_iso training step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0
        scaled_keep = torch.rand_like(x).ge_(self.p).mul_(1 / (1 - self.p))  # 1/(1-p) with probability 1-p, else 0
        return x * scaled_keep


class PreNormBlock(nn.Module):
    """x + dropout(mixer(LayerNorm over channels(x))), x (B, D, *sides)."""

    def __init__(self, d_model: int, mixer: nn.Module, dropout: float):
        super().__init__()
        self.norm = ChannelNorm(d_model)
        self.mixer = mixer
        self.dropout = FastDropout(dropout)

    def forward(self, x: torch.Tensor, overwrite: bool = False) -> torch.Tensor:  # (B, D, *sides)
        """`overwrite`: x is the caller's own residual stream, which the block may overwrite with the sum where no
        autograd records it (see S4ND.prenorm_residual)."""
        no_dropout = not (self.training and self.dropout.p > 0)
        if no_dropout and hasattr(self.mixer, "prenorm_residual") and not has_forward_hooks(self.mixer):
            # the mixer's own call is skipped; S4ND checks the norm
            return self.mixer.prenorm_residual(x, self.norm, overwrite=overwrite)  # fuses the norm and sum if it can
        dtype = compiled_dtype(x)
        if no_dropout and dtype is not None and x.dtype in (dtype, torch.float32):
            convs = conv_glu_convs(self.mixer)
            if convs is not None and not has_forward_hooks(self, self.norm, *self.mixer):
                conv, out = convs  # the block in one compiled call, its hooks-free modules skipped
                with torch.autocast(x.device.type, enabled=False):
                    return compiled_passes.conv_glu_block(
                        x, self.norm.weight, self.norm.bias, self.norm.eps, conv.weight.to(dtype), conv.bias.to(dtype),
                        conv.padding, conv.groups, out.weight.to(dtype), out.bias.to(dtype), overwrite)
        y = self.dropout(self.mixer(self.norm(x)))
        if overwrite and not torch.is_grad_enabled() and torch.result_type(x, y) == x.dtype:
            return x.add_(y)
        return x + y


def compiled_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The half dtype autocast computes in where a compiled pass takes x's evaluation (compiled_passes): no
    autograd, autocast on at x's device in a dtype the passes take, the passes on; else None."""
    device = x.device.type
    if torch.is_grad_enabled() or not torch.is_autocast_enabled(device):
        return None
    dtype = torch.get_autocast_dtype(device)
    return dtype if compiled_passes.enabled(x.device, dtype) else None


def conv_glu_convs(mixer: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(conv, 1x1 conv) of a glu_mixer over a plain convolution (stride and dilation 1, zero padding given as
    sizes, both with bias, GELU exact), else None: the mixer compiled_passes.conv_glu_block computes."""
    if not (isinstance(mixer, nn.Sequential) and len(mixer) == 4):
        return None
    conv, act, out, glu = mixer
    plain = (nn.Conv1d, nn.Conv2d)
    if not (type(conv) in plain and type(out) is type(conv) and type(act) is nn.GELU and isinstance(glu, nn.GLU)):
        return None
    if (act.approximate != "none" or glu.dim != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str)
            or conv.bias is None or out.bias is None or any(s != 1 for s in (*conv.stride, *conv.dilation))
            or any(k != 1 for k in out.kernel_size) or out.groups != 1 or any(p != 0 for p in out.padding)):
        return None
    return conv, out
