"""Official S4ND isotropic classifiers (state-spaces/s4, `model._name_: model` with S4ND layers) as resbench
checkpoints: the options resbench reproduces are read, anything else is refused naming the option."""

from __future__ import annotations

from pathlib import Path

import torch

from resbench.checkpoints.format import Checkpoint
from resbench.checkpoints.lightning import import_stats, is_official
from resbench.checkpoints.own import check_config_values
from resbench.errors import ResbenchError
from resbench.statedicts import check_state_dict

__all__ = ["claims", "official_checkpoint", "OFFICIAL_STATS"]

# Normalisation of the official dataloaders (src/dataloaders/basic.py), by dataset and grayscale flag.
OFFICIAL_STATS = {
    ("cifar", True): {"mean": [122.6 / 255.0], "std": [61.0 / 255.0]},
    ("cifar", False): {"mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.243, 0.261]},
}
# official dataset names -> resbench's
_DATASETS = {"cifar": "cifar10"}

def _name(node) -> str | None:
    """A config node's registry name: the string itself, or its `_name_`."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        name = node.get("_name_")
        if name is not None and not isinstance(name, str):
            raise _refuse(f"_name_={name!r}: expected a registry name (text)")
        return name
    return None


def _refuse(what: str) -> ResbenchError:
    return ResbenchError(f"official checkpoint: {what}")


def _check_backbone(hp: dict) -> dict:
    """The official model options resbench reproduces; anything else is refused, naming the option."""
    model = hp["model"]
    if _name(model) not in ("model", None):
        raise _refuse(f"model._name_={_name(model)!r} is not supported (expected the isotropic 'model' backbone)")
    if _name(hp.get("encoder")) != "linear":
        raise _refuse(f"encoder={hp.get('encoder')!r} is not supported (expected 'linear')")
    decoder = hp.get("decoder")
    mode = decoder.get("mode", "pool") if isinstance(decoder, dict) else "pool"
    if _name(decoder) != "nd" or mode != "pool":
        raise _refuse(f"decoder={decoder!r} is not supported (expected the 'nd' decoder in 'pool' mode)")
    if model.get("bidirectional", False):
        raise _refuse("model.bidirectional=True (a reversed copy of every layer) is not supported")
    if model.get("n_repeat", 1) != 1:
        raise _refuse(f"model.n_repeat={model.get('n_repeat')!r} is not supported (expected 1)")
    residual = model.get("residual")
    weights = (residual.get("alpha", 1.0), residual.get("beta", 1.0)) if isinstance(residual, dict) else (1.0, 1.0)
    if _name(residual) not in ("R", "residual") or weights != (1.0, 1.0):
        raise _refuse(f"model.residual={residual!r} is not supported (expected 'R')")
    pool = model.get("pool")
    if pool is not None and (_name(pool) != "pool" or pool.get("stride", 1) != 1 or pool.get("expand") is not None):
        raise _refuse(f"model.pool={pool!r} is not supported (expected stride 1, expand null)")
    norm = model.get("norm")
    norm_name = "none" if norm is None else _name(norm)
    if norm_name not in ("layer", "batch", "none") or (isinstance(norm, dict) and set(norm) - {"_name_"}):
        raise _refuse(f"model.norm={norm!r} is not supported (expected layer, batch or none, no options)")
    layer = model.get("layer")
    if isinstance(layer, list):
        if len(layer) != 1:
            raise _refuse(f"model.layer holds {len(layer)} layer kinds (expected one)")
        layer = layer[0]
    if not isinstance(layer, dict) or _name(layer) != "s4nd":
        raise _refuse(f"model.layer._name_={_name(layer)!r} is not supported (expected 's4nd')")
    return {"layer": layer, "norm": norm_name}


def _check_values(hp: dict, sd: dict) -> None:
    """The types and ranges of the options read below, each refused in one line naming its key: sections
    that are not dicts, sizes that are not positive integers, more layers than the weights hold, a training
    grid past the largest test size, a resolution factor that is not a positive finite number."""
    import math

    from resbench.resolution import MAX_LENGTH

    for key in ("loader", "dataset", "train"):
        if hp.get(key) is not None and not isinstance(hp[key], dict):
            raise _refuse(f"{key}={hp[key]!r}: expected a section of options (a dict)")
    model, loader = hp["model"], hp.get("loader") or {}
    layers = {k.split(".")[2] for k in sd if isinstance(k, str) and k.startswith("model.layers.") and k.count(".") > 2}
    bounds = {"d_model": max([4096] + [v.numel() for v in sd.values()]), "n_layers": max(1, len(layers))}
    for key, bound in bounds.items():
        value = model.get(key)
        if key in model and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound):
            raise _refuse(f"model.{key}={value!r}: expected a positive integer, at most {bound} "
                          f"(what the weights hold)")
    for key in ("prenorm", "transposed"):
        if not isinstance(model.get(key, False), bool):
            raise _refuse(f"model.{key}={model[key]!r}: expected true or false")
    rate = loader.get("train_resolution")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate)
                             or rate <= 0):
        raise _refuse(f"loader.train_resolution={rate!r}: expected a positive number")
    size = loader.get("img_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_LENGTH):
        raise _refuse(f"loader.img_size={size!r}: expected a positive integer, at most {MAX_LENGTH}")


def _train_grid(hp: dict, axes: int, rate: float) -> list[int]:
    """The training grid the official loader made: img_size / rate (resized), or with img_size null the
    dataset's own size (after its `rescale`) subsampled with stride `rate`, for the datasets resbench knows."""
    img_size = (hp.get("loader") or {}).get("img_size")
    if isinstance(img_size, int):
        return [int(round(img_size / rate))] * axes
    name = _DATASETS.get(_name(hp.get("dataset") or {}))
    if name is None:
        raise _refuse("loader.img_size is not set and the dataset's size is not known to resbench, so the "
                      "training size is unknown: pass --train-res")
    from resbench.data import dataset_info

    native = dataset_info(name).native_size
    rescale = (hp.get("dataset") or {}).get("rescale") or 1  # the official CIFAR option: max-pooled by this factor
    if isinstance(rescale, bool) or not isinstance(rescale, int) or rescale < 1 or any(n % rescale for n in native):
        raise _refuse(f"dataset.rescale={rescale!r}: expected a positive integer dividing {native}")
    native = [n // rescale for n in native]
    if len(native) != axes or rate != int(rate) or any(n % int(rate) for n in native):
        raise _refuse(f"loader.img_size is not set and {name}'s {'x'.join(map(str, native))} grid does not "
                      f"subsample to {axes} axes at train_resolution {rate!r}: pass --train-res")
    return [n // int(rate) for n in native]


def claims(raw) -> bool:
    """Every official checkpoint the S4ND-ConvNeXt reader does not take: refused here by name when not the
    isotropic backbone."""
    return is_official(raw)


def _weights(raw: dict, layer: dict) -> dict:
    """The state dict's tensors, with the keys the classifier needs; the DPLR rank read from P when unset."""
    sd = {k: v for k, v in raw["state_dict"].items() if isinstance(v, torch.Tensor)}
    if len(sd) != len(raw["state_dict"]):
        raise _refuse("state_dict holds values that are not tensors")
    for key in ("encoder.0.weight", "decoder.0.output_transform.weight"):
        if key not in sd:
            raise _refuse(f"state_dict has no {key!r} (not an isotropic S4ND classifier with a linear encoder "
                          f"and a pooling decoder)")
    p_key = "model.layers.0.layer.kernel.0.P"
    if "rank" not in layer and p_key in sd:  # the DPLR low-rank size, when the config does not say
        layer["rank"] = int(sd[p_key].shape[0])
    return sd


def _data_stats(hp: dict, in_chans: int, mean, std) -> dict:
    """The normalisation: --mean/--std when given, else the official loader's for its dataset."""
    data_hp = hp.get("dataset") or {}
    name = _name(data_hp)
    return import_stats(name, OFFICIAL_STATS.get((name, bool(data_hp.get("grayscale", False)))), in_chans, mean, std)


def _config(hp: dict, checked: dict, layer: dict, sd: dict, train_res) -> dict:
    """The `s4nd_official` model config: sizes from the weights, options from the official model section."""
    model_hp, l_max = hp["model"], layer["l_max"]
    train_rate = (hp.get("loader") or {}).get("train_resolution", 1) or 1
    if train_res is None:
        train_res = _train_grid(hp, len(l_max), train_rate)
    train_res = [int(train_res)] * len(l_max) if isinstance(train_res, int) else [int(s) for s in train_res]
    return {"in_chans": int(sd["encoder.0.weight"].shape[1]),
            "num_classes": int(sd["decoder.0.output_transform.weight"].shape[0]),
            "train_res": train_res if len(set(train_res)) > 1 or len(train_res) != 2 else train_res[0],
            "d_model": int(model_hp.get("d_model", sd["encoder.0.weight"].shape[0])),
            "n_layers": int(model_hp.get("n_layers", 1)), "dim": len(l_max),
            "prenorm": bool(model_hp.get("prenorm", True)), "norm": checked["norm"],
            "transposed": bool(model_hp.get("transposed", False)), "layer": layer,
            "train_rate": float(train_rate), "bandlimit": checked["layer"].get("bandlimit")}


def _build_meta(config: dict):
    """The model on the meta device: shapes only, checked against the weights, nothing is allocated."""
    from resbench.models import create_model

    try:
        with torch.device("meta"):
            return create_model("s4nd_official", **config)
    except ResbenchError as e:
        raise _refuse(str(e)) from None
    except (TypeError, ValueError, ArithmeticError, RuntimeError) as e:  # an option of the wrong type or size
        raise _refuse(f"model.layer options: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None


def _provenance(raw: dict, config: dict, path: Path, sha256: str, dataset: str | None) -> dict:
    hp = raw["hyper_parameters"]
    data_hp = hp.get("dataset") or {}
    official_name = _name(data_hp)
    return {
        "dataset": dataset or _DATASETS.get(official_name, official_name),
        "train_res": config["train_res"], "schedule": None, "epochs": raw.get("epoch"),
        "seed": (hp.get("train") or {}).get("seed"), "bandlimit": config["bandlimit"],
        "native_accuracy": None, "wall_time_s": None,
        "versions": {"pytorch-lightning": raw.get("pytorch-lightning_version")},
        "official": {"file": str(path), "sha256": sha256, "epoch": raw.get("epoch"),
                     "global_step": raw.get("global_step"), "train_rate": config["train_rate"],
                     "dataset": official_name, "grayscale": bool(data_hp.get("grayscale", False)), "config": hp},
    }


def official_checkpoint(raw: dict, path: Path, sha256: str, train_res=None, dataset: str | None = None,
                        mean=None, std=None) -> Checkpoint:
    """An official checkpoint (read by read_official) as a resbench Checkpoint of model `s4nd_official`."""
    hp = raw["hyper_parameters"]
    checked = _check_backbone(hp)
    layer = {k: v for k, v in checked["layer"].items() if k not in ("_name_", "bandlimit")}
    sd = _weights(raw, layer)
    _check_values(hp, sd)
    l_max = layer.get("l_max")
    if not isinstance(l_max, (list, tuple)) or not l_max or not all(isinstance(n, int) and n > 0 for n in l_max):
        raise _refuse(f"model.layer.l_max={l_max!r}: expected one positive length per axis (with l_max null the "
                      f"official kernel follows the input and records no training grid)")
    config = _config(hp, checked, layer, sd, train_res)
    stats = _data_stats(hp, config["in_chans"], mean, std)
    check_config_values(config, {}, sd, path)
    own = _build_meta(config).state_dict()
    check_state_dict(own, sd, "official checkpoint: state_dict", "its config")
    return Checkpoint(model="s4nd_official", config=config, provenance=_provenance(raw, config, path, sha256, dataset),
                      data_stats=stats, state_dict={k: sd[k] for k in own}, path=path, sha256=sha256)
