"""Training, in one readable loop: config dataclass, progressive resizing, resumable epochs, any device."""

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

__all__ = ["TrainConfig", "EpochEnd", "SIZES", "EPOCHS", "check_train_size", "parse_schedule", "train_config", "train",
           "evaluate", "state_path"]

# parameters of the SSM itself (step, A, B) get their own learning rate and no weight decay (FACTS 1)
SSM_PARAM = re.compile(r"(^|\.)kernel\.\d+\.(inv_dt|A_real|A_imag|B)$")
SIZES = range(4, 1025)  # train sizes a schedule accepts
# TrainConfig fields that say where a run goes, not what it computes: a state may resume under others
RUN_SETTINGS = ("threads", "device")
EPOCHS = range(1, 10001)  # epochs one phase of a schedule accepts


@dataclass
class TrainConfig:
    model: str
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    schedule: list[tuple] = field(default_factory=lambda: [(14, 3)])  # [(size, epochs), ...]; size: int (square
    # image) or a list ([L], [h, w], [t, h, w])
    batch_size: int = 64
    lr: float = 5e-3             # AdamW, all but the SSM parameters
    weight_decay: float = 0.05
    ssm_lr: float = 1e-3         # SSM step, A and B
    ssm_weight_decay: float = 0.0
    warmup_frac: float = 0.05    # linear warm-up, then cosine to zero, over all steps of all phases
    label_smoothing: float = 0.0
    seed: int = 0
    limit: int | None = None     # first N training images (quick runs and tests)
    test_limit: int | None = None  # first N test images for the final test
    threads: int | None = None   # CPU threads; None: torch's default (the cores, or $OMP_NUM_THREADS)
    device: str = "cpu"          # where the model trains and is tested ("cuda", "cuda:1", ...)
    multiscale: list | None = None  # multi-scale training: each batch at a size drawn from these (train_res
    # among them); None: every batch at the schedule's size. train_res stays the model's reference grid
    model_overrides: dict = field(default_factory=dict)  # fields of the model config (width, bandlimit, ...)

    @property
    def train_res(self) -> int | list[int]:
        return self.schedule[-1][0]  # the model's reference grid is the final size

    @property
    def epochs(self) -> int:
        return sum(e for _, e in self.schedule)


def _train_size(size: tuple[int, ...]):
    """A training size as configs and checkpoints hold it: an int for a square image (as ever), else a list."""
    return size[0] if len(size) == 2 and size[0] == size[1] else list(size)


def _size_label(sides: tuple[int, ...]) -> str:
    """How progress lines name a size: 14px, 28x20px, 8000 samples, 8x14x14 (frames x height x width)."""
    text = format_size(sides)
    return {1: f"{text} samples", 2: f"{text}px", 3: text}[len(sides)]


def check_train_size(value, dims: int = 2, what: str = "--train-res"):
    """A training size in any form parse_size takes, for a dataset of `dims` axes -> its config form (an int
    for a square image, else a list). Each side must lie in SIZES (a signal's length: up to MAX_LENGTH)."""
    from resbench.resolution import MAX_LENGTH, parse_size

    try:
        size = parse_size(value, dims)
    except ResbenchError as e:
        if isinstance(value, (int, str)) and str(value).strip().lstrip("-").isdigit():
            size = None  # a plain count out of range: the message below names the range
        else:
            raise ResbenchError(f"{what} {value}: {e}") from None
    top = MAX_LENGTH if dims == 1 else SIZES.stop - 1
    if size is None or not all(SIZES.start <= v <= top for v in size):
        raise ResbenchError(f"{what} {value}: expected a whole number in {SIZES.start}..{top} per side"
                            + ("" if dims == 2 else f" ({'L' if dims == 1 else 'TxHxW'})"))
    return _train_size(size)


def parse_schedule(text: str, dims: int = 2) -> list[tuple[int | list[int], int]]:
    """'7:2,14:1,28:1' -> [(7, 2), (14, 1), (28, 1)]: train at each size for that many epochs, in order.

    Sizes take every form of the dataset's `dims` ('4000:2,8000:1' for signals, '4x14x14:1,8x14x14:2' for clips).
    """
    items = str(text).split(",")
    out = []
    for item in items:
        m = re.fullmatch(r"\s*(\d+(?:\s*[xX]\s*\d+)*)\s*:\s*(\d+)\s*", item)
        if not m:
            raise ResbenchError(f"schedule {text!r}: item {item!r} is not SIZE:EPOCHS (example: 7:2,14:1,28:1)")
        try:
            size = check_train_size(m.group(1).strip(), dims, "size")
        except ResbenchError as e:
            raise ResbenchError(f"schedule {text!r}: {e}") from None
        try:
            epochs = int(m.group(2))
        except ValueError:  # more digits than int() converts (4300): far outside the range below
            raise ResbenchError(f"schedule {text!r}: item {item!r} holds a number far too large") from None
        if epochs not in EPOCHS:
            raise ResbenchError(f"schedule {text!r}: epochs {epochs} is outside {EPOCHS.start}..{EPOCHS.stop - 1}")
        out.append((size, epochs))
    return out


