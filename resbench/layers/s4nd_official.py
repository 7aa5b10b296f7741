"""Official S4ND options and weights (state-spaces/s4) read into resbench's S4ND layer, or refused by name.

Options the layer cannot reproduce exactly are refused in one line, never approximated.
"""

from __future__ import annotations

from resbench.errors import ResbenchError
from resbench.statedicts import check_state_dict

__all__ = ["layer_from_official", "layer_from_state_spaces"]

# Official options read into the layer (`rank` only by the DPLR kernel).
# `linear`: True drops activation, dropout and output linear. The official class default is True
# but every image config sets it (false for the isotropic model, true inside S4ND-ConvNeXt); an absent
# key reads as false here, and a state dict that lacks the output linear is refused by its keys.
# `channels`: output channels per SSM (C, bidirectional 2C, kernel channels), mixed back by the output linear.
CONFIG_KEYS = {"d_model", "d_state", "l_max", "dim", "bidirectional", "bandlimit", "n_ssm", "init",
               "activation", "final_act", "transposed", "dt_min", "dt_max", "dropout", "rank", "linear", "channels"}
# Official options that do not change an evaluated layer's output: training settings (learning
# rates, weight decay, dropout tying), start-up only (weight initialiser, C init, logging), what
# forward returns besides y.
# `contract_version` only reorders the einsums that average over the tensor rank `trank`; with
# trank 1 (checked below) both versions compute the same convolution.
NO_EFFECT_KEYS = {"_name_", "lr", "wd", "tie_dropout", "verbose", "initializer", "deterministic",
                  "return_state", "contract_version", "backend"}  # backend: which Cauchy/Vandermonde code
# Official options that change the result: accepted only at the value this layer reproduces.
# (value required, the official default when the key is absent)
FIXED_KEYS = {"dt_transform": ("exp", "exp"), "trank": (1, 1), "weight_norm": (False, False),
              "ln": (False, False), "hyper_act": (None, None), "out_channels": (None, None)}
# Official kernel registry names -> this layer's kernels (the official `mode` is the older key).
KERNEL_NAMES = {"diag": "diag", "s4d": "diag", "dplr": "dplr", "nplr": "dplr", "s4": "dplr"}
# `disc` per kernel: the diagonal kernel here is zero-order hold only; the official DPLR kernel is
# bilinear whatever `disc` says (only its diagonal parent class reads it), so every official value is.
DISC = {"diag": ("zoh",), "dplr": ("zoh", "bilinear", "dss")}


def _kernel_kind(config: dict) -> str:
    """Pop `mode`, `kernel` and `disc` from config; the layer's kernel ("diag" or "dplr")."""
    mode = config.pop("mode", "dplr")  # the official defaults: kernel=None, mode="dplr"; kernel wins if set
    name = config.pop("kernel", None)
    name = mode if name is None else name
    if name not in KERNEL_NAMES:
        raise ResbenchError(f"official S4ND option kernel={name!r} is not supported "
                            f"(expected one of {', '.join(KERNEL_NAMES)})")
    kind = KERNEL_NAMES[name]
    disc = config.pop("disc", "zoh")
    if disc not in DISC[kind]:
        raise ResbenchError(f"official S4ND option disc={disc!r} is not supported with kernel={name!r} "
                            f"(expected {' or '.join(map(repr, DISC[kind]))})")
    return kind


def _check_keys(config: dict) -> None:
    unknown = sorted(set(config) - (CONFIG_KEYS | NO_EFFECT_KEYS | set(FIXED_KEYS)))
    if unknown:
        raise ResbenchError(f"official S4ND config option {unknown[0]!r} is not supported")
    for key, (want, default) in FIXED_KEYS.items():
        got = config.get(key, default)
        if got != want:
            raise ResbenchError(f"official S4ND option {key}={got!r} is not supported (expected {want!r})")
    if "d_model" not in config:
        raise ResbenchError("official S4ND config: 'd_model' is missing")


def layer_from_official(cls, config: dict):
    """Build a `cls` layer (initial weights) from an official S4ND config, e.g. before loading a whole model."""
    config = dict(config)
    kind = _kernel_kind(config)
    _check_keys(config)
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
               kernel=kind, rank=config.get("rank", 1), linear=bool(config.get("linear", False)),
               channels=config.get("channels", 1))


def layer_from_state_spaces(cls, config: dict, state_dict: dict):
    """Build a `cls` layer from an official S4ND config and load its state dict by name.

    A DPLR layer's `rank` comes from the config, else from the shape of P.
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
