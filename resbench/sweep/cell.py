"""One cell of a sweep: a model and its test images in, the cell's row (and per-image records) out."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from resbench.checkpoints import Checkpoint
from resbench.device import autocast, device_name, float32_classifier
from resbench.errors import ResbenchError
from resbench.layers import onednn
from resbench.resolution import format_size
from resbench.runtime import TimeLimitExceeded, time_limit
from resbench.scoring import score, top5_columns, wilson_interval
from resbench.store import append_row, write_samples
from resbench.sweep.batches import cell_batch_size
from resbench.sweep.config import Cell, SweepConfig
from resbench.sweep.grid import cell_alpha, checkpoint_transform, recipe, training_sizes
from resbench.sweep.images import SplitFacts, SplitImages, split_facts

__all__ = ["evaluate_cell", "bandlimit_context", "failed_rows", "cell_rows", "log_row", "describe_cell"]


def evaluate_cell(model, images: SplitImages, ckpt: Checkpoint, cell: Cell, cfg: SweepConfig,
                  num_classes: int, on_batch: Callable[[int], None] | None = None) -> dict:
    """Score one cell; `on_batch(n)` is called after each batch of n images."""
    t0 = time.perf_counter()
    try:
        batch = cell_batch_size(model, ckpt, cell, cfg)
    except ResbenchError as e:  # checked for every cell before the run: only the device's free memory changed
        raise MemoryError(f"{e} (free device memory fell during the run)") from None
    ctx = (bandlimit_context(model, cell_alpha(ckpt, cell.bandlimit), cell.bandlimit)
           if cell.bandlimit != "none" else contextlib.nullcontext())
    with ctx, autocast(torch.device(cfg.device), cfg.precision), float32_classifier(model, num_classes), \
            onednn.linears(model):
        result = score(model, images.batches(cell.test_res, batch), num_classes, cell.policy, on_batch,
                       samples=cfg.log_samples, finite=True)  # NaN logits: an error row, not class 0's share
    seconds = time.perf_counter() - t0
    n, correct = result.n, result.correct
    low, high = wilson_interval(correct, n)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else float("nan"), "ci_low": low,
            "ci_high": high, "loss": result.loss, "seconds": round(seconds, 3),
            "images_per_s": round(n / seconds, 1) if seconds > 0 else None, "error": "",
            "class_n": result.class_n.tolist(), "class_correct": result.class_correct.tolist(), **top5_columns(result),
            **({"_records": result.samples | ({} if images.indices is None else {"index": images.indices})}
               if result.samples is not None else {})}


def bandlimit_context(model: torch.nn.Module, alpha: float | None, setting: str):
    """The model's own bandlimit switch (a model from outside resbench has one), else its continuous layers'."""
    from resbench.models import bandlimit

    own = getattr(model, "bandlimit_context", None)
    return own(alpha) if own is not None else bandlimit(model, alpha, setting == "adaptive", setting == "capped")


def _cell_row(ckpt: Checkpoint, cell: Cell, cfg: SweepConfig, about: SplitFacts, tested: tuple[int, str]) -> dict:
    """The identifying part of a cell's row; evaluate_cell adds the measurement. `tested`: SweepPlan.tested."""
    limit, test_images, subset = tested
    return {"model": ckpt.model, "checkpoint": ckpt.name, "checkpoint_sha256": ckpt.sha256,
            "dataset": about.dataset, "dims": ckpt.dims, "train_res": format_size(ckpt.train_res),
            "test_res": format_size(cell.test_res), "policy": cell.policy, "bandlimit": cell.bandlimit,
            "alpha": cell_alpha(ckpt, cell.bandlimit), "seed": cfg.seed, "precision": cfg.precision,
            "device": device_name(torch.device(cfg.device)), "limit": limit, "test_images": test_images,
            "subset": subset, "transform": checkpoint_transform(ckpt, cfg),
            "class_names": about.classes, "warning": about.warning,
            "seen_in_training": tuple(cell.test_res) in training_sizes(ckpt),
            "trained_bandlimit": ckpt.config.get("bandlimit"), "recipe": recipe(ckpt)}


def _failed(e: BaseException) -> dict:
    """The measurement part of a failed cell's row: a failed cell is a row, not a gap."""
    nan = float("nan")
    return {"n": 0, "correct": 0, "accuracy": nan, "ci_low": nan, "ci_high": nan, "loss": nan, "seconds": 0.0,
            "top5_correct": None, "top5_accuracy": nan, "top5_ci_low": nan, "top5_ci_high": nan,
            "images_per_s": None, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}


def failed_rows(ckpt: Checkpoint, cells: list[Cell], cfg: SweepConfig, tested: tuple[int, str],
                e: BaseException) -> list[dict]:
    """Error rows for cells that never ran because their whole group failed (a Ray task's exception)."""
    about = split_facts(ckpt, cfg)
    return [_cell_row(ckpt, cell, cfg, about, tested) | _failed(e) for cell in cells]


def cell_rows(ckpt: Checkpoint, model: torch.nn.Module, images: SplitImages, cells: Iterable[Cell],
              cfg: SweepConfig, tested: tuple[int, str],
              on_cell: Callable[[Cell], Callable[[int], None]] | None = None) -> Iterator[dict]:
    """Evaluate cells of one checkpoint in turn, yielding each one's row as it finishes; a cell that fails
    at run time is an error row. `on_cell(cell)`, called as a cell starts, returns its per-batch callback."""
    for cell in cells:
        on_batch = on_cell(cell) if on_cell is not None else None
        row = _cell_row(ckpt, cell, cfg, images.about, tested)
        try:
            with time_limit(cfg.cell_timeout, "the cell (--cell-timeout)"):
                row.update(evaluate_cell(model, images, ckpt, cell, cfg, model.config.num_classes, on_batch))
        except ResbenchError:
            raise
        except (RuntimeError, MemoryError, ValueError, TimeLimitExceeded) as e:
            row.update(_failed(e))
        yield row


def log_row(out: Path, log: Path, row: dict) -> dict:
    """Append a finished cell's row to the log, its per-image records (`_records`) written first, so a row
    that names a file always has it. Returns the row as logged."""
    records = row.pop("_records", None)
    if records is not None:
        row["samples"] = write_samples(out, row, records)
    append_row(log, row)
    return row


def describe_cell(ckpt: Checkpoint, cell: Cell) -> str:
    """A cell as progress shows it: 'NAME @ SIZE POLICY bl=SETTING'."""
    return f"{ckpt.name} @ {format_size(cell.test_res)} {cell.policy} bl={cell.bandlimit}"
