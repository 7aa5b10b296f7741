"""SSM kernels of one axis for S4ND: diagonal (S4D, zero-order hold) and diagonal plus low rank (S4, bilinear).

Each kernel holds the official `state-spaces/s4` parameter names and shapes and returns (ch, H, Lk) taps
for a kernel length and a rate (the reference step scaled by `rate`), with an optional bandlimit mask.
"""

from __future__ import annotations

import cmath
import math

import torch
import torch.nn as nn

from resbench.errors import ResbenchError

__all__ = ["SSMKernel", "DPLRKernel", "KERNELS", "randn_init"]


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
        # Arithmetic on the (H, ...) tensors is in place, and the per-mode values come from the CPU: checkpoint
        # validation builds the layer on the meta device, where torch's out-of-place arithmetic imports its
        # compiler stack (1.7 s on every `resbench info`). The values are those of the plain expressions.
        # dt log-uniform in [dt_min, dt_max]; stored as its log ("inv_dt", the official name)
        log_dt = torch.rand(H, 1).mul_(math.log(dt_max) - math.log(dt_min)).add_(math.log(dt_min))  # (H, 1)
        self.inv_dt = nn.Parameter(log_dt)
        imag = _imag_init(init, d_state).to(torch.get_default_device())  # (N2,)
        self.A_real = nn.Parameter(torch.full((S, N2), math.log(0.5)))  # (S, N2): Re A = -exp(A_real)
        self.A_imag = nn.Parameter(imag.expand(S, N2).clone())  # (S, N2): Im A = -A_imag
        B = torch.zeros(1, S, N2, 2)
        B[..., 0] = 1.0
        self.B = nn.Parameter(B)  # (1, S, N2, 2) complex as (re, im)
        self.C = nn.Parameter(randn_init(channels, H, N2, 2).mul_(0.5 ** 0.5))  # (ch, H, N2, 2)

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
        self.random_alpha = alpha  # the bandlimit the random mask stands for (rebuilt from the model config)
        if self.A_real.is_meta:  # a layer built for its shapes (checkpoint validation): nothing to draw, and
            # meta arithmetic would import torch's compiler stack; the file's mask replaces this one
            shape = (self.H, self.A_real.shape[-1])  # (H, N2)
            self.register_buffer("random_mask", torch.empty(shape, dtype=self.A_real.dtype))
            return
        band = self._band(alpha).detach()  # (H, N2)
        ranks = torch.rand(band.shape).argsort(-1).argsort(-1).to(band.device)  # (H, N2): a random order per channel
        self.register_buffer("random_mask", (ranks < band.sum(-1, keepdim=True)).to(band.dtype))

    def modes(self, rate: float = 1.0, bandlimit: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(Cz (ch, H, N2), dtA (H, N2)): the kernel is K[l] = 2 Re sum_n Cz[n] exp(dtA[n] l) on this grid."""
        A = self.A()  # (H, N2)
        dtA = A * (self.dt() * rate)[:, None]  # (H, N2): the step shrinks as resolution grows
        B = torch.view_as_complex(self.B).repeat(1, self.H // self.S, 1)  # (1, H, N2)
        C = torch.view_as_complex(self.C) * self.bandlimit_mask(bandlimit)  # (ch, H, N2)
        return B * C * (dtA.exp() - 1) / A, dtA  # zero-order hold

    def forward(self, length: int, rate: float = 1.0, bandlimit: float | None = None) -> torch.Tensor:
        Cz, dtA = self.modes(rate, bandlimit)
        if length > LONG_KERNEL:
            return _taps_blocked(Cz, dtA, length)
        return _taps(Cz, dtA, torch.arange(length, device=dtA.device, dtype=dtA.real.dtype))


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


LONG_KERNEL = 1 << 14  # taps beyond which a kernel is evaluated in blocks (the dense spectra of kernels.py)


def _taps(Cz: torch.Tensor, dtA: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """K[l] = 2 Re sum_n Cz[n] exp(dtA[n] l) at the positions `pos` (Lk,): (ch, H, Lk).

    In real arithmetic (complex exp is ~40x slower on CPU): exp(dtA l) = exp(Re dtA l) (cos + i sin)(Im dtA l).
    """
    decay = torch.exp(dtA.real[:, :, None] * pos)  # (H, N2, Lk)
    phase = dtA.imag[:, :, None] * pos  # (H, N2, Lk)
    v = torch.cat([decay * torch.cos(phase), decay * torch.sin(phase)], dim=1)  # (H, 2*N2, Lk): Re, Im
    c = torch.cat([Cz.real, -Cz.imag], dim=-1).transpose(0, 1)  # (H, ch, 2*N2): Re(c v) = c_re v_re - c_im v_im
    return 2 * torch.bmm(c, v).transpose(0, 1)  # (ch, H, Lk)


def _taps_blocked(Cz: torch.Tensor, dtA: torch.Tensor, length: int, block: int = 512) -> torch.Tensor:
    """The taps of `_taps` for l < length, as blocks of `block` taps: exp(dtA (a block + b)) = exp(dtA a block)
    exp(dtA b), so every block is the first block's basis times per-block coefficients, one batched product
    instead of an exponential per tap (a 256,000-tap kernel of 32 channels and 32 modes: 0.1 s, not 2 s)."""
    n_blocks = -(-length // block)
    starts = torch.arange(n_blocks, device=dtA.device, dtype=dtA.real.dtype) * block  # (nb,)
    shift = torch.exp(dtA[:, :, None] * starts)  # (H, N2, nb): complex exp on nb values only
    coef = Cz[:, :, :, None] * shift  # (ch, H, N2, nb): each block's own Cz
    ch, H, N2, nb = coef.shape
    coef = coef.permute(0, 3, 1, 2).reshape(ch * nb, H, N2)  # (ch*nb, H, N2): block-major within a channel
    taps = _taps(coef, dtA, torch.arange(block, device=dtA.device, dtype=dtA.real.dtype))  # (ch*nb, H, block)
    return taps.reshape(ch, nb, H, block).permute(0, 2, 1, 3).reshape(ch, H, nb * block)[..., :length]


def randn_init(*shape: int) -> torch.Tensor:
    """torch.randn(*shape) on the default device; on the meta device an empty tensor, as torch's own
    initialisers leave meta tensors (its meta randn imports sympy: 0.9 s on every `resbench info`)."""
    out = torch.empty(*shape)
    return out if out.is_meta else torch.randn(*shape)


def _imag_init(init: str, d_state: int) -> torch.Tensor:
    """Im A of each of the d_state/2 modes at initialisation, (N2,), computed on the CPU."""
    n = torch.arange(d_state // 2, dtype=torch.float32, device="cpu")  # (N2,)
    if init == "diag-lin":  # A = -1/2 + i*pi*n (S4D-Lin)
        return math.pi * n
    if init == "diag-inv":  # A = -1/2 + i*N/pi*(N/(2n+1) - 1) (S4D-Inv)
        return d_state / math.pi * (d_state / (2 * n + 1) - 1)
    raise ResbenchError(f"S4ND init={init!r}: expected 'diag-lin' or 'diag-inv'")


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
