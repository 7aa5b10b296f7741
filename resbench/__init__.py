"""resbench: measure how models trained at one resolution behave at another."""

from resbench.errors import ResbenchError

__all__ = ["ResbenchError", "__version__"]
__version__ = "0.1.0"
