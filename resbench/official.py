"""Checkpoints of the official S4ND code (state-spaces/s4): read without running code, convert to resbench's.

Two kinds of file are read. A plain dict of tensors and containers (what `torch.save` of a state dict and
a config writes) loads with torch's weights-only reader. A checkpoint written by the official trainer
(`Trainer.save_checkpoint`) also pickles its config as an omegaconf `DictConfig`, which the weights-only
reader refuses: those files go through `_RestrictedUnpickler`, which builds tensors, plain containers
and inert stand-ins for the few omegaconf classes, and refuses every other global without calling it.
omegaconf itself is never imported.
"""

from __future__ import annotations

import builtins
import collections
import pickle
import types
import warnings
from pathlib import Path
from typing import Any

import torch

from resbench.errors import ResbenchError
from resbench.official_convnext import CONVNEXT_NAMES, convnext_checkpoint
from resbench.statedicts import check_state_dict

__all__ = ["read_official", "is_official", "official_checkpoint", "import_official", "plain_config", "OFFICIAL_STATS",
           "numpy_safe_globals"]

# Normalisation of the official dataloaders (src/dataloaders/basic.py), by dataset and grayscale flag.
OFFICIAL_STATS = {
    ("cifar", True): {"mean": [122.6 / 255.0], "std": [61.0 / 255.0]},
    ("cifar", False): {"mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.243, 0.261]},
}
# official dataset names -> resbench's
_DATASETS = {"cifar": "cifar10"}


class _Stub:
    """An inert stand-in for an omegaconf object: keeps the state pickle gives it, nothing else."""

    def __setstate__(self, state):
        self.state = state


class _DictConfig(_Stub):
    pass


class _ListConfig(_Stub):
    pass


class _Node(_Stub):
    pass


class _Metadata(_Stub):
    pass


_ANY = object()  # typing.Any, as a node's declared type


def _empty_defaultdict(*args):
    """collections.defaultdict(factory) as a plain dict: the factory (a named global) is never called."""
    return {}


def _numpy_scalar(dtype, data=None):
    """numpy's scalar reconstructor, for numeric dtypes only (an object scalar would hold an arbitrary object)."""
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} is not allowed in an official checkpoint")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(name, align=False, copy=False):
    """numpy.dtype from a type code ('f8', '<i4'); its state is set by pickle's BUILD, as numpy pickles it."""
    import numpy as np

    if not isinstance(name, str):
        raise pickle.UnpicklingError(f"numpy dtype {name!r} is not allowed in an official checkpoint")
    return np.dtype(name, align, copy)


def _latin1(text, encoding="latin1"):
    """_codecs.encode as numpy scalars pickle their bytes (protocol 2): latin-1 only."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed in an official checkpoint")
    return text.encode("latin1")


def numpy_safe_globals() -> list:
    """The numpy reconstructors a Lightning checkpoint holds (scalars such as a logged metric, and their dtypes),
    for torch's weights-only allow-list: under both module names numpy 1 and 2 pickle them with."""
    import numpy as np

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    return [(scalar, "numpy._core.multiarray.scalar"), (scalar, "numpy.core.multiarray.scalar"), np.dtype]


_BUILTINS = {name: getattr(builtins, name) for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float",
                                                       "bool", "str", "bytes", "complex")}

