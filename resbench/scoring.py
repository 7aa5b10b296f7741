"""Scoring a classifier on batches of test images: the one loop that training and the sweep share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.layers.resolution_aware import cached_kernels

__all__ = ["Score", "score"]


@dataclass
class Score:
    class_n: torch.Tensor  # (classes,) test images per class
    class_correct: torch.Tensor  # (classes,) of them classified right
    loss_sum: float  # summed cross-entropy

    @property
    def n(self) -> int:
        return int(self.class_n.sum())

    @property
    def correct(self) -> int:
        return int(self.class_correct.sum())

    @property
    def loss(self) -> float:
        return self.loss_sum / self.n if self.n else float("nan")


def score(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
          policy: str = "native", on_batch: Callable[[int], None] | None = None) -> Score:
    """Evaluate `model` (eval mode, no autograd, continuous kernels computed once per grid) on (x, y) batches.

    x is (b, C, H, W) at the test size; the model's `policy` handles the size. `on_batch(b)` is called
    after each batch.
    """
    model.eval()
    class_n = torch.zeros(num_classes, dtype=torch.long)
    class_correct = torch.zeros(num_classes, dtype=torch.long)
    loss = 0.0
    with torch.inference_mode(), cached_kernels(model):
        for x, y in batches:
            logits = model.forward_policy(x, policy)  # (b, classes)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            y = y.cpu()  # the counts stay on the CPU whatever the model's device
            hit = logits.argmax(1).cpu() == y
            class_n += torch.bincount(y, minlength=num_classes)[:num_classes]
            class_correct += torch.bincount(y[hit], minlength=num_classes)[:num_classes]
            if on_batch is not None:
                on_batch(len(y))
    return Score(class_n, class_correct, loss)
