"""Config fields and layer builders that several model families share: the S4ND layer settings."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from resbench.errors import ResbenchError
from resbench.layers.s4nd import S4ND
from resbench.models.base import check_positive_int
from resbench.resolution import check_alpha

__all__ = ["S4NDFields", "s4nd_layer", "MASKS"]

MASKS = ("band", "random")  # the S4NDFields.mask values


@dataclasses.dataclass
class S4NDFields:
    """Settings of the S4ND layers a model contains (mixed into its config)."""
    d_state: int = 32  # SSM state size per axis (even: complex pairs)
    bandlimit: float | None = 0.5  # alpha of the bandlimit mask; None trains without it
    mask: str = "band"  # "band": the modes below alpha/2 cycles per step; "random": the control arm, a random
    # mask per layer and axis keeping as many modes per channel as the band mask at init (fixed by the seed)
    dt_min: float = 0.1  # dt range per reference step, as the official resolution config ([0.1, 1.0])
    dt_max: float = 1.0


def s4nd_layer(config: S4NDFields, d_model: int, l_max: Sequence[int], **kwargs) -> S4ND:
    """A bidirectional diag-lin S4ND layer from a config's S4ND settings; kwargs set its output part."""
    check_positive_int("d_state", config.d_state)
    check_alpha(config.bandlimit)
    if not 0 < config.dt_min <= config.dt_max:
        raise ResbenchError(f"dt_min={config.dt_min}, dt_max={config.dt_max}: expected 0 < dt_min <= dt_max")
    if config.mask not in MASKS:
        raise ResbenchError(f"mask={config.mask!r}: expected one of {', '.join(MASKS)}")
    if config.mask == "random" and config.bandlimit is None:
        raise ResbenchError("mask='random': expected a bandlimit alpha too (the random mask keeps as many modes "
                            "as the band mask at that alpha)")
    layer = S4ND(d_model, d_state=config.d_state, dim=len(l_max), l_max=list(l_max), bidirectional=True,
                 bandlimit=config.bandlimit, n_ssm=1, init="diag-lin", dt_min=config.dt_min, dt_max=config.dt_max,
                 **kwargs)
    if config.mask == "random":
        for kernel in layer.kernel:
            kernel.draw_random_mask(config.bandlimit)
    return layer
