"""The factory a `--model package.module:factory` spec names: imported from the user's own module, never a
function of the standard library or of resbench's dependencies (those would only run for their side effects)."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from typing import Callable

import torch.nn as nn

from resbench.errors import ResbenchError

__all__ = ["resolve_factory"]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


@contextlib.contextmanager
def _cwd_importable():
    """The current folder on sys.path while importing, as `python -m` has it: a module beside the user imports."""
    cwd = os.getcwd()
    added = "" not in sys.path and cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def resolve_factory(spec: str) -> Callable:
    """The callable a spec package.module:attr names."""
    module_name, _, attr = spec.partition(":")
    if not module_name.strip() or not attr.strip():
        raise ResbenchError(f"--model {spec!r}: expected timm:NAME or package.module:factory")
    _check_factory_module(spec, module_name)
    try:
        with _cwd_importable():
            module = importlib.import_module(module_name)
    except (Exception, SystemExit) as e:  # ImportError, or whatever the module raises (or exits with) as it runs
        raise ResbenchError(f"{spec}: cannot import {module_name!r} ({type(e).__name__}: {_first_line(e)})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ResbenchError(f"{spec}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ResbenchError(f"{spec}: {attr!r} is not callable ({type(obj).__name__}); expected a function "
                            f"returning an nn.Module")
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        return obj
    defined = getattr(obj, "__module__", None) or ""
    if not (inspect.isfunction(obj) or isinstance(obj, type)) or (
            defined.partition(".")[0] != module_name.partition(".")[0]):
        raise ResbenchError(f"{spec}: {attr!r} is not a function {module_name!r} defines (it is "
                            f"{type(obj).__name__} of {defined or 'no module'!r}); expected your own factory "
                            f"returning an nn.Module, or an nn.Module class")
    return obj


# modules whose functions are never a model factory: resbench's own and its dependencies'
_NOT_FACTORIES = ("resbench", "torch", "torchvision", "timm", "pandas", "matplotlib", "click", "rich", "pyarrow",
                  "scipy", "numpy", "ray", "pytest", "hypothesis", "pip", "setuptools")


def _check_factory_module(spec: str, module_name: str) -> None:
    """A factory comes from the user's own module: one of the standard library or of resbench's dependencies
    would only be run for its side effects (os:abort, sys:exit, builtins:breakpoint); refused before import."""
    top = module_name.strip().partition(".")[0]
    if top in sys.stdlib_module_names or top in _NOT_FACTORIES:
        raise ResbenchError(f"--model {spec!r}: {top!r} is " + ("the standard library" if top in
                            sys.stdlib_module_names else "resbench or one of its dependencies") +
                            "; expected your own module's factory (package.module:factory) or timm:NAME")
