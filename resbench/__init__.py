"""resbench: measure how models trained at one resolution behave at another.

From Python: ``resbench.sweep(models, ...)``, ``resbench.load_results(folder)``, ``resbench.report(folders, out)``
(resbench.api); each is imported on first use, so ``import resbench`` stays light.
"""

from resbench.errors import ResbenchError

__all__ = ["ResbenchError", "__version__", "sweep", "load_results", "report", "sweep_models"]
__version__ = "0.1.0"


def __getattr__(name):
    if name in ("sweep", "report"):  # modules whose call is the api function (resbench._callable)
        import importlib

        return importlib.import_module(f"resbench.{name}")
    if name in ("load_results", "sweep_models"):  # sweep_models: the earlier name of resbench.sweep
        from resbench import api

        return api.load_results if name == "load_results" else api.sweep
    raise AttributeError(f"module 'resbench' has no attribute {name!r}")
