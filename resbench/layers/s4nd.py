"""S4ND: an N-d state-space layer, one 1-d SSM kernel per axis (Nguyen et al., 2022).

The N-d kernel is the outer product of one 1-d kernel per axis, so the convolution is separable:
each axis's 1-d convolution is applied in turn. Parameter names and shapes follow the official
`state-spaces/s4` layer so official weights load by name: kernel="diag" (S4D, zero-order hold) or
kernel="dplr" (S4, diagonal plus low rank, bilinear; the official default).

A layer is defined on a reference grid `l_max`. At another resolution the same continuous kernel
is resampled by scaling the step: `rate = l_max / L` per axis (rate < 1 on a finer grid).
"""

from __future__ import annotations

import cmath
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.statedicts import check_state_dict
from resbench.layers.resolution_aware import ResolutionAware, kernel_precision

__all__ = ["S4ND", "SSMKernel", "DPLRKernel", "KERNELS", "toeplitz_from_kernel", "apply_toeplitz", "conv_fft",
           "channel_major", "AUTO_TOEPLITZ_MAX_LEN"]

# `method="auto"` uses the Toeplitz product while every axis is at most this long, FFT above.
# Measured with benchmarks/bench_layer.py on the 2-core CPU (H=128, d_state 64, batch 64).
AUTO_TOEPLITZ_MAX_LEN = 128

# Evaluation runs a few images at a time, about this many input elements per group (4 MB), so that each
# group's layout change, Toeplitz products, pointwise ops and output linear work on memory still in
# cache; a quarter of that when the input is not channel-first contiguous (channels-last, as a norm over
# channels leaves it), whose layout change is a transpose. Measured on the 2-core CPU with kernels cached
# (batch 64 at 28x28, H=128): channel-first 24.4 ms in groups of 8 images against 30.9 in groups of 1;
# channels-last 33.0 ms in groups of 2 against 38.9 in groups of 8. In s4nd_iso (H=64) at 28x28 the
# model went from 697 to 919 images/s (batch 32).
CHUNK_ELEMENTS = 1 << 20

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "id": nn.Identity, None: nn.Identity}


