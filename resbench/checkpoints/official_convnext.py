"""Official S4ND-ConvNeXt checkpoints (`model._name_: timm/convnext_*`) as resbench checkpoints.

The official registry names fix depths and dims; the model section holds the options of the official
`ConvNeXt` class, with the shared S4ND options in `layer` broadcast into the stem's (`stem_layer`) and
each stage's (`stage_layers`) as the official class merges them. Options that change an evaluated
model's output are reproduced or refused by name; training-only options are ignored.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from resbench.checkpoints.format import Checkpoint
from resbench.checkpoints.lightning import import_stats, is_official, plain_config
from resbench.errors import ResbenchError
from resbench.statedicts import check_state_dict

__all__ = ["CONVNEXT_NAMES", "claims", "convnext_checkpoint", "summary", "DATA_STATS"]

# official registry name -> (depths, dims)
CONVNEXT_NAMES = {
    "timm/convnext_micro": ([3, 3, 3, 3], [64, 128, 256, 512]),
    "timm/convnext_tiny": ([3, 3, 9, 3], [96, 192, 384, 768]),
    "timm/convnext_small": ([3, 3, 27, 3], [96, 192, 384, 768]),
    "timm/convnext_base": ([3, 3, 27, 3], [128, 256, 512, 1024]),
    "timm/convnext_tiny_3d": ([3, 3, 9, 3], [96, 192, 384, 768]),  # ConvNeXt3D (video)
}
# Normalisation of the official dataloaders, on the [0, 1] scale: ImageNet uses timm's create_transform
# defaults; HMDB-51 normalises 0..255 frames with these means and stds times 255.
DATA_STATS = {"imagenet": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
              "hmdb51": {"mean": [110.2 / 255, 100.64 / 255, 96.0 / 255],
                         "std": [58.14765 / 255, 56.46975 / 255, 55.332195 / 255]}}
_DATASETS = {"imagenet": "imagefolder"}  # official dataset -> the resbench reader of its files

# model options that change the output, with the official class default; `depths`/`dims` are the official
# class's own arguments (a registry entry fixes them, a modified one may pass them)
_COMMON = {"in_chans": 3, "num_classes": 1000, "stem_channels": 8, "stem_type": "patch", "stem_l_max": None,
           "downsample_type": "patch", "downsample_act": False, "downsample_glu": False, "custom_ln": False,
           "head_norm_first": False, "ls_init_value": 1e-6, "layer": None, "stem_layer": None,
           "stage_layers": None, "depths": None, "dims": None}


@dataclasses.dataclass(frozen=True)
class _Family:
    model: str  # the resbench model
    size_key: str  # the official option holding the grid every l_max is set from
    options: dict  # options that change the output -> official default
    fixed: dict  # options accepted only at this value
    no_effect: frozenset  # training-only options (stochastic depth, dropout, init) and the class name


_NO_EFFECT = frozenset({"_name_", "drop_path_rate", "drop_head", "head_init_scale", "pretrained"})
_2D = _Family("s4nd_official_convnext", "img_size",
              {**_COMMON, "img_size": None, "patch_size": 4, "conv_mlp": False},
              {"output_stride": 32, "global_pool": "avg", "norm_layer": None}, _NO_EFFECT)
# conv_mlp needs a 3-d ConvMlp the official code lacks; factor_3d factorises convs resbench does not build
_3D = _Family("s4nd_official_convnext3d", "video_size",
              {**_COMMON, "video_size": None, "spatial_patch_size": 4, "tempor_patch_size": 4,
               "block_tempor_kernel": 3, "temporal_stage_strides": None},
              {"output_spatial_stride": 32, "norm_layer": None, "conv_mlp": False, "factor_3d": False},
              _NO_EFFECT | {"drop_mlp"})


def _family(name: str) -> _Family:
    return _3D if name.endswith("_3d") else _2D


def _refuse(what: str) -> ResbenchError:
    return ResbenchError(f"official checkpoint: {what}")


def _merge(base: dict | None, override, where: str):
    """The official broadcast (OmegaConf.merge of the shared layer and a per-place dict); None stays None."""
    if base is None:
        return override
    if override is None:
        return dict(base)
    if not isinstance(override, dict):
        raise _refuse(f"model.{where}={override!r}: expected a dict of S4ND options")
    return {**base, **override}


def _check_layer(options, where: str) -> None:
    if options is None:
        return
    if not isinstance(options, dict) or options.get("_name_") != "s4nd":
        name = options.get("_name_") if isinstance(options, dict) else options
        raise _refuse(f"model.{where} layer {name!r} is not supported (expected '_name_: s4nd')")
    if options.get("transposed", True) is not True:
        raise _refuse(f"model.{where}.transposed={options['transposed']!r} is not supported (the ConvNeXt runs "
                      f"its layers channels first)")


def _model_options(model: dict) -> dict:
    """The model section with the official defaults filled in; unknown or unreproducible options refused."""
    fam = _family(model["_name_"])
    for key in model:
        if key not in fam.options and key not in fam.no_effect and key not in fam.fixed:
            raise _refuse(f"model.{key} is not supported by the S4ND-ConvNeXt import")
    for key, want in fam.fixed.items():
        if model.get(key, want) != want:
            raise _refuse(f"model.{key}={model[key]!r} is not supported (expected {want!r})")
    opts = {key: model.get(key, default) for key, default in fam.options.items()}
    from resbench.models.official_convnext import STEMS  # the model modules import timm: only when needed
    from resbench.models.official_convnext3d import STEMS_3D

    stems = STEMS_3D if fam is _3D else STEMS
    if opts["stem_type"] not in stems:
        raise _refuse(f"model.stem_type={opts['stem_type']!r} is not supported (expected one of {', '.join(stems)})")
    depths, dims = CONVNEXT_NAMES[model["_name_"]]
    opts["depths"], opts["dims"] = list(opts["depths"] or depths), list(opts["dims"] or dims)
    if opts["layer"] is not None and opts["stage_layers"] is None:
        raise _refuse("model.layer is set but model.stage_layers is not (the official model needs one per stage)")
    stages = opts["stage_layers"] if opts["stage_layers"] is not None else [None] * 4
    if not isinstance(stages, list) or len(stages) != 4:
        raise _refuse(f"model.stage_layers={stages!r}: expected one entry per stage (4)")
    opts["stage_layers"] = [_merge(opts["layer"], s, f"stage_layers[{i}]") for i, s in enumerate(stages)]
    opts["stem_layer"] = _merge(opts["layer"], opts["stem_layer"], "stem_layer")
    for i, s in enumerate(opts["stage_layers"]):
        _check_layer(s, f"stage_layers[{i}]")
    if opts["stem_type"] != "patch":
        _check_layer(opts["stem_layer"], "stem_layer")
    axes, grid = (3, opts["video_size"]) if fam is _3D else (2, opts["img_size"])
    grid = [grid] * axes if isinstance(grid, int) else grid
    if not (isinstance(grid, list) and len(grid) == axes and all(isinstance(v, int) and v > 0 for v in grid)):
        raise _refuse(f"model.{fam.size_key}={grid!r}: expected the size the layers' l_max come from "
                      f"({axes} positive lengths)")
    opts[fam.size_key] = grid
    return opts


def _bandlimit(opts: dict):
    """The one bandlimit alpha of every S4ND layer (resbench's sweep sets one alpha for the whole model)."""
    places = [(f"stage_layers[{i}]", s) for i, s in enumerate(opts["stage_layers"]) if s is not None]
    if opts["stem_type"] != "patch":
        places.append(("stem_layer", opts["stem_layer"]))
    values = {repr(s.get("bandlimit")): s.get("bandlimit") for _, s in places}
    if len(values) > 1:
        raise _refuse(f"S4ND layers with different bandlimits ({', '.join(sorted(values))}) are not supported "
                      f"(expected one alpha for the model)")
    return next(iter(values.values()), None)


def _state_dict(raw: dict) -> dict:
    """The official module's weights: the LightningModule's `model.*` entries, prefix removed."""
    sd = raw["state_dict"]
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise _refuse("state_dict holds values that are not tensors")
    other = sorted(k for k in sd if not k.startswith("model."))
    if other:
        raise _refuse(f"state_dict entry {other[0]!r} is not supported (the ConvNeXt configs use no encoder or "
                      f"decoder weights)")
    return {k[len("model."):]: v for k, v in sd.items()}


def _check_io(hp: dict) -> None:
    for part, allowed in (("encoder", (None, "id", [])), ("decoder", (None, "id", []))):
        node = hp.get(part)
        name = node.get("_name_") if isinstance(node, dict) and set(node) == {"_name_"} else node
        if name not in allowed:
            raise _refuse(f"{part}={node!r} is not supported with the ConvNeXt (expected null or id)")


def _config(fam: _Family, opts: dict, train_res: list[int], train_rate: float) -> dict:
    """The resbench model config of checked official options."""
    ls = opts["ls_init_value"]
    same = ("in_chans", "num_classes", "depths", "dims", "stem_type", "stem_channels", "stem_l_max",
            "downsample_type", "stage_layers")
    flags = ("downsample_act", "downsample_glu", "custom_ln", "head_norm_first")
    config = {**{k: opts[k] for k in same}, **{k: bool(opts[k]) for k in flags},
              "train_res": train_res[0] if len(train_res) == 2 and train_res[0] == train_res[1] else train_res,
              "layer_scale": ls is not None and ls > 0, "bandlimit": _bandlimit(opts),
              "stem_layer": opts["stem_layer"] if opts["stem_type"] != "patch" else None, "train_rate": train_rate}
    extra = ("video_size", "spatial_patch_size", "tempor_patch_size", "block_tempor_kernel",
             "temporal_stage_strides") if fam is _3D else ("img_size", "patch_size", "conv_mlp")
    return {**config, **{k: opts[k] for k in extra}}


def claims(raw) -> bool:
    """Whether a loaded object is an official checkpoint of the S4ND-ConvNeXt family (by its model name)."""
    if not is_official(raw):
        return False
    name = plain_config(raw["hyper_parameters"])["model"].get("_name_")
    return isinstance(name, str) and name in CONVNEXT_NAMES


def convnext_checkpoint(raw: dict, path: Path, sha256: str, train_res=None, dataset: str | None = None,
                        mean=None, std=None):
    """An official S4ND-ConvNeXt checkpoint (read by lightning.read_official) as a resbench Checkpoint."""
    from resbench.models import create_model

    hp = raw["hyper_parameters"]
    _check_io(hp)
    fam = _family(hp["model"]["_name_"])
    opts = _model_options(hp["model"])
    loader = hp.get("loader") or {}
    train_rate = loader.get("train_resolution", 1) or 1
    if not isinstance(train_rate, (int, float)) or isinstance(train_rate, bool) or train_rate <= 0:
        raise _refuse(f"loader.train_resolution={train_rate!r}: expected one positive rate")
    if fam is _3D:
        train_rate = 1  # the official video loader passes no rate, and the 3-d model takes none
    grid = opts[fam.size_key]
    if train_res is None:
        train_res = [int(round(s / train_rate)) for s in grid]
    train_res = [int(train_res)] * len(grid) if isinstance(train_res, int) else [int(s) for s in train_res]
    if len(train_res) != len(grid):
        raise ResbenchError(f"--train-res {train_res}: expected {len(grid)} sizes for {hp['model']['_name_']}")
    if fam is _2D:  # a given training size sets the rate it ran at: the model runs img_size / size
        rates = {g / t for g, t in zip(grid, train_res)}
        if len(rates) > 1:
            raise ResbenchError(f"--train-res {train_res}: the official model ran one rate on both axes, "
                                f"img_size {grid} / size")
        train_rate = rates.pop()
    data_hp = hp.get("dataset") or {}
    official_name = data_hp.get("_name_") if isinstance(data_hp, dict) else data_hp
    stats = import_stats(official_name, DATA_STATS.get(official_name), int(opts["in_chans"]), mean, std)
    config = _config(fam, opts, train_res, float(train_rate))
    try:
        model = create_model(fam.model, **config)
    except ResbenchError as e:
        raise _refuse(str(e)) from None
    sd, own = _state_dict(raw), model.state_dict()
    check_state_dict(own, sd, "official checkpoint: state_dict", f"its config ({hp['model']['_name_']})")
    provenance = {
        "dataset": dataset or _DATASETS.get(official_name, official_name), "train_res": config["train_res"],
        "schedule": None, "epochs": raw.get("epoch"), "seed": (hp.get("train") or {}).get("seed"),
        "bandlimit": config["bandlimit"], "native_accuracy": None, "wall_time_s": None,
        "versions": {"pytorch-lightning": raw.get("pytorch-lightning_version")},
        "official": {"file": str(path), "sha256": sha256, "epoch": raw.get("epoch"),
                     "global_step": raw.get("global_step"), "train_rate": float(train_rate),
                     "dataset": official_name, "name": hp["model"]["_name_"], "config": hp},
    }
    return Checkpoint(model=fam.model, config=config, provenance=provenance, data_stats=stats,
                      state_dict={k: sd[k] for k in own}, path=path, sha256=sha256)


def summary(ckpt) -> str:
    """One line on an imported S4ND-ConvNeXt: its official name, stem, stages, training size and rate."""
    c, official = ckpt.config, ckpt.provenance["official"]
    grid = "x".join(str(v) for v in c.get("img_size") or c["video_size"])
    return (f"{ckpt.model} ({official['name']}), stem {c['stem_type']}, depths {c['depths']}, "
            f"dims {c['dims']}, trained at {ckpt.provenance['train_res']} (official rate {c['train_rate']:g}, "
            f"l_max grid {grid}), dataset {ckpt.provenance['dataset']}")
