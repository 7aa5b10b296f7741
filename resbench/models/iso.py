"""Isotropic backbones of the S4ND paper's resolution experiment: S4ND-ISO and its Conv2D twin."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn as nn
from timm.layers import LayerNorm2d

from resbench.errors import ResbenchError
from resbench.layers.s4nd import S4ND
from resbench.models.base import ModelConfig, ResModel, check_positive_int, policies
from resbench.resolution import check_alpha
from resbench.models.registry import register_model

__all__ = ["IsoConfig", "S4NDFields", "S4NDIsoConfig", "IsoModel", "S4NDIso", "Conv2dIso",
           "RateS4ND", "PreNormBlock", "FastDropout", "glu_mixer"]


@dataclasses.dataclass
class IsoConfig(ModelConfig):
    d_model: int = 64  # channels of every block
    n_layers: int = 4  # residual blocks
    dropout: float = 0.1  # on each block's output, before the residual sum


@dataclasses.dataclass
class S4NDFields:
    """Settings of the S4ND layers a model contains (mixed into its config)."""
    d_state: int = 32  # SSM state size per axis (even: complex pairs)
    bandlimit: float | None = 0.5  # alpha of the bandlimit mask; None trains without it
    dt_min: float = 0.1  # dt range per reference step, as the official resolution config ([0.1, 1.0])
    dt_max: float = 1.0


@dataclasses.dataclass
class S4NDIsoConfig(S4NDFields, IsoConfig):
    pass


def s4nd_layer(config: S4NDFields, d_model: int, l_max: Sequence[int], **kwargs) -> S4ND:
    """A bidirectional diag-lin S4ND layer from a config's S4ND settings; kwargs set its output part."""
    check_positive_int("d_state", config.d_state)
    check_alpha(config.bandlimit)
    if not 0 < config.dt_min <= config.dt_max:
        raise ResbenchError(f"dt_min={config.dt_min}, dt_max={config.dt_max}: expected 0 < dt_min <= dt_max")
    return S4ND(d_model, d_state=config.d_state, dim=2, l_max=list(l_max), bidirectional=True,
                bandlimit=config.bandlimit, n_ssm=1, init="diag-lin", dt_min=config.dt_min, dt_max=config.dt_max,
                **kwargs)


class RateS4ND(nn.Module):
    """An S4ND layer whose step follows the model's input size (the S4ND "native" policy).

    Resolution-aware: the model calls `set_input_rate` with resolution.kernel_rates(train, input)
    before each forward, the same rate for every layer whatever its stage. `method` is passed to
    the layer ("auto", "toeplitz" or "fft"); all give the same result.
    """

    def __init__(self, s4nd: S4ND, method: str = "auto"):
        super().__init__()
        self.s4nd = s4nd
        self.method = method
        self.rate = (1.0,) * s4nd.dim  # per axis; the model's training size until a model sets it

    def set_input_rate(self, rate: Sequence[float]) -> None:
        self.rate = tuple(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, L1, L2) -> (B, H, L1, L2)
        return self.s4nd(x, rate=self.rate, method=self.method)


def glu_mixer(spatial: nn.Module, d_model: int) -> nn.Sequential:
    """spatial conv -> GELU -> per-pixel linear d -> 2d -> GLU: the output part of an S4ND layer."""
    return nn.Sequential(spatial, nn.GELU(), nn.Conv2d(d_model, 2 * d_model, 1), nn.GLU(dim=1))


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
    """x + dropout(mixer(LayerNorm over channels(x)))."""

    def __init__(self, d_model: int, mixer: nn.Module, dropout: float):
        super().__init__()
        self.norm = LayerNorm2d(d_model)
        self.mixer = mixer
        self.dropout = FastDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, H, W)
        return x + self.dropout(self.mixer(self.norm(x)))


class IsoModel(ResModel):
    """1x1 stem -> n_layers prenorm residual blocks at full resolution -> LayerNorm, spatial mean, linear."""

    config_class = IsoConfig

    def __init__(self, config: IsoConfig):
        super().__init__(config)
        d = check_positive_int("d_model", config.d_model)
        check_positive_int("n_layers", config.n_layers)
        if not 0 <= config.dropout < 1:
            raise ResbenchError(f"dropout={config.dropout}: expected a number in [0, 1)")
        self.stem = nn.Conv2d(config.in_chans, d, 1)
        self.blocks = nn.Sequential(*[PreNormBlock(d, self.make_mixer(), config.dropout)
                                      for _ in range(config.n_layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.num_classes)

    def make_mixer(self) -> nn.Module:
        """One block's spatial mixer, (B, D, H, W) -> (B, D, H, W)."""
        raise NotImplementedError

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last memory: the norms and the per-pixel linears read it without copies, and
        # S4ND hands its output back channel-innermost. Eval at 28x28 is about 1/3 faster this way.
        x = self.blocks(self.stem(x).contiguous(memory_format=torch.channels_last))  # (B, D, H, W)
        x = self.norm(x.movedim(1, -1)).mean(dim=(1, 2))  # (B, D)
        return self.head(x)  # (B, num_classes)


@register_model("s4nd_iso")
class S4NDIso(IsoModel):
    """The isotropic S4ND model: each block mixes space with a bidirectional S4ND layer (GLU output)."""

    config_class = S4NDIsoConfig
    POLICIES = policies("rescale each S4ND step per axis: rate = train/test feature-map size, same continuous kernel")
    has_bandlimit = True

    def make_mixer(self) -> nn.Module:
        return RateS4ND(s4nd_layer(self.config, self.config.d_model, self.train_size,
                                   activation="gelu", final_act="glu"))


@register_model("conv2d_iso")
class Conv2dIso(IsoModel):
    """The Conv2D baseline: the same backbone with a dense 3x3 conv in place of S4ND."""

    POLICIES = policies("the same discrete 3x3 kernels slide over the bigger (or smaller) grid")

    def make_mixer(self) -> nn.Module:
        d = self.config.d_model
        return glu_mixer(nn.Conv2d(d, d, 3, padding=1), d)
