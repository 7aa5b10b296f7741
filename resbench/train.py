"""Training, in one readable loop: progressive resizing, resumable epochs, any device; the recipe it follows
(TrainConfig, schedules, sizes) is resbench.train_recipe."""

from __future__ import annotations

import io
import math
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.checkpoints import Checkpoint, package_versions, save_checkpoint
from resbench.store import atomic_write_bytes, writable_folder
from resbench.device import device_name, resolve_device
from resbench.errors import ResbenchError
from resbench.resolution import format_size
from resbench.scoring import score
from resbench.train_recipe import (EPOCHS, RUN_SETTINGS, SIZES, TrainConfig, check_train_size, parse_multiscale,
                                   parse_schedule, size_label, train_config, train_size_value)

__all__ = ["TrainConfig", "EpochEnd", "SIZES", "EPOCHS", "check_train_size", "parse_schedule", "parse_multiscale",
           "train_config", "train", "evaluate", "state_path"]

# parameters of the SSM itself (step, A, B) get their own learning rate and no weight decay (FACTS 1)
SSM_PARAM = re.compile(r"(^|\.)kernel\.\d+\.(inv_dt|A_real|A_imag|B)$")


def state_path(out: Path) -> Path:
    """Where the resumable training state of a run writing `out` lives."""
    return out.with_name(out.name + ".state")


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    ssm, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if SSM_PARAM.search(name):
            ssm.append(p)
        elif p.dim() >= 2:
            decay.append(p)
        else:  # biases, norms and the S4ND skip D
            no_decay.append(p)
    groups = [{"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0}]
    if ssm:
        groups.append({"params": ssm, "lr": cfg.ssm_lr, "weight_decay": cfg.ssm_weight_decay})
    return groups


def _lr_factor(step: int, total: int, warmup_frac: float) -> float:
    warmup = max(1, int(total * warmup_frac))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
             policy: str = "native", on_batch: Callable[[int], None] | None = None) -> tuple[int, float]:
    """(correct, mean loss) of `model` on images x (N, C, H, W) and labels y (N,); `on_batch(b)` after each batch."""
    batches = ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size))
    result = score(model, batches, model.config.num_classes, policy, on_batch)
    return result.correct, result.loss if len(x) else 0.0


@dataclass
class EpochEnd:
    """What `train`'s per-epoch callback is given: the epoch just finished (1-based) and the model
    (in train mode, on cfg.device), its history row and the config."""
    epoch: int
    model: nn.Module
    record: dict
    cfg: TrainConfig


@dataclass
class _Run:
    """The state of one training run: what an epoch reads and updates."""
    cfg: TrainConfig
    model: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    stats: tuple
    steps_per_epoch: int
    console: object
    started: float                # perf_counter at the start of this process's run
    start_epoch: int = 0
    train_time: float = 0.0       # seconds spent in epochs, earlier runs included
    earlier_wall: float = 0.0     # wall seconds of earlier (killed) runs, up to their last saved epoch
    history: list = field(default_factory=list)


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, quiet: bool = False,
          on_epoch_end: Callable[[EpochEnd], None] | None = None) -> Checkpoint:
    """Train `cfg.model` on `cfg.dataset` following the schedule; write the checkpoint to `out`.

    After every epoch the full training state is written atomically next to `out` (`out.state`);
    with `resume=True` a killed run continues after its last finished epoch and ends with the same
    weights as an uninterrupted run. `on_epoch_end(EpochEnd)` is called after each epoch's state is
    saved (an exception it raises ends the run, resumable). Provenance times the run: `train_time_s`
    the epochs, `test_time_s` the final test, `wall_time_s` all of it (with a resume, the earlier
    runs up to their last saved epoch too).
    """
    out = Path(out)
    run = _start(cfg, out, quiet)
    if resume and state_path(out).exists():
        _resume(run, state_path(out), out.name)
    phases = [size for size, epochs in cfg.schedule for _ in range(epochs)]  # size of each epoch
    loaded_size, x_train, y_train = None, None, None
    for epoch in range(run.start_epoch, cfg.epochs):
        if phases[epoch] != loaded_size:
            loaded_size = phases[epoch]
            x_train, y_train = _load_train(run, loaded_size)
        record = _train_epoch(run, epoch, x_train, y_train)
        _save_state(state_path(out), {
            "config": asdict(cfg), "model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(), "epoch": epoch + 1, "elapsed": run.train_time,
            # "elapsed": the epochs' time; "wall": everything until now, earlier runs included
            "wall": run.earlier_wall + time.perf_counter() - run.started, "history": run.history})
        if on_epoch_end is not None:
            on_epoch_end(EpochEnd(epoch + 1, run.model, record, cfg))
    ckpt = _final_checkpoint(run, *_final_test(run))
    save_checkpoint(ckpt, out)
    state_path(out).unlink(missing_ok=True)
    return ckpt


