"""The reader of resbench's own checkpoint format: every field's type and range checked against the weights
before a model is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from resbench.checkpoints.format import FORMAT, VERSION, Checkpoint, check_data_stats
from resbench.errors import ResbenchError
from resbench.statedicts import check_state_dict

__all__ = ["claims", "from_raw", "check_config_values"]


def claims(raw: Any) -> bool:
    """Whether a loaded object says it is a resbench checkpoint (the default reader takes every other too)."""
    return isinstance(raw, dict) and "format" in raw


def from_raw(raw: Any, path: Path, sha256: str) -> Checkpoint:
    """A validated Checkpoint; every failure is a ResbenchError naming the file and what was wrong."""
    ckpt = _validate(raw, path)
    ckpt.sha256 = sha256
    return ckpt


def _validate(raw: Any, path: Path) -> Checkpoint:
    from resbench.models import create_model, list_models

    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ResbenchError(f"{path}: not a resbench checkpoint (no format={FORMAT!r} field)")
    if raw.get("version") != VERSION:
        raise ResbenchError(f"{path}: checkpoint format version {raw.get('version')!r}, expected {VERSION}")
    for key, kind in (("model", str), ("config", dict), ("provenance", dict), ("state_dict", dict),
                      ("data_stats", dict)):
        if not isinstance(raw.get(key), kind):
            raise ResbenchError(f"{path}: field {key!r} missing or not a {kind.__name__}")
    if raw["model"] not in list_models():
        raise ResbenchError(f"{path}: unknown model {raw['model']!r} (`resbench models` lists the known ones)")
    sd = raw["state_dict"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise ResbenchError(f"{path}: state_dict holds values that are not tensors")
    check_config_values(raw["config"], raw["provenance"], sd, path)
    try:
        with torch.device("meta"):  # shapes only: a config whose tensors would not fit in memory allocates nothing
            model = create_model(raw["model"], **raw["config"])
    except ResbenchError as e:
        raise ResbenchError(f"{path}: invalid config: {e}") from None
    except (TypeError, ValueError, ArithmeticError, RuntimeError) as e:  # a value of the wrong type or size
        raise ResbenchError(f"{path}: invalid config ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    check_state_dict(model.state_dict(), sd, f"{path}: state dict", f"model {raw['model']!r}")
    stats = raw["data_stats"]
    if not (isinstance(stats.get("mean"), (list, tuple)) and isinstance(stats.get("std"), (list, tuple))):
        raise ResbenchError(f"{path}: data_stats needs 'mean' and 'std' lists")
    stats = check_data_stats(str(path), "data_stats", stats["mean"], stats["std"], model.config.in_chans)
    return Checkpoint(model=raw["model"], config=raw["config"], provenance=raw["provenance"],
                      data_stats=stats,
                      state_dict=sd, path=path, extra=raw.get("extra", {}))


def check_config_values(config: dict, provenance: dict, sd: dict, path: Path) -> None:
    """Refuse config values no weights of this file could fit, before anything is built: an integer larger
    than the file's weights hold elements (a d_state of 10**12), a non-finite float, a training size past
    the test-size limits, or a provenance train_res that is not the config's (the rates follow the config)."""
    import math

    from resbench.models.base import train_hw
    from resbench.resolution import MAX_LENGTH, MAX_SIZE

    bound = max(4096, sum(v.numel() for v in sd.values()))

    def walk(key, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{key}.{k}" if str(k).isidentifier() else f"{key}.{ascii(k)}", v)  # a key is one line
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(key, v)
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > bound:
            raise ResbenchError(f"{path}: config {key}={value}: larger than the {bound} elements its weights hold")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ResbenchError(f"{path}: config {key}={value}: expected a finite number")

    for key, value in config.items():
        if key != "train_res":
            walk(str(key) if str(key).isidentifier() else ascii(key), value)
    try:
        size = train_hw(config.get("train_res", 14))
    except ResbenchError as e:
        raise ResbenchError(f"{path}: invalid config: {e}") from None
    if max(size) > (MAX_LENGTH if len(size) == 1 else MAX_SIZE):
        raise ResbenchError(f"{path}: config train_res={config['train_res']}: past the largest size, "
                            f"{MAX_LENGTH} samples or {MAX_SIZE} px per side")
    given = provenance.get("train_res")
    if given is not None:
        try:
            same = train_hw(given) == size
        except ResbenchError:
            same = False
        if not same:
            raise ResbenchError(f"{path}: provenance train_res={given!r} differs from config train_res="
                                f"{config.get('train_res')!r} (the model's rates follow the config)")
