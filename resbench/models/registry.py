"""Model registry: `register_model` fills a private dict so `create_model(name, **overrides)` builds any model."""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING

from resbench.errors import ResbenchError

if TYPE_CHECKING:
    from resbench.models.base import ModelConfig, ResModel

__all__ = ["register_model", "create_model", "list_models", "model_config_class", "model_class"]

_MODELS: dict[str, type[ResModel]] = {}


def register_model(name: str):
    """Class decorator: register a `ResModel` subclass under `name` and set its `name` attribute."""

    def decorate(cls: type[ResModel]) -> type[ResModel]:
        if name in _MODELS and _MODELS[name] is not cls:
            warnings.warn(f"model name {name!r} was already registered by {_MODELS[name].__qualname__}; "
                          f"{cls.__qualname__} replaces it", stacklevel=2)
        cls.name = name
        _MODELS[name] = cls
        return cls

    return decorate


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def model_class(name: str) -> type[ResModel]:
    """The class registered under `name` (ResbenchError when none is)."""
    return _model_class(name)


def _model_class(name: str) -> type[ResModel]:
    if name not in _MODELS:
        raise ResbenchError(f"unknown model {name!r}: expected one of {', '.join(list_models())}")
    return _MODELS[name]


def model_config_class(name: str) -> type[ModelConfig]:
    """The config dataclass of a registered model; its fields are the accepted overrides."""
    return _model_class(name).config_class


def create_model(name: str, **overrides) -> ResModel:
    """Build a registered model from its default config with some fields replaced."""
    cls = _model_class(name)
    fields = [f.name for f in dataclasses.fields(cls.config_class)]
    unknown = [key for key in overrides if key not in fields]
    if unknown:
        raise ResbenchError(f"model {name!r} has no config field {unknown[0]!r}: expected some of "
                            f"{', '.join(fields)}")
    return cls(cls.config_class(**overrides))