def _start(cfg: TrainConfig, out: Path, quiet: bool) -> _Run:
    """Check what the run needs (before any epoch), build the model, optimiser and schedule."""
    from rich.console import Console

    from resbench import data
    from resbench.models import create_model

    started = time.perf_counter()
    if out.is_dir():
        raise ResbenchError(f"{out}: is a directory, expected the checkpoint file to write")
    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    info = data.dataset_info(cfg.dataset, cfg.data_dir)
    stats = data.dataset_stats(cfg.dataset, cfg.data_dir, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, **{"in_chans": info.in_chans, "num_classes": info.num_classes,
                                       "train_res": cfg.train_res, **cfg.model_overrides}).to(device)
    n_train = len(data.load_raw(cfg.dataset, "train", cfg.data_dir, limit=cfg.limit, seed=cfg.seed)[1])
    # a missing test split (the final evaluation's) or an unwritable output: refused now, not after training
    data.load_raw(cfg.dataset, "test", cfg.data_dir, limit=1)
    writable_folder(out.parent)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(_param_groups(model, cfg))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, total_steps, cfg.warmup_frac))
    return _Run(cfg, model, opt, sched, stats, steps_per_epoch, Console(stderr=True, quiet=quiet, markup=False), started)


def _resume(run: _Run, spath: Path, name: str) -> None:
    state = _load_state(spath)
    recipe = {k: v for k, v in asdict(run.cfg).items() if k not in RUN_SETTINGS}
    if {k: v for k, v in state["config"].items() if k not in RUN_SETTINGS} != recipe:
        raise ResbenchError(f"{spath}: saved for a different training config; remove it or drop --resume")
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    run.start_epoch, run.train_time, run.history = state["epoch"], state["elapsed"], state["history"]
    run.earlier_wall = state.get("wall", run.train_time)  # a state saved before "wall" was: its epochs at least
    run.console.log(f"resuming {name} after epoch {run.start_epoch}/{run.cfg.epochs}")


def _load_train(run: _Run, size) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The training images at `size`, or with multi-scale training at each of cfg.multiscale (N, C, *s), and
    their labels (N,), on the run's device."""
    from resbench import data

    cfg = run.cfg
    loaded = [data.load(cfg.dataset, "train", s, cfg.data_dir, stats=run.stats, limit=cfg.limit, seed=cfg.seed)
              for s in (cfg.multiscale or [size])]
    return [x.to(cfg.device) for x, _ in loaded], loaded[0][1].to(cfg.device)


