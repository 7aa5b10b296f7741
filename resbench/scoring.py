"""Scoring a classifier on batches of test images: the one loop that training and the sweep share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.layers.resolution_aware import cached_kernels

__all__ = ["Score", "score", "wilson_interval", "NonFiniteLogits", "top5_columns"]


class NonFiniteLogits(RuntimeError):
    """The model returned NaN or infinite logits: its argmax (class 0) and loss would mean nothing."""


@dataclass
class Score:
    class_n: torch.Tensor  # (classes,) test images per class
    class_correct: torch.Tensor  # (classes,) of them classified right
    loss_sum: float  # summed cross-entropy
    # per image, in order (only when score(..., samples=True)): "label", "pred" (N,) int64, "p_label",
    # "p_pred" (N,) float32 softmax probabilities, "top5" (N, k) int64 classes by falling probability
    samples: dict[str, torch.Tensor] | None = None
    correct5: int | None = None  # images whose label is among the five top logits; None with 5 classes or fewer

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
          policy: str = "native", on_batch: Callable[[int], None] | None = None, samples: bool = False,
          finite: bool = False) -> Score:
    """Evaluate `model` (eval mode, no autograd, continuous kernels computed once per grid) on (x, y) batches.

    x is (b, C, H, W) at the test size; the model's `policy` handles the size. `on_batch(b)` is called
    after each batch. `samples`: also keep each image's prediction, probabilities and top classes. `finite`:
    raise NonFiniteLogits, after the last batch, when any logits held NaN or inf (NaN weights, a zero std).
    """
    model.eval()
    # counts stay on the batches' device until the end: one host-device sync per cell, not several per batch
    class_n = class_correct = loss = correct5 = None
    kept: dict[str, list[torch.Tensor]] = {k: [] for k in ("label", "pred", "p_label", "p_pred", "top5")}
    with torch.inference_mode(), cached_kernels(model):
        for x, y in batches:
            logits = model.forward_policy(x, policy)  # (b, classes)
            if loss is None:
                class_n = torch.zeros(num_classes, dtype=torch.long, device=logits.device)
                class_correct = torch.zeros(num_classes, dtype=torch.long, device=logits.device)
                loss = torch.zeros((), dtype=torch.float64, device=logits.device)
                bad = torch.zeros((), dtype=torch.long, device=logits.device)
                correct5 = torch.zeros((), dtype=torch.long, device=logits.device)
            if finite:  # counted on the device, checked once at the end (no host sync per batch)
                bad += (~torch.isfinite(logits)).any(1).sum()
            # float32: under autocast the logits may be bf16/fp16; each batch's sum is added in float64, as
            # Python floats would, over thousands of images
            loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
            pred = logits.argmax(1)  # (b,)
            class_n += torch.bincount(y, minlength=num_classes)[:num_classes]
            class_correct += torch.bincount(y[pred == y], minlength=num_classes)[:num_classes]
            if num_classes > 5:
                correct5 += (logits.topk(5, dim=1).indices == y[:, None]).any(1).sum()  # (b, 5) -> ()
            if samples:
                _keep_samples(kept, logits, y, pred)
            if on_batch is not None:
                on_batch(len(y))
    if loss is None:  # no batch at all
        zeros = torch.zeros(num_classes, dtype=torch.long)
        return Score(zeros, zeros.clone(), 0.0, None)
    if finite and int(bad):
        raise NonFiniteLogits(f"the model returned NaN or infinite logits for {int(bad)} of {int(class_n.sum())} "
                              f"images (check its weights and normalisation)")
    records = {k: torch.cat(v).cpu() for k, v in kept.items()} if samples and kept["label"] else None
    return Score(class_n.cpu(), class_correct.cpu(), float(loss), records,
                 int(correct5) if num_classes > 5 else None)


def _keep_samples(kept: dict[str, list[torch.Tensor]], logits: torch.Tensor, y: torch.Tensor,
                  pred: torch.Tensor) -> None:
    """Append one batch's per-image records to `kept`: label, prediction, their probabilities, top classes."""
    prob = logits.float().softmax(1)  # (b, classes)
    kept["label"].append(y)
    kept["pred"].append(pred)
    kept["p_label"].append(prob.gather(1, y[:, None])[:, 0])  # (b,)
    kept["p_pred"].append(prob.gather(1, pred[:, None])[:, 0])  # (b,)
    kept["top5"].append(prob.topk(min(5, prob.shape[1]), dim=1).indices)  # (b, min(5, classes))


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (NaNs when n == 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the exact bounds hold p; min/max keep float rounding from pushing one past it when p is 0 or 1
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def top5_columns(result: Score) -> dict:
    """A row's top-5 columns: correct, accuracy and its Wilson interval; empty (NaN) with five classes or fewer."""
    if result.correct5 is None or result.n == 0:
        nan = float("nan")
        return {"top5_correct": None, "top5_accuracy": nan, "top5_ci_low": nan, "top5_ci_high": nan}
    low, high = wilson_interval(result.correct5, result.n)
    return {"top5_correct": result.correct5, "top5_accuracy": result.correct5 / result.n, "top5_ci_low": low,
            "top5_ci_high": high}
