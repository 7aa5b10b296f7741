"""The resbench model zoo: `create_model(name, **overrides)` builds any registered model."""

# importing registers the models
from resbench.models import (blurpool, ckconv, convnext, iso, official, official_convnext,  # noqa: F401
                             official_convnext3d, vit)
from resbench.models.base import (ModelConfig, ResModel, bandlimit, bandlimit_of, count_params, resize_input,
                                  set_bandlimit)
from resbench.layers.resolution_aware import cached_kernels
from resbench.models.registry import create_model, list_models, model_class, model_config_class, register_model

__all__ = ["create_model", "list_models", "model_class", "model_config_class", "register_model", "ModelConfig", "ResModel",
           "set_bandlimit", "bandlimit_of", "bandlimit", "count_params", "resize_input",
           "cached_kernels"]
