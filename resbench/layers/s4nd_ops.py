"""The operations of an S4ND layer's convolution: Toeplitz matrices and their products (short axes), the FFT
convolution (long axes), and the output store (GLU, residual) the evaluation paths share."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.layers import compiled_passes, onednn
from resbench.layers.blocks import narrow_half_glu
from resbench.layers.resolution_aware import kernel_precision

__all__ = ["toeplitz_from_kernel", "channel_major", "apply_toeplitz", "inverse", "full_kernel", "conv_fft",
           "kernel_spectrum", "fft_evaluate", "output_buffer", "activate_", "gelu_into", "store", "FFT_CHUNK_ELEMENTS"]

# The FFT evaluation path transforms a few images at a time, about this many spectrum elements per group
# (complex float32: 8 bytes each), so a large batch of long signals or large images needs no batch-sized
# complex buffer.
FFT_CHUNK_ELEMENTS = 1 << 22


def toeplitz_from_kernel(k: torch.Tensor, length: int) -> torch.Tensor:
    """(ch, H, Lk) causal (+ anticausal) taps -> (H, L, L) matrix T with y = T @ u along one axis.

    T[i, j] = k[0, h, i-j] for 0 <= i-j < Lk and, with two channels, k[1, h, j-i-1] for 1 <= j-i <= Lk.
    """
    ch, H, Lk = k.shape
    L = length
    full = k.new_zeros(H, 2 * L - 1)  # (H, 2L-1): taps for offsets d = i-j in [-(L-1), L-1]
    full[:, L - 1:L - 1 + Lk] = k[0]
    if ch == 2:
        n_back = min(Lk, L - 1)
        full[:, L - 1 - n_back:L - 1] = k[1, :, :n_back].flip(-1)  # offset -d holds k[1, d-1]
    i = torch.arange(L, device=k.device)
    return full[:, i[:, None] - i[None, :] + L - 1]  # (H, L, L)


def channel_major(dim: int) -> list[int]:
    """Permutation (B, H, L1, ..., LN) -> (H, L1, ..., L_{N-1}, B, LN).

    In that layout every axis's Toeplitz product is one large matrix product per channel (the batch
    sits between the axes), instead of B*H tiny ones: about 1.6x faster on CPU at 28x28.
    """
    return [1, *range(2, 1 + dim), 0, 1 + dim]


def apply_toeplitz(u: torch.Tensor, matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply one (H, L, L) matrix per axis to u in channel-major layout (H, L1, ..., B, LN)."""
    y = u
    axis_dims = [*range(1, len(matrices)), len(matrices) + 1]  # where each axis sits; B is at len(matrices)
    for dim, T in zip(axis_dims, matrices):
        shape = y.shape
        L = shape[dim]
        if dim == y.dim() - 1:
            y = torch.bmm(y.reshape(shape[0], -1, L), T.transpose(-1, -2))  # (H, M, L)
        else:
            pre = math.prod(shape[1:dim])
            y = torch.matmul(T.unsqueeze(1), y.reshape(shape[0], pre, L, -1))  # (H, pre, L, post)
        y = y.reshape(shape)
    return y


def inverse(perm: Sequence[int]) -> list[int]:
    return sorted(range(len(perm)), key=lambda i: perm[i])


def full_kernel(kernels: Sequence[torch.Tensor], spatial: Sequence[int]) -> tuple[torch.Tensor, list[int]]:
    """The N-d kernel as a circular one, (H, n1, ..., nN) with n = L + Lk per axis (the outer product of the
    axes' taps: causal at the front, anticausal flipped at the back), and those sizes."""
    kernel, sizes = None, []
    for k, L in zip(kernels, spatial):
        k_axis = F.pad(k[0], (0, L))  # (H, Lk+L)
        if k.shape[0] == 2:
            k_axis = k_axis + F.pad(k[1].flip(-1), (L, 0))
        sizes.append(L + k.shape[-1])
        # grow the outer product one axis at a time: (H, n1, ..., n_axis)
        kernel = k_axis if kernel is None else kernel[..., None] * k_axis.view(
            k_axis.shape[0], *([1] * (kernel.dim() - 1)), -1)
    return kernel, sizes


