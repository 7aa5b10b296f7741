"""Image evaluation as timm does it: its own eval transform (resize the shorter side to size / crop_pct, centre
crop), and the normalisation presets timm names."""

from __future__ import annotations

from resbench.errors import ResbenchError

__all__ = ["NORM_PRESETS", "norm_preset", "INTERPOLATIONS", "eval_transform"]

# name -> (mean, std) per RGB channel, timm's constants (timm.data.constants)
NORM_PRESETS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos", "box", "hamming")


def norm_preset(name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) of a preset name (any case), None when the text is not one."""
    return NORM_PRESETS.get(str(name).strip().lower())


def eval_transform(size: tuple[int, int], crop_pct: float | None = None, interpolation: str | None = None,
                   mean=None, std=None, model=None):
    """timm's evaluation transform for a PIL image at `size` (h, w): resize the shorter side to size / crop_pct,
    centre crop to size, to a tensor, normalise. Unset settings come from `model`'s pretrained config (timm's
    resolve_data_config), else crop_pct 1.0 and bilinear; mean/std from the model, else imagenet's."""
    from timm.data import create_transform, resolve_data_config

    if crop_pct is not None and not 0 < crop_pct <= 1:
        raise ResbenchError(f"--crop-pct {crop_pct}: expected a fraction in (0, 1]")
    if interpolation is not None and interpolation not in INTERPOLATIONS:
        raise ResbenchError(f"--interpolation {interpolation!r}: expected one of {', '.join(INTERPOLATIONS)}")
    args = {"input_size": (3, *size), "crop_pct": crop_pct, "interpolation": interpolation, "mean": mean, "std": std}
    config = resolve_data_config({k: v for k, v in args.items() if v is not None}, model=model)
    if model is None:  # without a model timm assumes 0.875: resbench's default is the whole image
        config["crop_pct"] = 1.0 if crop_pct is None else crop_pct
        config["interpolation"] = interpolation or "bilinear"
    return create_transform(**config, is_training=False)
