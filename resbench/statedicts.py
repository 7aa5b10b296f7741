"""One check of a state dict against the module that will load it: keys and shapes, one line when wrong."""

from __future__ import annotations

from typing import Mapping

import torch

from resbench.errors import ResbenchError

__all__ = ["check_state_dict"]


def check_state_dict(expected: Mapping[str, torch.Tensor], given: Mapping, subject: str, against: str) -> None:
    """Raise a ResbenchError naming the first missing or unexpected key, or a shape that differs.

    `subject` names the file or dict ("ckpt.pt: state dict"), `against` what it should fit ("model 'vit'").
    """
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise ResbenchError(f"{subject} does not match {against} ({len(missing)} missing, {len(unexpected)} "
                            f"unexpected keys; {what})")
    for key, value in expected.items():
        shape = tuple(getattr(given[key], "shape", ()))
        if shape != tuple(value.shape):
            raise ResbenchError(f"{subject} entry {key!r} has shape {shape}, {against} implies "
                                f"{tuple(value.shape)}")
