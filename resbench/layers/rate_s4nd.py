"""The rate-aware S4ND layer of resbench's models: the model's one rate, applied to every S4ND call."""

from __future__ import annotations

import torch

from resbench.layers.resolution_aware import ResolutionAware
from resbench.layers.s4nd import S4ND

__all__ = ["RateS4ND"]


class RateS4ND(ResolutionAware):
    """An S4ND layer whose step follows the model's input size (the S4ND "native" policy).

    The model calls `set_input_rate` with resolution.kernel_rates(train, input) before each forward,
    the same rate for every layer whatever its stage (a stage's pixel is 2^i input pixels at every
    size). `method` is passed to the layer ("auto", "toeplitz" or "fft"); all give the same result.
    """

    def __init__(self, s4nd: S4ND, method: str = "auto"):
        super().__init__()
        self.s4nd = s4nd
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, L1, L2) -> (B, H, L1, L2)
        return self.s4nd(x, rate=self.rate(), method=self.method)

    def prenorm_residual(self, x: torch.Tensor, norm: torch.nn.LayerNorm, overwrite: bool = False) -> torch.Tensor:
        """x + self(norm(x)), the norm over channels (see S4ND.prenorm_residual)."""
        return self.s4nd.prenorm_residual(x, norm, rate=self.rate(), method=self.method, overwrite=overwrite)

    def rate(self) -> tuple[float, ...]:
        return self.input_rate or (1.0,) * self.s4nd.dim  # no rate given: the layer's reference grid
