"""Continuous-kernel CNN (CKConv / FlexConv style) for signals and images: depthwise kernels are an MLP of position,
sampled per grid."""

from __future__ import annotations

import dataclasses

import torch.nn as nn

from resbench.errors import ResbenchError
from resbench.layers.blocks import glu_mixer
from resbench.layers.ckconv import ContinuousDepthwiseConv, default_taps
from resbench.models.base import check_positive_int, policies
from resbench.models.iso import IsoConfig, IsoModel
from resbench.models.registry import register_model

__all__ = ["CKConvConfig", "CKConv"]


@dataclasses.dataclass
class CKConvConfig(IsoConfig):
    kernel_size: int | None = None  # taps per axis at train_res, odd >= 3; None: the odd number nearest half the
    # smaller side, signals too (L=400: 201 taps; 1-d kernels over FFT_TAPS run through an FFT, so long ones are cheap)
    kernel_hidden: int = 32  # width of the kernel MLP's two hidden layers
    kernel_omega: float = 10.0  # SIREN frequency scale omega_0 of the MLP's sine activations


@register_model("ckconv")
class CKConv(IsoModel):
    """CKConv-style model: the isotropic backbone with continuous depthwise kernels + pointwise GLU mixing, for
    signals (train_res [L]) and images."""

    config_class = CKConvConfig
    adaptive_kernels = True
    DIMS = (1, 2)
    POLICIES = policies("resample each MLP kernel on the test grid: taps x test/train per axis over the same extent, "
                        "values x the product of train/test over the axes")

    def make_mixer(self) -> nn.Module:
        config = self.config
        taps = default_taps(self.train_size) if config.kernel_size is None else config.kernel_size
        if isinstance(taps, bool) or not isinstance(taps, int) or taps < 3 or taps % 2 == 0:
            raise ResbenchError(f"ckconv kernel_size={config.kernel_size!r}: expected an odd integer >= 3 or None")
        check_positive_int("kernel_hidden", config.kernel_hidden)
        if not config.kernel_omega > 0:
            raise ResbenchError(f"ckconv kernel_omega={config.kernel_omega!r}: expected a positive number")
        d = config.d_model
        conv = ContinuousDepthwiseConv(d, taps, self.train_size, config.kernel_hidden, config.kernel_omega)
        return glu_mixer(conv, d, self.dims)