_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): _empty_defaultdict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("typing", "Any"): _ANY,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("_codecs", "encode"): _latin1,
    ("omegaconf.dictconfig", "DictConfig"): _DictConfig,
    ("omegaconf.listconfig", "ListConfig"): _ListConfig,
    ("omegaconf.base", "Metadata"): _Metadata,
    ("omegaconf.base", "ContainerMetadata"): _Metadata,
    **{("omegaconf.nodes", name): _Node for name in ("AnyNode", "StringNode", "IntegerNode", "FloatNode",
                                                     "BooleanNode", "BytesNode", "PathNode", "EnumNode")},
    **{(mod, name): value for name, value in _BUILTINS.items() for mod in ("builtins", "__builtin__")},
    ("__builtin__", "long"): int,  # Python 2 name that protocol-2 pickles still write for int
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Tensors, containers, numbers, strings and omegaconf stand-ins; any other global is refused."""

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an official checkpoint")
        return obj


def _restricted_load(f, **kwargs):
    return _RestrictedUnpickler(f, **kwargs).load()


# what torch.load calls on a pickle module: the Unpickler class (zip files) and load (legacy files)
_restricted_pickle = types.SimpleNamespace(Unpickler=_RestrictedUnpickler, load=_restricted_load,
                                           __name__="resbench.official.restricted_pickle")


def plain_config(obj: Any) -> Any:
    """omegaconf stand-ins (and containers holding them) -> plain dicts, lists and values."""
    if isinstance(obj, _DictConfig):
        content = obj.state.get("_content")
        return {str(k): plain_config(v) for k, v in content.items()} if isinstance(content, dict) else content
    if isinstance(obj, _ListConfig):
        content = obj.state.get("_content")
        return [plain_config(v) for v in content] if isinstance(content, (list, tuple)) else content
    if isinstance(obj, _Node):
        return plain_config(obj.state.get("_val"))
    if isinstance(obj, dict):
        return {k: plain_config(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_config(v) for v in obj]
    if obj is _ANY or isinstance(obj, _Metadata):
        return None
    return obj


def read_official(path: str | Path) -> dict:
    """The dict an official checkpoint holds, its config as plain values; ResbenchError when unreadable."""
    from resbench.checkpoints import check_archive

    path = Path(path)
    check_archive(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's advice about weights_only; the errors below say what matters
        try:
            with torch.serialization.safe_globals(numpy_safe_globals()):
                raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 (a DictConfig inside: the restricted reader decides)
            try:
                raw = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)
            except pickle.UnpicklingError as e:
                raise ResbenchError(f"{path}: refused without running it ({e})") from None
            except Exception:  # noqa: BLE001 (torch raises many types for truncated or foreign files)
                raise ResbenchError(f"{path}: not a loadable checkpoint (truncated, corrupt or not a torch file)") \
                    from None
    if not is_official(raw):
        raise ResbenchError(f"{path}: not an official S4 checkpoint (expected 'state_dict' and "
                            f"'hyper_parameters' with a 'model' section)")
    raw = dict(raw)
    raw["hyper_parameters"] = plain_config(raw["hyper_parameters"])
    return raw


def is_official(raw: Any) -> bool:
    """Whether a loaded object looks like an official S4 (Lightning) checkpoint."""
    if not isinstance(raw, dict) or "format" in raw:
        return False
    hp = plain_config(raw.get("hyper_parameters"))
    return isinstance(raw.get("state_dict"), dict) and isinstance(hp, dict) and isinstance(hp.get("model"), dict)


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
            raise _refuse(f"model.{key}={value!r}: expected a positive integer, at most {bound} (what the weights hold)")
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


def official_checkpoint(raw: dict, path: Path, sha256: str, train_res=None, dataset: str | None = None,
                        mean=None, std=None):
    """An official checkpoint (read by read_official) as a resbench Checkpoint of model `s4nd_official`."""
    from resbench.checkpoints import Checkpoint
    from resbench.models import create_model

    hp = raw["hyper_parameters"]
    if _name(hp["model"]) in CONVNEXT_NAMES:  # the S4ND-ConvNeXt family: its own reader
        return convnext_checkpoint(raw, path, sha256, train_res, dataset, mean, std)
    checked = _check_backbone(hp)
    model_hp, layer = hp["model"], {k: v for k, v in checked["layer"].items() if k not in ("_name_", "bandlimit")}
    sd = {k: v for k, v in raw["state_dict"].items() if isinstance(v, torch.Tensor)}
    if len(sd) != len(raw["state_dict"]):
        raise _refuse("state_dict holds values that are not tensors")
    _check_values(hp, sd)
    for key in ("encoder.0.weight", "decoder.0.output_transform.weight"):
        if key not in sd:
            raise _refuse(f"state_dict has no {key!r} (not an isotropic S4ND classifier with a linear encoder "
                          f"and a pooling decoder)")
    p_key = "model.layers.0.layer.kernel.0.P"
    if "rank" not in layer and p_key in sd:  # the DPLR low-rank size, when the config does not say
        layer["rank"] = int(sd[p_key].shape[0])
    l_max = layer.get("l_max")
    if not isinstance(l_max, (list, tuple)) or not l_max or not all(isinstance(n, int) and n > 0 for n in l_max):
        raise _refuse(f"model.layer.l_max={l_max!r}: expected one positive length per axis (with l_max null the "
                      f"official kernel follows the input and records no training grid)")
    loader = hp.get("loader") or {}
    train_rate = loader.get("train_resolution", 1) or 1
    if train_res is None:
        train_res = _train_grid(hp, len(l_max), train_rate)
    train_res = [int(train_res)] * len(l_max) if isinstance(train_res, int) else [int(s) for s in train_res]
    data_hp = hp.get("dataset") or {}
    official_name, gray = _name(data_hp), bool(data_hp.get("grayscale", False))
    stats = OFFICIAL_STATS.get((official_name, gray))
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ResbenchError("give both --mean and --std (one value per input channel)")
        stats = {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}
    in_chans = int(sd["encoder.0.weight"].shape[1])
    if stats is None:
        raise _refuse(f"the normalisation of dataset {official_name!r} is not known to resbench: pass --mean and "
                      f"--std (the statistics the model was trained with)")
    if len(stats["mean"]) != in_chans or len(stats["std"]) != in_chans:
        raise _refuse(f"normalisation has {len(stats['mean'])} means and {len(stats['std'])} stds, the model "
                      f"takes {in_chans} input channels")
    config = {"in_chans": in_chans, "num_classes": int(sd["decoder.0.output_transform.weight"].shape[0]),
              "train_res": train_res if len(set(train_res)) > 1 or len(train_res) != 2 else train_res[0],
              "d_model": int(model_hp.get("d_model", sd["encoder.0.weight"].shape[0])),
              "n_layers": int(model_hp.get("n_layers", 1)), "dim": len(l_max),
              "prenorm": bool(model_hp.get("prenorm", True)), "norm": checked["norm"],
              "transposed": bool(model_hp.get("transposed", False)), "layer": layer,
              "train_rate": float(train_rate), "bandlimit": checked["layer"].get("bandlimit")}
    from resbench.checkpoints import _check_config_values

    _check_config_values(config, {}, sd, path)
    try:
        with torch.device("meta"):  # shapes only: the weights are checked against them, nothing is allocated
            model = create_model("s4nd_official", **config)
    except ResbenchError as e:
        raise _refuse(str(e)) from None
    except (TypeError, ValueError, ArithmeticError, RuntimeError) as e:  # an option of the wrong type or size
        raise _refuse(f"model.layer options: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    own = model.state_dict()
    check_state_dict(own, sd, "official checkpoint: state_dict", "its config")
    provenance = {
        "dataset": dataset or _DATASETS.get(official_name, official_name),
        "train_res": config["train_res"], "schedule": None, "epochs": raw.get("epoch"),
        "seed": (hp.get("train") or {}).get("seed"), "bandlimit": config["bandlimit"],
        "native_accuracy": None, "wall_time_s": None,
        "versions": {"pytorch-lightning": raw.get("pytorch-lightning_version")},
        "official": {"file": str(path), "sha256": sha256, "epoch": raw.get("epoch"),
                     "global_step": raw.get("global_step"), "train_rate": float(train_rate),
                     "dataset": official_name, "grayscale": gray, "config": hp},
    }
    return Checkpoint(model="s4nd_official", config=config, provenance=provenance, data_stats=stats,
                      state_dict={k: sd[k] for k in own}, path=path, sha256=sha256)


def import_official(source: str | Path, out: str | Path, train_res=None, dataset: str | None = None,
                    mean=None, std=None):
    """Convert an official checkpoint file into a resbench checkpoint at `out`; returns the Checkpoint."""
    from resbench.checkpoints import file_sha256, load_checkpoint, save_checkpoint

    source = Path(source)
    if not source.is_file():
        raise ResbenchError(f"{source}: official checkpoint not found")
    ckpt = official_checkpoint(read_official(source), source, file_sha256(source), train_res, dataset, mean, std)
    save_checkpoint(ckpt, out)
    return load_checkpoint(out)  # what a sweep will read: validated like every resbench checkpoint
