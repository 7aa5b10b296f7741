"""Resolution settings shared by every part of resbench: the one rate rule, the bandlimit setting."""

from __future__ import annotations

import math
import numbers

from resbench.errors import ResbenchError

__all__ = ["BANDLIMIT_NAMES", "kernel_rates", "check_alpha", "parse_bandlimit", "bandlimit_alpha"]

# Named bandlimit settings of a sweep cell: "on" (the alpha the model was trained with), "off" (no
# mask), "none" (the model has no bandlimit at all). Any other setting is an explicit alpha.
BANDLIMIT_NAMES = ("on", "off", "none")


def kernel_rates(train_size, test_size) -> tuple[float, ...]:
    """train / test per axis: how much a continuous kernel's step shrinks on the test grid.

    The one rate rule of every model and every plot. It is global: a feature map downsampled by 2^i
    has a pixel spacing of 2^i input pixels at every input size, so each stage of a multi-stage model
    runs at the same rate as its input (as the official S4ND-ConvNeXt passes one rate to all stages),
    not at the ratio of its own rounded-down sizes.
    """
    if len(train_size) != len(test_size):
        raise ValueError(f"kernel_rates: train size {tuple(train_size)} and test size {tuple(test_size)} "
                         "differ in dimensions")
    return tuple(t / s for t, s in zip(train_size, test_size))


def check_alpha(value, what: str = "bandlimit") -> float | None:
    """None (off) or a finite alpha in (0, 1]; bools are refused because True would read as alpha 1.

    alpha keeps the modes below alpha/2 cycles per reference step: 1 keeps everything up to the
    reference grid's Nyquist, so a larger value (or inf) would not be a bandlimit at all.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value <= 1):
        # `not (0 < v <= 1)` is also true for nan
        raise ResbenchError(f"{what}={value!r}: expected a number in (0, 1] (alpha) or None (off)")
    return float(value)


def parse_bandlimit(text, what: str = "--bandlimit", names=BANDLIMIT_NAMES[:2]) -> str:
    """A bandlimit setting as typed -> its canonical text: one of `names` (lower case) or an alpha
    written as Python writes the float (e.g. '0.3'), so equal settings key equal result rows."""
    word = str(text).strip().lower()
    if word in names:
        return word
    try:
        alpha = float(word)
    except ValueError:
        alpha = math.nan
    if not (0 < alpha <= 1):  # also refuses nan and inf, which float() reads from 'nan', 'inf'
        raise ResbenchError(f"{what} {text!r}: expected {', '.join(names)} or an alpha in (0, 1] such as 0.5")
    return repr(alpha)


def bandlimit_alpha(setting: str, trained: float | None) -> float | None:
    """The alpha a cell's layers run with: the trained one for "on", None for "off"/"none", else the number."""
    if setting == "on":
        return trained
    if setting in ("off", "none"):
        return None
    return float(setting)