class SSMKernel(nn.Module):
    """One axis's diagonal SSM kernel, zero-order hold: (ch, H, Lk) taps at a given rate."""

    kind = "diag"

    def __init__(self, d_model: int, d_state: int, n_ssm: int, channels: int,
                 init: str, dt_min: float, dt_max: float):
        super().__init__()
        if d_state % 2:
            raise ResbenchError(f"S4ND d_state={d_state}: expected an even number (complex pairs)")
        if d_model % n_ssm:
            raise ResbenchError(f"S4ND n_ssm={n_ssm}: expected a divisor of d_model={d_model}")
        H, S, N2 = d_model, n_ssm, d_state // 2
        self.H, self.S = H, S
        # dt log-uniform in [dt_min, dt_max]; stored as its log ("inv_dt", the official name)
        log_dt = torch.rand(H, 1) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)  # (H, 1)
        self.inv_dt = nn.Parameter(log_dt)
        if init == "diag-lin":  # A = -1/2 + i*pi*n (S4D-Lin)
            imag = math.pi * torch.arange(N2, dtype=torch.float32).expand(S, N2)
        elif init == "diag-inv":  # A = -1/2 + i*N/pi*(N/(2n+1) - 1) (S4D-Inv)
            n = torch.arange(N2, dtype=torch.float32)
            imag = (d_state / math.pi * (d_state / (2 * n + 1) - 1)).expand(S, N2)
        else:
            raise ResbenchError(f"S4ND init={init!r}: expected 'diag-lin' or 'diag-inv'")
        self.A_real = nn.Parameter(torch.full((S, N2), math.log(0.5)))  # (S, N2): Re A = -exp(A_real)
        self.A_imag = nn.Parameter(imag.clone())  # (S, N2): Im A = -A_imag
        B = torch.zeros(1, S, N2, 2)
        B[..., 0] = 1.0
        self.B = nn.Parameter(B)  # (1, S, N2, 2) complex as (re, im)
        self.C = nn.Parameter(torch.randn(channels, H, N2, 2) * 0.5 ** 0.5)  # (ch, H, N2, 2)

    def dt(self) -> torch.Tensor:
        return self.inv_dt.exp().squeeze(-1)  # (H,) step of the reference grid

    def A(self) -> torch.Tensor:
        A = -self.A_real.exp() - 1j * self.A_imag  # (S, N2)
        return A.repeat(self.H // self.S, 1)  # (H, N2): channel h uses row h mod S

    def bandlimit_mask(self, alpha: float | None) -> torch.Tensor:
        """1 for modes whose frequency on the reference grid is below alpha/2 cycles per step; a layer with a
        random mask (draw_random_mask) keeps its fixed modes instead whenever a bandlimit is on, and of those
        only the ones below alpha/2 when alpha is lower than the alpha the mask was drawn for."""
        A = self.A()
        if alpha is None:
            return torch.ones(A.shape, device=A.device)  # (H, N2)
        if getattr(self, "random_mask", None) is not None:  # below the alpha it was drawn for, also cut at alpha
            kept = self.random_mask.to(A.real.dtype)  # (H, N2)
            return kept if alpha >= self.random_alpha else kept * self._band(alpha)
        return self._band(alpha)

    def _band(self, alpha: float) -> torch.Tensor:
        A = self.A()
        freqs = self.dt()[:, None] * A.imag.abs() / (2 * math.pi)  # (H, N2), independent of rate
        return (freqs < alpha / 2).to(A.real.dtype)

    def draw_random_mask(self, alpha: float) -> None:
        """Fix a random mask (the control arm of the bandlimit): per channel, as many modes as the band
        mask at alpha keeps now, chosen at random with torch's generator (so by the seed). It is a buffer:
        checkpoints keep it and evaluation reproduces it."""
        band = self._band(alpha).detach()  # (H, N2)
        self.random_alpha = alpha  # the bandlimit the random mask stands for (rebuilt from the model config)
        ranks = torch.rand(band.shape).argsort(-1).argsort(-1).to(band.device)  # (H, N2): a random order per channel
        self.register_buffer("random_mask", (ranks < band.sum(-1, keepdim=True)).to(band.dtype))

    def forward(self, length: int, rate: float = 1.0, bandlimit: float | None = None) -> torch.Tensor:
        A = self.A()  # (H, N2)
        dtA = A * (self.dt() * rate)[:, None]  # (H, N2): the step shrinks as resolution grows
        B = torch.view_as_complex(self.B).repeat(1, self.H // self.S, 1)  # (1, H, N2)
        C = torch.view_as_complex(self.C) * self.bandlimit_mask(bandlimit)  # (ch, H, N2)
        Cz = B * C * (dtA.exp() - 1) / A  # (ch, H, N2), zero-order hold
        # K[l] = 2 Re sum_n Cz[n] exp(dtA[n] l), in real arithmetic (complex exp is ~40x slower on CPU):
        # exp(dtA l) = exp(Re dtA l) (cos(Im dtA l) + i sin(Im dtA l))
        pos = torch.arange(length, device=A.device, dtype=dtA.real.dtype)  # (Lk,)
        decay = torch.exp(dtA.real[:, :, None] * pos)  # (H, N2, Lk)
        phase = dtA.imag[:, :, None] * pos  # (H, N2, Lk)
        v = torch.cat([decay * torch.cos(phase), decay * torch.sin(phase)], dim=1)  # (H, 2*N2, Lk): Re, Im
        c = torch.cat([Cz.real, -Cz.imag], dim=-1).transpose(0, 1)  # (H, ch, 2*N2): Re(c v) = c_re v_re - c_im v_im
        return 2 * torch.bmm(c, v).transpose(0, 1)  # (ch, H, Lk)


class DPLRKernel(SSMKernel):
    """One axis's diagonal-plus-low-rank SSM kernel (S4), bilinear transform: (ch, H, Lk) taps at a given rate.

    State matrix A - P P^* on the full state (the N2 modes and their conjugates), A = diag(-exp(A_real)
    - i A_imag), P (R, S, N2). As in the official kernel, `C` stores C~ = C (I - Abar^l_kernel) for the
    buffer `l_kernel`, with Abar the bilinear transition on the reference step: then the truncated kernel
    of l_kernel taps is exactly its generating function sampled at the l_kernel-th roots of unity, one
    inverse FFT. At rate r the same C~ is evaluated on round(l_kernel / r) nodes with the step dt * r.
    """

    kind = "dplr"

    def __init__(self, d_model: int, d_state: int, n_ssm: int, channels: int, init: str,
                 dt_min: float, dt_max: float, rank: int, l_max: int):
        super().__init__(d_model, d_state, n_ssm, channels, init, dt_min, dt_max)
        if not isinstance(rank, int) or rank < 1:
            raise ResbenchError(f"S4ND rank={rank!r}: expected a positive integer (DPLR low-rank size)")
        self.rank, self.l_max = rank, int(l_max)
        # P = 0 as the official diag-* inits set it: the kernel starts as bilinear S4D (and stays so in
        # training, as officially: P enters as P P^*, whose gradient vanishes at P = 0)
        self.P = nn.Parameter(torch.zeros(rank, self.S, self.A_real.shape[-1], 2))  # (R, S, N2, 2) complex as (re, im)
        # the random C drawn above stands for C~ at l_max (the official kernel converts its first C to C~ at
        # l_max on its first call); 0 would mean "C is plain C", converted on the fly
        self.register_buffer("l_kernel", torch.tensor(self.l_max))

    def low_rank(self) -> torch.Tensor:
        return torch.view_as_complex(self.P).repeat(1, self.H // self.S, 1)  # (R, H, N2)

    def transition(self) -> torch.Tensor:
        """Abar on the reference step, bilinear: (I - dt/2 M)^-1 (I + dt/2 M), M = A - P P^*: (H, 2*N2, 2*N2)."""
        A, P = self.A(), self.low_rank()
        A_full = torch.cat([A, A.conj()], dim=-1)  # (H, 2*N2): modes, then their conjugates
        P_full = torch.cat([P, P.conj()], dim=-1)  # (R, H, 2*N2)
        M = torch.diag_embed(A_full) - torch.einsum("rhn,rhm->hnm", P_full, P_full.conj())  # (H, 2N2, 2N2)
        half = (self.dt() / 2)[:, None, None]  # (H, 1, 1)
        eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
        return torch.linalg.solve(eye - half * M, eye + half * M)

    def c_tilde(self, needed: int) -> tuple[torch.Tensor, int]:
        """(C~ (ch, H, N2), its length) valid for kernels spanning `needed` reference steps.

        The stored C~ when l_kernel covers `needed`: always for the kernels S4ND asks for at rate r <= 1
        (r * round(l_max / r) < l_max + 1/2), not always above (l_max 20, r 3.5: round(3.5 * 6) = 21).
        Otherwise computed as the official kernel would update its weights, without touching them:
        plain C (l_kernel = 0) becomes C (I - Abar^l_max), then the length doubles while too short, using
        I - Abar^2l = (I - Abar^l)(I + Abar^l).
        """
        C = torch.view_as_complex(self.C)  # (ch, H, N2)
        length = int(self.l_kernel)
        if length >= needed and length > 0:
            return C, length
        N2 = C.shape[-1]
        Abar = self.transition()  # (H, 2N2, 2N2)
        C_full = torch.cat([C, C.conj()], dim=-1)  # (ch, H, 2N2), a row vector per (c, h)
        if length == 0:
            length = self.l_max
            C_full = C_full - torch.einsum("chn,hnm->chm", C_full, torch.linalg.matrix_power(Abar, length))
        while length < needed:
            C_full = C_full + torch.einsum("chn,hnm->chm", C_full, torch.linalg.matrix_power(Abar, length))
            length *= 2
        return C_full[..., :N2], length

    def forward(self, length: int, rate: float = 1.0, bandlimit: float | None = None) -> torch.Tensor:
        C, l_kernel = self.c_tilde(round(rate * length))  # (ch, H, N2)
        C = C * self.bandlimit_mask(bandlimit)  # the mask applies to C~ only, not to P
        n = round(l_kernel / rate)  # kernel length on this grid; the first `length` taps are returned
        dt = self.dt() * rate  # (H,)
        dtA = self.A() * dt[:, None]  # (H, N2)
        B = torch.view_as_complex(self.B).repeat(1, self.H // self.S, 1)  # (1, H, N2)
        P = self.low_rank()  # (R, H, N2)
        # numerators of every sum_n a_n b_n dt / (z - dtA_n), a in (B, P), b in (C~, conj P): (1+R, ch+R, H, N2)
        v = torch.cat([B, P])[:, None] * torch.cat([C, P.conj()])[None] * dt[:, None]
        omega, z = _bilinear_nodes(n, dtA.device)  # (n//2+1,)
        r = _cauchy(v, z, dtA)  # (1+R, ch+R, H, n//2+1)
        ch = C.shape[0]
        # Woodbury identity for the rank-R term: r00 - r01 (I + r11)^-1 r10
        r00, r01, r10, r11 = r[0, :ch], r[0, ch:], r[1:, :ch], r[1:, ch:]  # (ch|R, ..., H, F), (R, R, H, F)
        eye = torch.eye(self.rank, dtype=r.dtype, device=r.device)
        x = torch.linalg.solve(eye + r11.permute(2, 3, 0, 1), r10.permute(2, 3, 0, 1))  # (H, F, R, ch)
        k_f = r00 - torch.einsum("rhf,hfrc->chf", r01, x)  # (ch, H, F)
        k_f = k_f * 2 / (1 + omega)  # undo the bilinear map of the nodes
        return torch.fft.irfft(k_f, n=n)[..., :length]  # (ch, H, Lk)


def _bilinear_nodes(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The n-th roots of unity omega^k (k <= n/2) and their bilinear images z = 2 (1 - omega) / (1 + omega).

    omega is rounded to complex64 first and then raised to integer powers in complex64, as the official
    kernel computes it: near omega = -1 (k = n/2) the value of 1 + omega (~1e-7) is mostly rounding, and
    the Nyquist tap depends on it.
    """
    root = torch.tensor(cmath.exp(-2j * math.pi / n), dtype=torch.complex64, device=device)
    omega = root ** torch.arange(n // 2 + 1, device=device)  # (n//2+1,)
    return omega, 2 * (1 - omega) / (1 + omega)


def _cauchy(v: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum over modes and their conjugates of v / (z - w): v (..., H, N2), z (F,), w (H, N2) -> (..., H, F)."""
    v = torch.cat([v, v.conj()], dim=-1)[..., None]  # (..., H, 2N2, 1)
    w = torch.cat([w, w.conj()], dim=-1)[..., None]  # (H, 2N2, 1)
    return (v / (z - w)).sum(dim=-2)


KERNELS = {"diag": SSMKernel, "dplr": DPLRKernel}


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


def _inverse(perm: Sequence[int]) -> list[int]:
    return sorted(range(len(perm)), key=lambda i: perm[i])


def conv_fft(u: torch.Tensor, kernels: Sequence[torch.Tensor]) -> torch.Tensor:
    """The official algorithm: outer-product N-d kernel, FFT convolution padded to L + Lk per axis."""
    spatial = u.shape[2:]
    full_kernel = None
    sizes = []
    for k, L in zip(kernels, spatial):
        Lk = k.shape[-1]
        # causal taps at the front, anticausal taps flipped at the back: a circular kernel of length L+Lk
        k_axis = F.pad(k[0], (0, L))  # (H, Lk+L)
        if k.shape[0] == 2:
            k_axis = k_axis + F.pad(k[1].flip(-1), (L, 0))
        sizes.append(L + Lk)
        # grow the outer product one axis at a time: (H, n1, ..., n_axis)
        full_kernel = k_axis if full_kernel is None else full_kernel[..., None] * k_axis.view(
            k_axis.shape[0], *([1] * (full_kernel.dim() - 1)), -1)
    dims = tuple(range(-len(spatial), 0))
    with kernel_precision(u):  # float32 FFTs whatever autocast says (see kernel_precision); u's dtype back
        k_f = torch.fft.rfftn(full_kernel.float(), s=sizes, dim=dims)  # (H, n1, ..., n_N/2+1)
        u_f = torch.fft.rfftn(u.float(), s=sizes, dim=dims)  # (B, H, n1, ..., n_N/2+1)
        y = torch.fft.irfftn(u_f * k_f, s=sizes, dim=dims)  # (B, H, n1, ..., nN)
    return y[(..., *[slice(0, L) for L in spatial])].to(u.dtype)  # (B, H, *L)


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
      method    "toeplitz", "fft" or "auto" (Toeplitz while every axis <= AUTO_TOEPLITZ_MAX_LEN).
    kernel="diag" (SSMKernel) or "dplr" (DPLRKernel, with `rank`) chooses the per-axis kernel; the
    convolution treats both kernels' taps alike.
    """

    def __init__(self, d_model: int, d_state: int = 64, dim: int = 2, l_max: int | Sequence[int] = 32,
                 bidirectional: bool = True, bandlimit: float | None = None, n_ssm: int | None = 1,
                 init: str = "diag-lin", dt_min: float = 0.001, dt_max: float = 0.1,
                 activation: str | None = "gelu", final_act: str | None = "glu", dropout: float = 0.0,
                 transposed: bool = True, kernel: str = "diag", rank: int = 1, linear: bool = False):
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
        self.d_model, self.dim, self.l_max = d_model, dim, [int(n) for n in l_max]
        self.bidirectional, self.bandlimit, self.transposed = bidirectional, bandlimit, transposed
        self.kernel_type = kernel  # "diag" (S4D, zero-order hold) or "dplr" (S4, bilinear)
        self.bandlimit_adaptive = False  # the own alpha scaled by min(1, train_rate / rate) per axis
        self.bandlimit_capped = False  # the own alpha capped at the test grid's Nyquist below the training grid
        self.train_rate = 1.0  # the rate of the grid the layer was trained on (1: l_max is that grid)
        self._kernel_cache: dict | None = None  # under cache_kernels(True): operators per (size, rate, alpha, method)
        n_ssm = d_model if n_ssm is None else n_ssm
        channels = 2 if bidirectional else 1
        args = (d_model, d_state, n_ssm, channels, init, dt_min, dt_max)
        self.kernel = nn.ModuleList(
            SSMKernel(*args) if kernel == "diag" else DPLRKernel(*args, rank=rank, l_max=n) for n in self.l_max)
        self.D = nn.Parameter(torch.randn(1, d_model))  # (1, H) skip connection
        self.activation = _ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        out = 2 * d_model if final_act == "glu" else d_model
        self.output_linear = nn.Sequential(nn.Linear(d_model, out), nn.GLU(-1) if final_act == "glu" else nn.Identity())
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
        """Per-axis taps (ch, H, Lk) with Lk = min(L, round(l_max / rate))."""
        out = []
        for kernel, L, l_max, r, alpha in zip(self.kernel, spatial, self.l_max, self.rates(rate),
                                              self.axis_alphas(rate, bandlimit)):
            length = max(1, min(L, round(l_max / r)))
            out.append(kernel(length, r, alpha))
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
        if method == "auto":
            method = "toeplitz" if max(spatial) <= AUTO_TOEPLITZ_MAX_LEN else "fft"
        if method not in ("toeplitz", "fft"):
            raise ResbenchError(f"S4ND method={method!r}: expected 'toeplitz', 'fft' or 'auto'")
        ops = self._operators(spatial, rate, bandlimit, method)
        if method == "fft":
            y = conv_fft(x, ops) + x * self.D.view(1, -1, *([1] * self.dim))  # (B, H, *L)
            y = self.output_linear(self.dropout(self.activation(y)).movedim(1, -1))  # (B, *L, H)
            return y if not self.transposed else y.movedim(-1, 1)
        if not torch.is_grad_enabled() and not (self.training and isinstance(self.dropout, nn.Dropout)):
            return self._evaluate(x, ops)  # no autograd and no dropout to draw: the grouped path
        # Toeplitz: work channel-major, (H, L1, ..., B, LN), so every product below is a large GEMM
        perm = channel_major(self.dim)
        u = x.permute(perm).contiguous()  # (H, L1, ..., B, LN); contiguous: elementwise ops on a view are slow
        conv = apply_toeplitz(u, ops).view(self.d_model, -1)  # (H, M), M = L1 * ... * B * LN
        y = self.dropout(self.activation(torch.addcmul(conv, u.view(self.d_model, -1), self.D.view(-1, 1))))
        z = self.output_linear(y.t())  # (M, H): rows in u's pixel order, the channel innermost
        # z is (L1, ..., B, LN, H) in memory; u's dim k is z's dim (k - 1) mod n.
        z = z.view(*u.shape[1:], self.d_model)
        z = z.permute([(k - 1) % u.dim() for k in _inverse(perm)])  # (B, H, *L)
        return z if self.transposed else z.movedim(1, -1)

    def _evaluate(self, x: torch.Tensor, ops: Sequence[torch.Tensor]) -> torch.Tensor:
        """The Toeplitz path without autograd, a group of images at a time (see CHUNK_ELEMENTS).

        Same math as the autograd path; the output is (B, *L, H) in memory (channels last), which
        is what the per-pixel op after an S4ND layer (a norm over channels) reads without a copy.
        """
        B, H, spatial = x.shape[0], self.d_model, tuple(x.shape[2:])
        perm = channel_major(self.dim)  # (B, H, *L) -> (H, L1, ..., b, LN)
        z = x.new_empty(B, *spatial, H)
        # z's dims in a group's pixel order (L1, ..., b, LN, H): x's dim 0 is z's 0, x's dim k >= 2 is z's k - 1
        z_pixels = z.permute(*[max(k - 1, 0) for k in perm[1:]], self.dim + 1)
        budget = CHUNK_ELEMENTS if x.is_contiguous() else CHUNK_ELEMENTS // 4
        # groups fit a CPU's cache; a GPU takes the whole batch in one set of launches
        group = max(1, min(B, budget // (H * math.prod(spatial)))) if x.device.type == "cpu" else B
        batch_dim = self.dim - 1  # where the batch sits in z_pixels
        if not self.linear:
            linear, glu = self.output_linear[0], isinstance(self.output_linear[1], nn.GLU)
            weight = torch.cat([linear.weight, linear.bias[:, None]], dim=1)  # (out, H+1): bias as a last column
        D = self.D.view(-1, 1)  # (H, 1)
        for b0 in range(0, B, group):
            u = x[b0:b0 + group].permute(perm).contiguous()  # (H, L1, ..., b, LN)
            conv = apply_toeplitz(u, ops).view(H, -1)  # (H, m)
            if self.linear:  # K * u + D u is the output
                dst = z_pixels.narrow(batch_dim, b0, u.shape[batch_dim + 1])  # (L1, ..., b, LN, H)
                dst.copy_(conv.addcmul_(u.view(H, -1), D).t().view(dst.shape))
                continue
            y = conv.new_empty(H + 1, conv.shape[1])  # activation, and a row of ones for the bias
            y[H] = 1
            self._activation_into(conv.addcmul_(u.view(H, -1), D), y[:H])  # + D * u, activation
            out = torch.mm(y.t(), weight.t())  # (m, out): the output linear with its bias
            dst = z_pixels.narrow(batch_dim, b0, u.shape[batch_dim + 1])  # (L1, ..., b, LN, H)
            if glu:  # GLU over channels, as nn.GLU does on the official layout
                torch.ops.aten.glu.out(out.view(*dst.shape[:-1], 2 * H), -1, out=dst)  # one fused pass
            else:
                dst.copy_(out.view(dst.shape))
        return z.movedim(-1, 1) if self.transposed else z

    def _activation_into(self, t: torch.Tensor, out: torch.Tensor) -> None:
        """out = activation(t), written in place (forward sends no active dropout here)."""
        if isinstance(self.activation, nn.GELU):
            torch.ops.aten.gelu.out(t, approximate=self.activation.approximate, out=out)
        else:
            out.copy_(self.activation(t))

    def _operators(self, spatial, rate, bandlimit, method) -> list[torch.Tensor]:
        """Toeplitz matrices (H, L, L) or FFT kernels (ch, H, Lk) per axis; cached under cache_kernels(True)."""
        def operators():
            with kernel_precision(self.D):  # kernels in float32 under autocast too (see kernel_precision)
                ks = self.kernels(spatial, rate, bandlimit)  # dim x (ch, H, Lk)
            return [toeplitz_from_kernel(k, L) for k, L in zip(ks, spatial)] if method == "toeplitz" else ks

        cache = self._kernel_cache
        if cache is None or torch.is_grad_enabled():  # training: kernels change every step
            return operators()
        key = (spatial, tuple(self.rates(rate)), tuple(self.axis_alphas(rate, bandlimit)), method)
        if key not in cache:
            cache[key] = operators()
        return cache[key]

    # ---- official weights -------------------------------------------------------------------
    # Official options read into the layer (`rank` only by the DPLR kernel).
    # `linear`: True drops activation, dropout and output linear. The official class default is True
    # but every image config sets it (false for the isotropic model, true inside S4ND-ConvNeXt); an absent
    # key reads as false here, and a state dict that lacks the output linear is refused by its keys.
    _CONFIG_KEYS = {"d_model", "d_state", "l_max", "dim", "bidirectional", "bandlimit", "n_ssm", "init",
                    "activation", "final_act", "transposed", "dt_min", "dt_max", "dropout", "rank", "linear"}
    # Official options that do not change an evaluated layer's output: training settings (learning
    # rates, weight decay, dropout tying), start-up only (weight initialiser, C init, logging), what
    # forward returns besides y.
    # `contract_version` only reorders the einsums that average over the tensor rank `trank`; with
    # trank 1 (checked below) both versions compute the same convolution.
    _NO_EFFECT_KEYS = {"_name_", "lr", "wd", "tie_dropout", "verbose", "initializer", "deterministic",
                       "return_state", "contract_version", "backend"}  # backend: which Cauchy/Vandermonde code
    # Official options that change the result: accepted only at the value this layer reproduces.
    # (value required, the official default when the key is absent)
    _FIXED_KEYS = {"channels": (1, 1),
                   "dt_transform": ("exp", "exp"), "trank": (1, 1), "weight_norm": (False, False),
                   "ln": (False, False), "hyper_act": (None, None), "out_channels": (None, None),
                   }
    # Official kernel registry names -> this layer's kernels (the official `mode` is the older key).
    _KERNEL_NAMES = {"diag": "diag", "s4d": "diag", "dplr": "dplr", "nplr": "dplr", "s4": "dplr"}
    # `disc` per kernel: the diagonal kernel here is zero-order hold only; the official DPLR kernel is
    # bilinear whatever `disc` says (only its diagonal parent class reads it), so every official value is.
    _DISC = {"diag": ("zoh",), "dplr": ("zoh", "bilinear", "dss")}

    @classmethod
    def from_official(cls, config: dict) -> "S4ND":
        """Build a layer (initial weights) from an official S4ND config, e.g. before loading a whole model.

        Options this layer cannot reproduce exactly are refused, never approximated.
        """
        config = dict(config)
        mode = config.pop("mode", "dplr")  # the official defaults: kernel=None, mode="dplr"; kernel wins if set
        name = config.pop("kernel", None)
        name = mode if name is None else name
        if name not in cls._KERNEL_NAMES:
            raise ResbenchError(f"official S4ND option kernel={name!r} is not supported "
                                f"(expected one of {', '.join(cls._KERNEL_NAMES)})")
        kind = cls._KERNEL_NAMES[name]
        disc = config.pop("disc", "zoh")
        if disc not in cls._DISC[kind]:
            raise ResbenchError(f"official S4ND option disc={disc!r} is not supported with kernel={name!r} "
                                f"(expected {' or '.join(map(repr, cls._DISC[kind]))})")
        known = cls._CONFIG_KEYS | cls._NO_EFFECT_KEYS | set(cls._FIXED_KEYS)
        unknown = sorted(set(config) - known)
        if unknown:
            raise ResbenchError(f"official S4ND config option {unknown[0]!r} is not supported")
        for key, (want, default) in cls._FIXED_KEYS.items():
            got = config.get(key, default)
            if got != want:
                raise ResbenchError(f"official S4ND option {key}={got!r} is not supported (expected {want!r})")
        if "d_model" not in config:
            raise ResbenchError("official S4ND config: 'd_model' is missing")
        l_max = config.get("l_max", 1)
        if l_max is None and kind == "dplr":  # the official DPLR kernel would then size C~ by its first input
            raise ResbenchError("official S4ND option l_max=None is not supported with a DPLR kernel "
                                "(expected the lengths the layer was trained on)")
        return cls(d_model=config["d_model"], d_state=config.get("d_state", 64), dim=int(config.get("dim", 2)),
                   l_max=l_max if l_max is not None else 1, bidirectional=config.get("bidirectional", False),
                   bandlimit=config.get("bandlimit"), n_ssm=config.get("n_ssm", 1),
                   init=_init_name(config, kind),
                   dt_min=config.get("dt_min", 0.001), dt_max=config.get("dt_max", 0.1),
                   activation=config.get("activation", "gelu"), final_act=config.get("final_act", "glu"),
                   dropout=config.get("dropout", 0.0), transposed=config.get("transposed", True),
                   kernel=kind, rank=config.get("rank", 1), linear=bool(config.get("linear", False)))

    @classmethod
    def from_state_spaces(cls, config: dict, state_dict: dict) -> "S4ND":
        """Build a layer from an official S4ND config and load its state dict by name.

        Options this layer cannot reproduce exactly are refused, never approximated. A DPLR layer's
        `rank` comes from the config, else from the shape of P.
        """
        sd = {k.replace(".log_dt", ".inv_dt"): v for k, v in state_dict.items()}  # older releases' name
        if "rank" not in config and "kernel.0.P" in sd:
            config = {**config, "rank": int(sd["kernel.0.P"].shape[0])}
        layer = cls.from_official(config)
        check_state_dict(layer.state_dict(), sd, "official S4ND state dict",
                         f"its config (kernel {layer.kernel_type!r})")
        layer.load_state_dict(sd)
        return layer


def _init_name(config: dict, kind: str) -> str:
    """The init to build with. Init only sets the starting weights, which the state dict replaces, so
    every official init is accepted (legs, diag-lin, ...): the layer starts from diag-lin, or diag-inv."""
    init = config.get("init", "diag-lin" if kind == "diag" else "legs")
    if not isinstance(init, str):
        raise ResbenchError(f"official S4ND option init={init!r} is not supported (expected a name such as legs)")
    return init if init in ("diag-lin", "diag-inv") else "diag-lin"