def train_config(model: str, *, train_res: int | None = None, epochs: int | None = None, schedule: str | None = None,
                 bandlimit: str | None = None, mask: str | None = None, multiscale: str | None = None,
                 model_overrides: dict | None = None, **fields) -> TrainConfig:
    """A checked TrainConfig from what a user gives (the `train` command's options).

    Either `schedule` ('7:2,14:1,28:1') or `train_res` (default 14) with `epochs` (default 3);
    `bandlimit` as text: an alpha in (0, 1], or off / none; `mask` the S4ND mask kind (band, random);
    `multiscale` sizes as text ('4,5,6,7'), train_res among them; `fields` are other TrainConfig fields.
    Every user error is raised here, before any work: bad counts, an unknown model or config field,
    a bandlimit for a model without one.
    """
    from resbench import data
    from resbench.models import create_model
    from resbench.resolution import parse_bandlimit

    if schedule is not None and (train_res is not None or epochs is not None):
        raise ResbenchError("--schedule: give either --schedule or --train-res/--epochs, not both")
    if epochs is not None and epochs not in EPOCHS:
        raise ResbenchError(f"--epochs {epochs}: expected a whole number in {EPOCHS.start}..{EPOCHS.stop - 1}")
    for name in ("batch_size", "limit", "test_limit"):
        if fields.get(name) is not None and fields[name] < 1:
            raise ResbenchError(f"--{name.replace('_', '-')} {fields[name]}: expected a positive number")
    # the dataset's axes say what a size means: 8000 is a signal's length for spoken digits, a square elsewhere
    dims = len(data.dataset_info(fields.get("dataset", "fashion-mnist"), fields.get("data_dir")).native_size)
    if train_res is None and dims != 2 and schedule is None:
        raise ResbenchError(f"--train-res: needed for the {dims}-d dataset {fields.get('dataset')!r} "
                            f"({'a length like 8000' if dims == 1 else 'TxHxW like 8x14x14'})")
    sched = parse_schedule(schedule, dims) if schedule else [
        (14 if train_res is None else check_train_size(train_res, dims), 3 if epochs is None else epochs)]
    overrides = dict(model_overrides or {})
    # unknown model or field, a family that takes no such inputs: user errors before any work
    probe = create_model(model, **{"train_res": sched[-1][0], **overrides})
    if bandlimit is not None:
        setting = parse_bandlimit(bandlimit, names=("off", "none"))
        if not probe.has_bandlimit:
            raise ResbenchError(f"--bandlimit: model {model!r} has no bandlimit")
        overrides["bandlimit"] = None if setting in ("off", "none") else float(setting)
    if mask is not None:
        if not probe.has_bandlimit:
            raise ResbenchError(f"--mask: model {model!r} has no bandlimit mask")
        overrides["mask"] = mask
        create_model(model, **{"train_res": sched[-1][0], **overrides})  # a random mask with the bandlimit off
    if multiscale is not None:
        fields["multiscale"] = parse_multiscale(multiscale, sched, dims)
    if "device" in fields:  # "auto" becomes the device it picks, so the checkpoint records a real one
        fields["device"] = str(resolve_device(fields["device"]))
    return TrainConfig(model=model, schedule=sched, model_overrides=overrides, **fields)


def parse_multiscale(text: str, sched: list[tuple], dims: int) -> list:
    """'4,5,6,7' -> [4, 5, 6, 7]: the sizes of multi-scale training, for a one-phase schedule whose size is
    among them (the model's reference grid, its size in sweeps)."""
    sizes = []
    for item in str(text).split(","):
        size = check_train_size(item.strip(), dims, "--multiscale size")
        if size not in sizes:
            sizes.append(size)
    if len(sched) != 1:
        raise ResbenchError("--multiscale: expected --train-res/--epochs, not a --schedule of several sizes")
    if sched[0][0] not in sizes or len(sizes) < 2:
        raise ResbenchError(f"--multiscale {text}: expected two or more sizes, the training size "
                            f"{sched[0][0]} among them")
    return sizes


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
    size = cfg.train_res if len(xs) > 1 else _train_size(sizes[0])  # as the schedule writes it: 14, [8000], [8, 14, 14]
    several = "multi-scale " + ",".join(map(format_size, sizes))
    size_text, log_size = (_size_label(sizes[0]), format_size(sizes[0])) if len(xs) == 1 else (several, several)
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
    size_text = _size_label(tuple(x_test.shape[2:]))
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
