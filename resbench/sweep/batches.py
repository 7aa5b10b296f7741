"""How many test images one batch of a cell takes: the cache's size on the CPU, memory everywhere."""

from __future__ import annotations

import math

import torch

from resbench.checkpoints import Checkpoint
from resbench.device import CPU_MEMORY_BUDGET, free_memory_budget
from resbench.errors import ResbenchError
from resbench.resolution import format_size
from resbench.sweep.config import DEFAULT_BATCH, Cell, SweepConfig

__all__ = ["CACHE_PIXELS", "MEMORY_BUDGET", "memory_budget", "batch_size_for", "cache_batch", "model_size",
           "cell_batch_size"]

MEMORY_BUDGET = CPU_MEMORY_BUDGET  # bytes of activations one batch may take on the CPU; a GPU: half its free memory

# A batch of about 25k pixels (32 images at 28x28, 8 at 56x56) keeps a layer's activations near the
# cache: measured on the 2-core CPU, s4nd_iso evaluates 789 img/s at 28x28 in batches of 32 against
# 491 in batches of 256, and 185 against 110 img/s at 56x56 (batch 8 vs 256).
CACHE_PIXELS = 32 * 28 * 28


def memory_budget(cfg: SweepConfig) -> int:
    """Bytes of activations one batch may take on the sweep's device."""
    device = torch.device(cfg.device)
    return free_memory_budget(device) if device.type == "cuda" else MEMORY_BUDGET


def batch_size_for(model: torch.nn.Module, size: tuple[int, ...], requested: int, budget: int | None = None) -> int:
    """Shrink the batch so one batch's activations stay under the budget (MEMORY_BUDGET by default); refuse
    hopeless sizes."""
    budget = MEMORY_BUDGET if budget is None else budget
    largest = getattr(model, "activation_elements", None)  # a multi-stage model knows its largest map
    if largest is None:
        width = max((p.shape[0] for p in model.parameters() if p.dim() >= 2), default=64)
        per_image = 12 * width * math.prod(size) * 4  # bytes: a dozen live activation maps of the widest layer
    else:
        per_image = 12 * largest(size) * 4  # bytes: a dozen live maps the size of the largest
    if per_image > budget:
        raise ResbenchError(f"test size {format_size(size)}: one image needs about "
                            f"{per_image / 1024 ** 3:.1f} GiB of activations (budget "
                            f"{budget / 1024 ** 3:.0f} GiB); choose a smaller size")
    return max(1, min(requested, budget // per_image))


def cache_batch(requested: int, size: tuple[int, ...], device: str = "cpu") -> int:
    """On the CPU `requested`, cut to at most CACHE_PIXELS model pixels (samples, voxels) per batch (at least 8
    images); on a GPU `requested` itself (its limit is memory, batch_size_for)."""
    if torch.device(device).type != "cpu":
        return requested
    return min(requested, max(8, CACHE_PIXELS // math.prod(size)))


def model_size(ckpt: Checkpoint, cell: Cell) -> tuple[int, ...]:
    """The size the model runs at: the training size under resize-input, the test size natively."""
    return ckpt.train_res if cell.policy == "resize-input" else cell.test_res


def cell_batch_size(model: torch.nn.Module, ckpt: Checkpoint, cell: Cell, cfg: SweepConfig) -> int:
    """The batch of one cell, for the size the model runs at; the test images themselves exist at the
    test size either way."""
    size, budget = model_size(ckpt, cell), memory_budget(cfg)
    requested = cache_batch(DEFAULT_BATCH, size, cfg.device) if cfg.batch_size is None else cfg.batch_size
    batch = batch_size_for(model, size, requested, budget)
    per_image = 3 * model.config.in_chans * math.prod(cell.test_res) * 4  # resized, normalised, temp
    if per_image > budget:
        raise ResbenchError(f"test size {format_size(cell.test_res)}: one test image needs about "
                            f"{per_image / 1024 ** 3:.1f} GiB (budget {budget / 1024 ** 3:.0f} GiB); "
                            "choose a smaller size")
    return max(1, min(batch, budget // per_image))
