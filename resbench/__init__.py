"""resbench: measure how models trained at one resolution behave at another."""

from resbench.errors import ResbenchError

__all__ = ["ResbenchError", "__version__", "sweep_models"]
__version__ = "0.1.0"


def __getattr__(name):
    # resbench.sweep_models is resbench.api.sweep, imported on first use: `import resbench` stays light
    if name == "sweep_models":
        from resbench.api import sweep

        return sweep
    raise AttributeError(f"module 'resbench' has no attribute {name!r}")
