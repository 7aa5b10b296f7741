"""Lightning checkpoint files (the official state-spaces/s4 trainer's) read without running code.

A plain dict of tensors and containers (what `torch.save` of a state dict and a config writes) loads with
torch's weights-only reader, numpy scalars and dtypes allowed. A checkpoint written by the official trainer
(`Trainer.save_checkpoint`) also pickles its config as an omegaconf `DictConfig`, which the weights-only
reader refuses: those files go through `_RestrictedUnpickler`, which builds tensors, plain containers,
numeric numpy scalars and inert stand-ins for the few omegaconf classes, and refuses every other global
without calling it. omegaconf itself is never imported.
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

from resbench.checkpoints.archive import check_archive
from resbench.errors import ResbenchError

__all__ = ["read_official", "is_official", "plain_config", "numpy_safe_globals", "import_stats"]


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
                                           __name__="resbench.checkpoints.lightning.restricted_pickle")


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


def import_stats(dataset, known: dict | None, in_chans: int, mean, std) -> dict:
    """The normalisation of an imported official model: --mean/--std when given, else `known` (the official
    loader's for `dataset`); refused in one line when neither, or when the count is not the input channels'."""
    stats = known
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ResbenchError("give both --mean and --std (one value per input channel)")
        stats = {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}
    if stats is None:
        raise ResbenchError(f"official checkpoint: the normalisation of dataset {dataset!r} is not known to "
                            f"resbench: pass --mean and --std (the statistics the model was trained with)")
    if len(stats["mean"]) != in_chans or len(stats["std"]) != in_chans:
        raise ResbenchError(f"official checkpoint: normalisation has {len(stats['mean'])} means and "
                            f"{len(stats['std'])} stds, the model takes {in_chans} input channels")
    return stats
