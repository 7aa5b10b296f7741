"""S4ND: an N-d state-space layer, one 1-d SSM kernel per axis (Nguyen et al., 2022).

The N-d kernel is the outer product of one 1-d kernel per axis, so the convolution is separable:
each axis's 1-d convolution is applied in turn. Parameter names and shapes follow the official
`state-spaces/s4` layer so official weights load by name: kernel="diag" (S4D, zero-order hold) or
kernel="dplr" (S4, diagonal plus low rank, bilinear; the official default).

A layer is defined on a reference grid `l_max`. At another resolution the same continuous kernel
is resampled by scaling the step: `rate = l_max / L` per axis (rate < 1 on a finer grid).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.layers import compiled_passes, onednn
from resbench.layers.blocks import GLU, has_forward_hooks
from resbench.layers.resolution_aware import ResolutionAware, kernel_precision
from resbench.layers.s4nd_ops import (activate_, apply_toeplitz, channel_major, conv_fft, fft_evaluate, gelu_into,
                                      inverse, kernel_spectrum, output_buffer, store, toeplitz_from_kernel)
from resbench.layers.ssm_kernels import KERNELS, DPLRKernel, SSMKernel, randn_init

__all__ = ["S4ND", "SSMKernel", "DPLRKernel", "KERNELS", "toeplitz_from_kernel", "apply_toeplitz", "conv_fft",
           "channel_major", "AUTO_TOEPLITZ_MAX_LEN", "auto_toeplitz_max_len"]

# `method="auto"` uses the Toeplitz product while every axis is at most this long (by number of axes), the
# FFT above. On the CPU (benchmarks/bench_fft_toeplitz.py, 2-core AMD VM, kernels cached, per image, fp32):
# 1 axis even at 128 and the FFT 3.6-35x faster from 512 to 2000; 2 axes Toeplitz 1.9x faster at 224, 1.2x
# at 512, a training step 1.3x at 384; 3 axes Toeplitz 5-7x faster up to 32x192x192 (bf16 gains more on the
# Toeplitz side). On other devices the crossover is unmeasured: every axis up to 128 there.
AUTO_TOEPLITZ_MAX_LEN = {1: 128, 2: 512, 3: 512}
AUTO_TOEPLITZ_MAX_LEN_UNMEASURED = 128

# Evaluation runs a few images at a time, about this many input elements per group (4 MB), so that each
# group's layout change, Toeplitz products, pointwise ops and output linear work on memory still in
# cache; a quarter of that when the input is not channel-first contiguous (channels-last, as a norm over
# channels leaves it), whose layout change is a transpose. Measured on the 2-core CPU with kernels cached
# (batch 64 at 28x28, H=128): channel-first 24.4 ms in groups of 8 images against 30.9 in groups of 1;
# channels-last 33.0 ms in groups of 2 against 38.9 in groups of 8. In s4nd_iso (H=64) at 28x28 the
# model went from 697 to 919 images/s (batch 32).
CHUNK_ELEMENTS = 1 << 20

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "id": nn.Identity, None: nn.Identity}


def auto_toeplitz_max_len(dims: int, device: torch.device | str = "cpu") -> int:
    """The longest axis `method="auto"` runs as Toeplitz products with `dims` axes on `device`."""
    if torch.device(device).type != "cpu":
        return AUTO_TOEPLITZ_MAX_LEN_UNMEASURED
    return AUTO_TOEPLITZ_MAX_LEN[dims]


def _method(method: str, spatial: Sequence[int], device: torch.device) -> str:
    """"auto" resolved for the sides `spatial` on `device`; an unknown method is a user error."""
    if method == "auto":
        return "toeplitz" if max(spatial) <= auto_toeplitz_max_len(len(spatial), device) else "fft"
    if method not in ("toeplitz", "fft"):
        raise ResbenchError(f"S4ND method={method!r}: expected 'toeplitz', 'fft' or 'auto'")
    return method


class S4ND(ResolutionAware):
    """S4ND layer: (B, H, *L) -> (B, H, *L) (transposed=True) or (B, *L, H) -> (B, *L, H).

    forward(x, rate, bandlimit, method):
      rate      float or one value per axis; rate = l_max / L keeps the kernel's continuous extent.
      bandlimit `...` (default): the layer's own alpha; a float: that alpha; None: off.
                The mask depends only on the weights, so it can change at evaluation time. With
                `bandlimit_capped` set, an axis run on a grid coarser than the training grid (rate r >
                train_rate) keeps no mode above that grid's Nyquist: alpha_eff = min(alpha, 1 / r), which
                for resbench's models (train_rate 1) is min(alpha, test / train); without an own alpha
                the cap alone. With `bandlimit_adaptive` set (the older rule), the own alpha is scaled:
                alpha * min(1, train_rate / r), which cuts below the test grid's Nyquist when alpha < 1.
      method    "toeplitz", "fft" or "auto" (Toeplitz while every axis <= auto_toeplitz_max_len).
    kernel="diag" (SSMKernel) or "dplr" (DPLRKernel, with `rank`) chooses the per-axis kernel; the
    convolution treats both kernels' taps alike.
    """

    def __init__(self, d_model: int, d_state: int = 64, dim: int = 2, l_max: int | Sequence[int] = 32,
                 bidirectional: bool = True, bandlimit: float | None = None, n_ssm: int | None = 1,
                 init: str = "diag-lin", dt_min: float = 0.001, dt_max: float = 0.1,
                 activation: str | None = "gelu", final_act: str | None = "glu", dropout: float = 0.0,
                 transposed: bool = True, kernel: str = "diag", rank: int = 1, linear: bool = False,
                 channels: int = 1):
        super().__init__()
        if dim not in (1, 2, 3):
            raise ResbenchError(f"S4ND dim={dim}: expected 1, 2 or 3")
        l_max = [l_max] * dim if isinstance(l_max, int) else list(l_max)
        if len(l_max) != dim or any(int(n) < 1 for n in l_max):
            raise ResbenchError(f"S4ND l_max={l_max}: expected {dim} positive lengths")
        if activation not in _ACTIVATIONS:
            raise ResbenchError(f"S4ND activation={activation!r}: expected one of gelu, relu, silu, id")
        if final_act not in ("glu", "id", None):
            raise ResbenchError(f"S4ND final_act={final_act!r}: expected 'glu' or 'id'")
        if kernel not in KERNELS:
            raise ResbenchError(f"S4ND kernel={kernel!r}: expected one of {', '.join(KERNELS)}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1 or (channels > 1 and linear):
            raise ResbenchError(f"S4ND channels={channels!r}: expected a positive integer (1 with linear=True: the "
                                f"output linear mixes the channels back)")
        self.d_model, self.dim, self.l_max = d_model, dim, [int(n) for n in l_max]
        self.bidirectional, self.bandlimit, self.transposed = bidirectional, bandlimit, transposed
        self.kernel_type = kernel  # "diag" (S4D, zero-order hold) or "dplr" (S4, bilinear)
        self.bandlimit_adaptive = False  # the own alpha scaled by min(1, train_rate / rate) per axis
        self.bandlimit_capped = False  # the own alpha capped at the test grid's Nyquist below the training grid
        self.train_rate = 1.0  # the rate of the grid the layer was trained on (1: l_max is that grid)
        self._kernel_cache: dict | None = None  # under cache_kernels(True): operators per (size, rate, alpha, method)
        n_ssm = d_model if n_ssm is None else n_ssm
        self.channels = channels  # C outputs per SSM: the convolution runs on C*H channels, index c*H + h
        args = (d_model, d_state, n_ssm, channels * (2 if bidirectional else 1), init, dt_min, dt_max)
        self.kernel = nn.ModuleList(
            SSMKernel(*args) if kernel == "diag" else DPLRKernel(*args, rank=rank, l_max=n) for n in self.l_max)
        self.D = nn.Parameter(randn_init(channels, d_model))  # (C, H) skip connection
        self.activation = _ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        out = 2 * d_model if final_act == "glu" else d_model
        self.output_linear = nn.Sequential(nn.Linear(channels * d_model, out),
                                           GLU(-1) if final_act == "glu" else nn.Identity())
        self.linear = bool(linear)
        if self.linear:  # the official linear=True: y = K * u + D u, nothing after it (as in S4ND-ConvNeXt)
            self.activation, self.dropout, self.output_linear = nn.Identity(), nn.Identity(), nn.Identity()

    def cache_kernels(self, enabled: bool) -> None:
        self._kernel_cache = {} if enabled else None

    def rates(self, rate: float | Sequence[float]) -> list[float]:
        rates = [float(rate)] * self.dim if isinstance(rate, (int, float)) else [float(r) for r in rate]
        if len(rates) != self.dim or any(not r > 0 for r in rates):
            raise ResbenchError(f"S4ND rate={rate}: expected a positive number or {self.dim} of them")
        return rates

    def kernels(self, spatial: Sequence[int], rate: float | Sequence[float] = 1.0,
                bandlimit: float | None = ...) -> list[torch.Tensor]:
        """Per-axis taps (dir, C*H, Lk) with Lk = min(L, round(l_max / rate)); dir 2 when bidirectional."""
        out = []
        for kernel, L, l_max, r, alpha in zip(self.kernel, spatial, self.l_max, self.rates(rate),
                                              self.axis_alphas(rate, bandlimit)):
            length = max(1, min(L, round(l_max / r)))
            k = kernel(length, r, alpha)  # (dir*C, H, Lk), the directions outermost
            out.append(k if self.channels == 1 else k.reshape(-1, self.channels * self.d_model, length))
        return out

    def axis_alphas(self, rate: float | Sequence[float], bandlimit: float | None = ...) -> list[float | None]:
        """The bandlimit alpha each axis runs with at `rate` (None: no mask)."""
        rates = self.rates(rate)
        if bandlimit is not ...:
            return [bandlimit] * self.dim
        if self.bandlimit_capped:
            return [self.bandlimit if r <= self.train_rate else min(self.bandlimit or math.inf, 1 / r) for r in rates]
        if self.bandlimit is None or not self.bandlimit_adaptive:
            return [self.bandlimit] * self.dim
        return [self.bandlimit * min(1.0, self.train_rate / r) for r in rates]

    def forward(self, x: torch.Tensor, rate: float | Sequence[float] = 1.0, bandlimit: float | None = ...,
                method: str = "auto") -> torch.Tensor:
        if not self.transposed:
            x = x.movedim(-1, 1)  # (B, H, *L)
        if x.dim() != 2 + self.dim:
            raise ResbenchError(f"S4ND input shape {tuple(x.shape)}: expected (B, {self.d_model}, "
                                f"{', '.join(['L'] * self.dim)})")
        spatial = tuple(x.shape[2:])
        if self.channels > 1:  # every SSM output channel convolves its input channel: (B, C*H, *L), index c*H + h
            x = x.repeat(1, self.channels, *([1] * self.dim))
        method = _method(method, spatial, x.device)
        if method == "fft" and self._fft_grouped():
            return self._evaluate_fft(x, rate, bandlimit)
        ops = self._operators(spatial, rate, bandlimit, method)
        if method == "fft":
            y = conv_fft(x, ops) + x * self.D.view(1, -1, *([1] * self.dim))  # (B, H, *L)
            y = self.output_linear(self.dropout(self.activation(y)).movedim(1, -1))  # (B, *L, H)
            return y if not self.transposed else y.movedim(-1, 1)
        if self._grouped():
            return self._evaluate(x, ops)  # no autograd and no dropout to draw: the grouped path
        # Toeplitz: work channel-major, (H, L1, ..., B, LN), so every product below is a large GEMM
        perm = channel_major(self.dim)
        u = x.permute(perm).contiguous()  # (H, L1, ..., B, LN); contiguous: elementwise ops on a view are slow
        width = u.shape[0]  # C*H
        conv = apply_toeplitz(u, ops).view(width, -1)  # (C*H, M), M = L1 * ... * B * LN
        y = self.dropout(self.activation(torch.addcmul(conv, u.view(width, -1), self.D.view(-1, 1))))
        z = self.output_linear(y.t())  # (M, H): rows in u's pixel order, the channel innermost
        # z is (L1, ..., B, LN, H) in memory; u's dim k is z's dim (k - 1) mod n.
        z = z.view(*u.shape[1:], self.d_model)
        z = z.permute([(k - 1) % u.dim() for k in inverse(perm)])  # (B, H, *L)
        return z if self.transposed else z.movedim(1, -1)

    def prenorm_residual(self, x: torch.Tensor, norm: nn.LayerNorm, rate: float | Sequence[float] = 1.0,
                         bandlimit: float | None = ..., method: str = "auto", overwrite: bool = False) -> torch.Tensor:
        """x + self(norm(x)), `norm` a LayerNorm over the channels of x (B, H, *L) (as ChannelNorm): the body of
        a prenorm residual block. On the grouped path (no autograd, Toeplitz) the norm and the sum are taken
        a group of images at a time inside it, while the group is in cache: two passes over the batch fewer.

        `overwrite`: x is the caller's own (a model's residual stream, read by nothing after this call), so the
        grouped paths may write the sum into x, group by group, instead of into a new tensor: the sum reads and
        writes the same memory, and a float32 stream under autocast costs about what a half one does."""
        fused = (self.transposed and self.channels == 1 and not self.linear and self._grouped()
                 and x.dim() == 2 + self.dim and not has_forward_hooks(self, norm))
        if not fused:
            return x + self(norm(x), rate=rate, bandlimit=bandlimit, method=method)
        if _method(method, tuple(x.shape[2:]), x.device) == "fft":
            return self._evaluate_fft(x, rate, bandlimit, norm, overwrite)
        return self._evaluate(x, self._operators(tuple(x.shape[2:]), rate, bandlimit, "toeplitz"), norm, overwrite)

    def _grouped(self) -> bool:
        """Whether a Toeplitz forward takes the grouped path: no autograd and no dropout to draw."""
        return not torch.is_grad_enabled() and not (self.training and isinstance(self.dropout, nn.Dropout))

    def _fft_grouped(self) -> bool:
        """Whether an FFT forward takes the grouped path (fft_evaluate): no autograd, no dropout, one output per
        SSM channel, and an output linear."""
        return self._grouped() and self.channels == 1 and not self.linear

    def _evaluate_fft(self, x: torch.Tensor, rate, bandlimit, norm: nn.LayerNorm | None = None,
                      overwrite: bool = False) -> torch.Tensor:
        """The FFT path without autograd (fft_evaluate), with `norm` x + this layer of norm(x); under autocast
        the output linear runs in its dtype, the transforms in float32. The output is channels last in memory."""
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        spectrum, sizes = self._operators(tuple(x.shape[2:]), rate, bandlimit, "spectrum")
        with torch.autocast(device, enabled=False):
            z = fft_evaluate(x, spectrum, sizes, self.output_linear[0], isinstance(self.output_linear[1], nn.GLU),
                             self.activation, dtype, norm, overwrite)  # (B, *L, H)
        return z.movedim(-1, 1) if self.transposed else z

    def _evaluate(self, x: torch.Tensor, ops: Sequence[torch.Tensor], norm: nn.LayerNorm | None = None,
                  overwrite: bool = False) -> torch.Tensor:
        """The Toeplitz path without autograd, a group of images at a time (see CHUNK_ELEMENTS); with `norm`,
        x + this layer of norm(x) (see prenorm_residual).

        Same math as the autograd path; the output is (B, *L, H) in memory (channels last), which
        is what the per-pixel op after an S4ND layer (a norm over channels) reads without a copy.
        """
        device = x.device.type
        if torch.is_autocast_enabled(device):
            # under autocast every product and pass below runs in its dtype (bf16, fp16) with autocast off: the
            # operators and weights cast once per call and each group's input by the copy that lays it out,
            # instead of a cast inside every op; the output stays in that dtype (with the residual: x's
            # dtype if wider, as x + output promotes); a norm runs in x's dtype (autocast alone would take fp32)
            dtype = torch.get_autocast_dtype(device)
            with torch.autocast(device, enabled=False):
                return self._evaluate_in(x, [T.to(dtype) for T in ops], dtype, norm, overwrite)
        return self._evaluate_in(x, ops, x.dtype, norm, overwrite)

    def _evaluate_in(self, x: torch.Tensor, ops: Sequence[torch.Tensor], dtype: torch.dtype,
                     norm: nn.LayerNorm | None, overwrite: bool = False) -> torch.Tensor:
        B, H, W, spatial = x.shape[0], self.d_model, x.shape[1], tuple(x.shape[2:])  # W = C*H conv channels
        perm = channel_major(self.dim)  # (B, H, *L) -> (H, L1, ..., b, LN)
        # (B, *L, H) to a group's pixel order (L1, ..., b, LN, H): x's dim 0 is z's 0, x's dim k >= 2 is z's k - 1
        pixel_order = [*[max(k - 1, 0) for k in perm[1:]], self.dim + 1]
        z = output_buffer(x, H, dtype, norm is not None, overwrite)  # (B, *L, H)
        z_pixels = z.permute(pixel_order)
        x_pixels = x.movedim(1, -1).permute(pixel_order)  # the residual, in the same order
        budget = CHUNK_ELEMENTS if x.is_contiguous() else CHUNK_ELEMENTS // 4
        # groups fit a CPU's cache; a GPU takes the whole batch in one set of launches
        group = max(1, min(B, budget // (W * math.prod(spatial)))) if x.device.type == "cpu" else B
        batch_dim = self.dim - 1  # where the batch sits in z_pixels
        if not self.linear:
            linear, glu = self.output_linear[0], isinstance(self.output_linear[1], nn.GLU)
            rows = onednn.enabled(x.device, dtype)  # float32 on the CPU: pixel rows through oneDNN
            weight = None if rows else torch.cat([linear.weight, linear.bias[:, None]], dim=1).to(dtype)  # bias last
        D = self.D.view(-1, 1).to(dtype)  # (W, 1)
        compiled = norm is not None and compiled_passes.enabled(x.device, dtype)
        for b0 in range(0, B, group):
            xg = x[b0:b0 + group]  # (b, H, *L)
            if compiled:  # the norm and the layout change in one pass
                u = compiled_passes.norm_to_channel_major(xg.movedim(1, -1), norm.weight, norm.bias, norm.eps,
                                                          tuple(perm), dtype)  # (H, L1, ..., b, LN)
            else:
                if norm is not None:  # over the channels, in x's dtype
                    xg = F.layer_norm(xg.movedim(1, -1), norm.normalized_shape, norm.weight, norm.bias,
                                      norm.eps).movedim(-1, 1)
                view = xg.permute(perm)  # (H, L1, ..., b, LN)
                u = view.contiguous() if dtype == x.dtype else view.new_empty(view.shape, dtype=dtype).copy_(view)
            conv = apply_toeplitz(u, ops).view(W, -1)  # (W, m)
            if self.linear:  # K * u + D u is the output (W = H: channels is 1 with linear)
                dst = z_pixels.narrow(batch_dim, b0, u.shape[batch_dim + 1])  # (L1, ..., b, LN, H)
                dst.copy_(conv.addcmul_(u.view(W, -1), D).t().view(dst.shape))
                continue
            if rows:  # float32 on the CPU: the output linear through oneDNN, which reads pixel rows
                a = conv.new_empty(conv.shape[1], W)  # (m, W)
                torch.addcmul(conv, u.view(W, -1), D, out=a.t())  # + D * u, written transposed
                out = onednn.linear(activate_(a, self.activation), linear.weight, linear.bias)  # (m, out)
            else:
                y = conv.new_empty(W + 1, conv.shape[1])  # activation, and a row of ones for the bias
                y[W] = 1
                self._activation_into(conv.addcmul_(u.view(W, -1), D), y[:W])  # + D * u, activation
                out = torch.mm(y.t(), weight.t())  # (m, out): the output linear with its bias
            dst = z_pixels.narrow(batch_dim, b0, u.shape[batch_dim + 1])  # (L1, ..., b, LN, H)
            res = None if norm is None else x_pixels.narrow(batch_dim, b0, u.shape[batch_dim + 1])
            store(out, dst, glu, res)
        return z.movedim(-1, 1) if self.transposed else z

    def _activation_into(self, t: torch.Tensor, out: torch.Tensor) -> None:
        """out = activation(t), written in place (forward sends no active dropout here)."""
        if isinstance(self.activation, nn.GELU):
            gelu_into(t, out, self.activation.approximate)
        else:
            out.copy_(self.activation(t))

    def _operators(self, spatial, rate, bandlimit, method) -> list[torch.Tensor]:
        """Toeplitz matrices (H, L, L) or FFT kernels (ch, H, Lk) per axis, or with method "spectrum" the kernel's
        spectrum and the transform sizes (kernel_spectrum); cached under cache_kernels(True)."""
        def operators():
            with kernel_precision(self.D):  # kernels in float32 under autocast too (see kernel_precision)
                ks = self.kernels(spatial, rate, bandlimit)  # dim x (ch, H, Lk)
                if method == "spectrum":
                    return kernel_spectrum(ks, spatial, self.D.view(-1))
            return [toeplitz_from_kernel(k, L) for k, L in zip(ks, spatial)] if method == "toeplitz" else ks

        cache = self._kernel_cache
        if cache is None or torch.is_grad_enabled():  # training: kernels change every step
            return operators()
        key = (spatial, tuple(self.rates(rate)), tuple(self.axis_alphas(rate, bandlimit)), method)
        if key not in cache:
            cache[key] = operators()
        return cache[key]

    # ---- official weights (resbench.layers.s4nd_official reads and checks the options) ----------
    @classmethod
    def from_official(cls, config: dict) -> "S4ND":
        """Build a layer (initial weights) from an official S4ND config, e.g. before loading a whole model.

        Options this layer cannot reproduce exactly are refused, never approximated.
        """
        from resbench.layers.s4nd_official import layer_from_official

        return layer_from_official(cls, config)

    @classmethod
    def from_state_spaces(cls, config: dict, state_dict: dict) -> "S4ND":
        """Build a layer from an official S4ND config and load its state dict by name."""
        from resbench.layers.s4nd_official import layer_from_state_spaces

        return layer_from_state_spaces(cls, config, state_dict)
