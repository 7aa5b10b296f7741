"""`resbench.sweep(...)` and `resbench.report(...)` for notebooks: the modules of those names are also callable.

resbench.sweep and resbench.report are modules (the sweep engine, the report writer), so a package attribute of
the same name cannot be a plain function: each module's class is swapped for one whose call is the api function.
"""

from __future__ import annotations

import sys
import types

__all__ = ["make_callable"]


def make_callable(module_name: str, function: str) -> None:
    """Calling the module `module_name` calls resbench.api.<function> (imported on the first call)."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            from resbench import api

            return getattr(api, function)(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