def _train_epoch(run: _Run, epoch: int, xs: list[torch.Tensor], y_train: torch.Tensor) -> dict:
    """One epoch over the images xs[k] (N, C, *s_k), labels y_train (N,); each batch at the size of one xs[k]
    drawn at random (one size but with multi-scale training). Returns (and appends) its history row."""
    cfg, model = run.cfg, run.model
    sizes = [tuple(x.shape[2:]) for x in xs]
    # as the schedule writes it: 14, [8000], [8, 14, 14]
    size = cfg.train_res if len(xs) > 1 else train_size_value(sizes[0])
    several = "multi-scale " + ",".join(map(format_size, sizes))
    size_text, log_size = (size_label(sizes[0]), format_size(sizes[0])) if len(xs) == 1 else (several, several)
    t0 = time.perf_counter()
    # per-epoch seeds make a resumed run draw the same shuffles, dropout masks and batch sizes
    torch.manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
    picks = torch.randint(len(xs), (run.steps_per_epoch,),
                          generator=torch.Generator().manual_seed(cfg.seed * 6007 + epoch)).tolist()
    order = order.to(y_train.device)
    loss_sum, correct, seen = 0.0, 0, 0
    model.train()
    with _progress(run.console, f"epoch {epoch + 1}/{cfg.epochs} @ {size_text}", run.steps_per_epoch,
                   "loss {task.fields[loss]:.4f} acc {task.fields[acc]:.3f}", loss=float("nan"),
                   acc=0.0) as (bar, task):
        for step, i in enumerate(range(0, len(order), cfg.batch_size)):
            idx = order[i:i + cfg.batch_size]
            xb, yb = xs[picks[step]][idx], y_train[idx]  # (b, C, *s), (b,)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
            run.opt.zero_grad(set_to_none=True)
            loss.backward()
            run.opt.step()
            run.sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(idx)
            bar.update(task, advance=1, loss=loss_sum / seen, acc=correct / seen)
    run.train_time += time.perf_counter() - t0
    record = {"epoch": epoch + 1, "size": size, "loss": loss_sum / seen, "train_acc": correct / seen,
              "seconds": round(run.train_time, 1)}
    run.history.append(record)
    run.console.log(f"epoch {epoch + 1}/{cfg.epochs} size {log_size} loss {loss_sum / seen:.4f} "
                    f"train acc {correct / seen:.4f} ({run.train_time:.0f}s)")
    return record


def _final_test(run: _Run) -> tuple[int, int, float, float]:
    """(correct, images, mean loss, seconds) of the trained model on the test split at the training size."""
    from resbench import data

    cfg = run.cfg
    t0 = time.perf_counter()
    x_test, y_test = (t.to(cfg.device) for t in data.load(  # (N, C, r, r), (N,)
        cfg.dataset, "test", cfg.train_res, cfg.data_dir, stats=run.stats, limit=cfg.test_limit, seed=cfg.seed))
    size_text = size_label(tuple(x_test.shape[2:]))
    with _progress(run.console, f"final test @ {size_text}", len(y_test)) as (bar, task):
        correct, test_loss = evaluate(run.model, x_test, y_test, on_batch=lambda b: bar.update(task, advance=b))
    seconds = time.perf_counter() - t0
    run.console.log(f"native test accuracy at {format_size(tuple(x_test.shape[2:]))}: {correct / len(y_test):.4f} on {len(y_test)} "
                    f"images (final test {seconds:.0f}s)")
    return correct, len(y_test), test_loss, seconds


def _final_checkpoint(run: _Run, correct: int, n_test: int, test_loss: float, test_time: float) -> Checkpoint:
    cfg, model = run.cfg, run.model.cpu()  # checkpoints hold CPU tensors, whatever the device
    wall_time = run.earlier_wall + time.perf_counter() - run.started
    return Checkpoint(
        model=cfg.model, config=model.config_dict(),
        provenance={"dataset": cfg.dataset, "train_res": cfg.train_res, "schedule": [list(s) for s in cfg.schedule],
                    "epochs": cfg.epochs, "seed": cfg.seed, "bandlimit": getattr(model.config, "bandlimit", None),
                    "mask": getattr(model.config, "mask", None), "multiscale": cfg.multiscale,
                    "native_accuracy": correct / n_test, "native_test_n": n_test, "native_test_loss": test_loss,
                    "wall_time_s": round(wall_time, 1), "train_time_s": round(run.train_time, 1),
                    "test_time_s": round(test_time, 1), "versions": package_versions(),
                    "device": device_name(torch.device(cfg.device)),
                    "train_config": asdict(cfg), "history": run.history},
        data_stats={"mean": list(run.stats[0]), "std": list(run.stats[1])},
        state_dict=model.state_dict())


@contextmanager
def _progress(console, description: str, total: int, fields_text: str = "", **fields):
    """A transient rich bar of `total` steps; `fields_text` shows `fields`, which bar.update may change."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TextColumn(fields_text),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        yield bar, bar.add_task(description, total=total, **fields)


def _save_state(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ResbenchError(f"{path}: unreadable training state ({type(e).__name__}); remove it to start over")