def conv_fft(u: torch.Tensor, kernels: Sequence[torch.Tensor]) -> torch.Tensor:
    """The official algorithm: outer-product N-d kernel, FFT convolution padded to L + Lk per axis."""
    spatial = u.shape[2:]
    kernel, sizes = full_kernel(kernels, spatial)
    dims = tuple(range(-len(spatial), 0))
    with kernel_precision(u):  # float32 FFTs whatever autocast says (see kernel_precision); u's dtype back
        k_f = torch.fft.rfftn(kernel.float(), s=sizes, dim=dims)  # (H, n1, ..., n_N/2+1)
        u_f = torch.fft.rfftn(u.float(), s=sizes, dim=dims)  # (B, H, n1, ..., n_N/2+1)
        y = torch.fft.irfftn(u_f * k_f, s=sizes, dim=dims)  # (B, H, n1, ..., nN)
    return y[(..., *[slice(0, L) for L in spatial])].to(u.dtype)  # (B, H, *L)


def kernel_spectrum(kernels: Sequence[torch.Tensor], spatial: Sequence[int],
                    D: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """The kernel's spectrum with the skip term D (H,) folded in, (H, n1, ..., n_N/2+1) complex float32, and the
    transform sizes (L + Lk per axis). y = K * u + D u is one product u_f * spectrum: D u is the convolution
    with D at offset 0, whose transform is D at every frequency."""
    kernel, sizes = full_kernel(kernels, spatial)
    dims = tuple(range(1, 1 + len(spatial)))
    spectrum = torch.fft.rfftn(kernel.float(), s=sizes, dim=dims)  # (H, *n')
    return (spectrum + D.float().view(-1, *[1] * len(spatial))).contiguous(), sizes


def fft_evaluate(x: torch.Tensor, spectrum: torch.Tensor, sizes: Sequence[int], linear: nn.Linear, glu: bool,
                 activation: nn.Module, dtype: torch.dtype, norm: nn.LayerNorm | None = None,
                 overwrite: bool = False) -> torch.Tensor:
    """The FFT path without autograd, a group of images at a time (FFT_CHUNK_ELEMENTS): x (B, H, *L) in, read
    channels last ((B, *L, H) in memory, as the models keep it, costs no copy), (B, *L, H) out in `dtype`; with
    `norm`, x + the layer of norm(x), in x's dtype if wider.

    The transforms, the product with `spectrum` (kernel_spectrum: D folded in) and the activation run in
    float32; the output linear and the GLU in `dtype` (float32 or the autocast dtype; autocast off here). They
    run channel-first (the transforms are faster on an input laid out so, and hand back channel-first memory
    whatever they read); the output linear reads that memory transposed, writing rows in the pixel order of z."""
    B, H, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
    n = len(spatial)
    pixels = math.prod(spatial)
    z = output_buffer(x, H, dtype, norm is not None, overwrite)  # (B, *L, H)
    x_last = x.movedim(1, -1)  # (B, *L, H)
    rows = onednn.enabled(x.device, dtype)  # float32 on the CPU: the output linear through oneDNN, on pixel rows
    weight = None if rows else torch.cat([linear.weight, linear.bias[:, None]], dim=1).t().to(dtype)  # bias last
    group = max(1, min(B, FFT_CHUNK_ELEMENTS // spectrum.numel()))
    for b0 in range(0, B, group):
        xg = x_last[b0:b0 + group]  # (b, *L, H)
        if norm is not None:  # over the channels, in x's dtype
            xg = F.layer_norm(xg, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        u = xg.movedim(-1, 1).to(torch.float32, memory_format=torch.contiguous_format)  # (b, H, *L)
        dims = tuple(range(2, 2 + n))
        y = torch.fft.irfftn(torch.fft.rfftn(u, s=sizes, dim=dims).mul_(spectrum), s=sizes, dim=dims)  # (b, H, *n)
        y = y[(slice(None), slice(None), *[slice(0, L) for L in spatial])]  # (b, H, *L)
        b = y.shape[0]
        if rows:
            a = y.new_empty(b, *spatial, H)
            a.movedim(-1, 1).copy_(y)  # (b, *L, H): the layout change
            out = onednn.linear(activate_(a, activation).view(b * pixels, H), linear.weight, linear.bias)
        else:
            a = y.new_empty(b, H + 1, *spatial, dtype=dtype)  # the activation, and a row of ones for the bias
            a[:, H] = 1
            if dtype == torch.float32 and isinstance(activation, nn.GELU):
                gelu_into(y, a[:, :H], activation.approximate)
            else:
                a[:, :H] = activation(y)  # float32, rounded once into `dtype`
            out = torch.matmul(a.view(b, H + 1, pixels).transpose(1, 2), weight)  # (b, pixels, out)
        store(out.view(b * pixels, -1), z[b0:b0 + b], glu, None if norm is None else x_last[b0:b0 + b])
    return z


def output_buffer(x: torch.Tensor, width: int, dtype: torch.dtype, residual: bool, overwrite: bool) -> torch.Tensor:
    """Where an evaluation path writes its output of `width` channels for x (B, C, *L), (B, *L, width): without
    `residual` a new tensor in `dtype` (the layer's); with it (x + layer(norm(x)), width C) x itself, channels
    last, when the caller lets it be overwritten and the sum keeps x's dtype and layout, else a new tensor in the
    wider of `dtype` and x's dtype, as x + output promotes."""
    shape = (x.shape[0], *x.shape[2:], width)
    if not residual:
        return x.new_empty(shape, dtype=dtype)
    x_last, sum_dtype = x.movedim(1, -1), torch.promote_types(dtype, x.dtype)
    if overwrite and sum_dtype == x.dtype and x_last.is_contiguous():
        return x_last
    return x.new_empty(shape, dtype=sum_dtype)


def activate_(t: torch.Tensor, activation: nn.Module) -> torch.Tensor:
    """activation(t) written over a contiguous t (no dropout runs here); returns t."""
    if isinstance(activation, nn.GELU):
        return torch.ops.aten.gelu_(t, approximate=activation.approximate)
    return t.copy_(activation(t))


def gelu_into(t: torch.Tensor, out: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """out = GELU(t), written into out. PyTorch 2.14's CPU kernel for the exact GELU (erf) writes wrong values
    into an `out` that is not contiguous when `t` is (seen for a transposed out and for a slice of channels), so
    that case computes the GELU first and copies it in."""
    if out.is_contiguous() or not t.is_contiguous():
        return torch.ops.aten.gelu.out(t, approximate=approximate, out=out)
    return out.copy_(F.gelu(t, approximate=approximate))


def store(out: torch.Tensor, dst: torch.Tensor, glu: bool, res: torch.Tensor | None) -> None:
    """dst = GLU(out) (or out), + res when given: out (m, 2H or H) holds the output linear's rows in the pixel
    order of dst (..., H), and res (the residual) is laid out as dst."""
    H = dst.shape[-1]
    # a half-precision GLU in float32 when narrow (see NARROW_GLU) or when its sum goes to a float32 dst
    in_fp32 = glu and (narrow_half_glu(out, -1) or (out.dtype != torch.float32 and dst.dtype == torch.float32))
    if res is None and not in_fp32:
        if glu:  # GLU over channels, as nn.GLU does on the official layout: one fused pass
            torch.ops.aten.glu.out(out.view(*dst.shape[:-1], 2 * H), -1, out=dst)
        else:
            dst.copy_(out.view(dst.shape))
        return
    y = out.view(*dst.shape[:-1], out.shape[-1])
    if glu and res is not None and out.dtype != dst.dtype and compiled_passes.enabled(out.device, out.dtype):
        # a half out into a float32 stream: one pass, over the residual itself where dst is it (overwrite)
        if dst.data_ptr() == res.data_ptr() and dst.stride() == res.stride():
            compiled_passes.glu_add_(y, dst)
        else:
            compiled_passes.glu_residual_(y, dst, res)
        return
    y = F.glu(y.float() if in_fp32 else y, -1) if glu else y
    if res is None:
        dst.copy_(y)
    elif y.dtype != dst.dtype and y.dtype == torch.promote_types(y.dtype, res.dtype):
        dst.copy_(y.add_(res))  # float32 y, bf16 dst: an add into a third dtype is several times slower
    else:
        torch.add(y, res, out=dst)
