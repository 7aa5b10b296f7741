"""The one pickle reader of checkpoint files: tensors, plain containers, numbers and strings, numeric numpy
scalars and inert stand-ins for the few omegaconf classes an official trainer's file holds; every other global
is refused without being called. omegaconf itself is never imported.

resbench's own files, state dicts and the official trainer's Lightning files (whose config is an omegaconf
`DictConfig`, which torch's weights-only reader refuses) all load through it, so a file's pickle is read once.
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

__all__ = ["load_restricted", "DictConfigStub", "ListConfigStub", "NodeStub", "MetadataStub", "ANY"]


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
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} is not allowed in a checkpoint")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(name, align=False, copy=False):
    """numpy.dtype from a type code ('f8', '<i4'); its state is set by pickle's BUILD, as numpy pickles it."""
    import numpy as np

    if not isinstance(name, str):
        raise pickle.UnpicklingError(f"numpy dtype {name!r} is not allowed in a checkpoint")
    return np.dtype(name, align, copy)


def _latin1(text, encoding="latin1"):
    """_codecs.encode as numpy scalars pickle their bytes (protocol 2): latin-1 only."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed in a checkpoint")
    return text.encode("latin1")


def _bytes(*args):
    """builtins.bytes, as protocol-2 pickles write an empty bytes object; a size argument (bytes(10**12)) is refused."""
    if args and not isinstance(args[0], (bytes, bytearray, list, tuple)):
        raise pickle.UnpicklingError("bytes() of a size is not allowed in a checkpoint")
    return bytes(*args)


_BUILTINS = {**{name: getattr(builtins, name) for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float",
                                                          "bool", "str", "complex")}, "bytes": _bytes}

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
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a checkpoint")
        return obj


def _restricted_load(f, **kwargs):
    return _RestrictedUnpickler(f, **kwargs).load()


# what torch.load calls on a pickle module: the Unpickler class (zip files) and load (legacy files)
_restricted_pickle = types.SimpleNamespace(Unpickler=_RestrictedUnpickler, load=_restricted_load,
                                           __name__="resbench.checkpoints.unpickler.restricted_pickle")


def load_restricted(path: Path) -> Any:
    """torch.load of `path` through the restricted unpickler (tensors on the CPU). Raises pickle.UnpicklingError
    for a refused global, and what torch raises for truncated or foreign files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's advice about weights_only: the allow-list above decides
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)


# the stand-ins, for the code that turns an official config back into plain values
DictConfigStub, ListConfigStub, NodeStub, MetadataStub, ANY = _DictConfig, _ListConfig, _Node, _Metadata, _ANY
