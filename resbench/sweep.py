"""The train x test resolution grid: every (checkpoint, test size, policy, bandlimit) cell -> one tidy row.

Checkpoint files and models from outside resbench (resbench.external: timm models, nn.Module factories)
are swept alike: each is a source with a model, an identity (sha256) and normalisation statistics.

A sweep is validated (every user error before any work), planned (the cells, the images each uses)
and executed cell by cell. Each finished cell is appended to the folder's log and the tables are
rebuilt atomically (resbench.store), so a run killed at any moment loses at most the cell in
flight, and a rerun skips what is done.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import torch

from resbench import data
from resbench.checkpoints import Checkpoint, find_checkpoints, load_checkpoint, package_versions
from resbench.device import (CPU_MEMORY_BUDGET, autocast, check_precision, device_name, free_memory_budget,
                             resolve_device)
from resbench.errors import ResbenchError
from resbench.resolution import (bandlimit_alpha, default_test_sizes, format_size, parse_bandlimit, parse_size,
                                 resize_images, sort_sizes)
from resbench.progress import CellProgress
from resbench.scoring import score, wilson_interval
from resbench.store import (append_row, check_out_dir, log_path, read_rows, repair_log, results_frame, row_key,
                            write_run, write_samples, write_tables)

__all__ = ["SweepConfig", "Cell", "SweepPlan", "plan_cells", "validate", "plan", "execute", "run_sweep",
           "training_sizes", "recipe",
           "parse_shard", "images_key", "evaluate_cell", "cache_batch", "CACHE_PIXELS", "summary_frame"]

MEMORY_BUDGET = CPU_MEMORY_BUDGET  # bytes of activations one batch may take on the CPU; a GPU: half its free memory


@dataclass
class SweepConfig:
    checkpoints: list[str]
    out: str
    test_res: list[tuple[int, int]] | None = None   # None: default_test_sizes of the checkpoints
    bandlimit: list[str] = field(default_factory=lambda: ["on", "off", "adaptive"])  # on, off, adaptive or an alpha
    policy: list[str] = field(default_factory=lambda: ["native", "resize-input"])
    dataset: str | None = None       # None: each checkpoint's own
    data_dir: str | None = None
    limit: int | None = None         # first N test images, the same for every cell
    seed: int = 0
    batch_size: int = 256
    shard: tuple[int, int] = (1, 1)  # (k, n): this process runs every n-th cell starting at k-1
    threads: int = 2                 # CPU threads
    device: str = "cpu"              # auto, cpu, cuda, cuda:N or mps (validate makes it concrete)
    precision: str = "fp32"          # fp32, bf16 or fp16 (autocast); part of a cell's identity
    models: list = field(default_factory=list)  # sources from outside resbench (resbench.external), after the files
    log_samples: bool = False        # write each cell's per-image records (samples/*.parquet)


@dataclass(frozen=True)
class Cell:
    ckpt_index: int
    test_res: tuple[int, int]
    policy: str
    bandlimit: str  # "on", "off", "none" or an alpha as text

    def key(self, ckpt: Checkpoint, seed: int, images: int, precision: str) -> tuple:
        """The cell's identity in the store (store.KEY_COLUMNS); `images`: the test images used, -1 for all."""
        return (ckpt.sha256, format_size(self.test_res), self.policy, self.bandlimit, seed, images, precision)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ResbenchError(f"--shard {text!r}: expected K/N such as 1/4") from None
    if not (n >= 1 and 1 <= k <= n):
        raise ResbenchError(f"--shard {text!r}: expected 1 <= K <= N")
    return k, n


def _adaptive_kernels(ckpt: Checkpoint) -> bool:
    """Whether the checkpoint's model has continuous kernels that can follow the test grid."""
    from resbench.models.registry import list_models, model_class

    return ckpt.model in list_models() and model_class(ckpt.model).adaptive_kernels


def _bandlimit_values(ckpt: Checkpoint, requested: list[str]) -> list[str]:
    """Settings that apply to this checkpoint: 'none' for models without a bandlimit (and 'adaptive' for
    those with adaptive kernels); 'on' and 'adaptive' only for a checkpoint trained with an alpha."""
    trained_alpha = ckpt.config.get("bandlimit")
    if "bandlimit" not in ckpt.config:
        return ["none"] + (["adaptive"] if "adaptive" in requested and _adaptive_kernels(ckpt) else [])
    usable = [b for b in requested if not (b in ("on", "adaptive") and trained_alpha is None)]
    return [b for b in usable if b != "adaptive" or _adaptive_kernels(ckpt)] or ["off"]


def _adaptive_differs(ckpt: Checkpoint, size: tuple[int, int], policy: str) -> bool:
    """An adaptive cell differs from the 'on' (or 'none') cell only where the model runs below its training
    size on some axis; elsewhere it would repeat that cell, so it is not planned."""
    return policy == "native" and any(s < t for s, t in zip(size, ckpt.train_res))


def training_sizes(ckpt: Checkpoint) -> set[tuple[int, int]]:
    """The sizes a checkpoint was trained at: every stage of its schedule, else its training size."""
    sizes = {tuple(ckpt.train_res)}
    for stage in ckpt.provenance.get("schedule") or []:
        try:
            sizes.add(parse_size(stage[0]))
        except (ResbenchError, TypeError, IndexError):
            continue  # a schedule resbench cannot read names no size
    return sizes


def recipe(ckpt: Checkpoint) -> str:
    """How the checkpoint was trained, as a short text: 'size:epochs,...' and any config overrides."""
    stages = ",".join(f"{format_size(parse_size(size))}:{epochs}" for size, epochs in
                      (ckpt.provenance.get("schedule") or []))
    overrides = (ckpt.provenance.get("train_config") or {}).get("model_overrides") or {}
    extra = " ".join(f"{k}={v}" for k, v in sorted(overrides.items()) if k != "bandlimit")
    return " ".join(part for part in (stages, extra) if part)


def _alpha(ckpt: Checkpoint, setting: str):
    return bandlimit_alpha(setting, ckpt.config.get("bandlimit"))


def _bandlimit_context(model: torch.nn.Module, alpha: float | None, adaptive: bool = False):
    """The model's own bandlimit switch (a model from outside resbench has one), else its continuous layers'."""
    from resbench.models import bandlimit

    own = getattr(model, "bandlimit_context", None)
    return own(alpha) if own is not None else bandlimit(model, alpha, adaptive)


def images_key(limit: int | None, available: int) -> int:
    """The test images a cell uses, as keyed in the store: -1 for the whole split (a --limit at or
    above its size included), else the limit; so `--limit 99999` on 10k images is the full run."""
    return -1 if limit is None or limit >= available else limit


def plan_cells(ckpts: list[Checkpoint], cfg: SweepConfig) -> list[Cell]:
    """All cells of the sweep in a fixed order; the shard keeps every n-th, starting at k-1."""
    sizes = cfg.test_res or default_test_sizes(c.train_res for c in ckpts)
    cells = [Cell(i, size, policy, bl) for i, ckpt in enumerate(ckpts) for size in sizes for policy in cfg.policy
             for bl in _bandlimit_values(ckpt, cfg.bandlimit)
             if bl != "adaptive" or _adaptive_differs(ckpt, size, policy)]
    k, n = cfg.shard
    return cells[k - 1::n]


# ----------------------------------------------------------------------------------------------
# evaluation


# A batch of about 25k pixels (32 images at 28x28, 8 at 56x56) keeps a layer's activations near the
# cache: measured on the 2-core CPU, s4nd_iso evaluates 789 img/s at 28x28 in batches of 32 against
# 491 in batches of 256, and 185 against 110 img/s at 56x56 (batch 8 vs 256).
CACHE_PIXELS = 32 * 28 * 28


def _budget(cfg: SweepConfig) -> int:
    """Bytes of activations one batch may take on the sweep's device."""
    device = torch.device(cfg.device)
    return free_memory_budget(device) if device.type == "cuda" else MEMORY_BUDGET


def _batch_size_for(model: torch.nn.Module, size: tuple[int, int], requested: int, budget: int | None = None) -> int:
    """Shrink the batch so one batch's activations stay under the budget (MEMORY_BUDGET by default); refuse
    hopeless sizes."""
    budget = MEMORY_BUDGET if budget is None else budget
    width = max((p.shape[0] for p in model.parameters() if p.dim() >= 2), default=64)
    per_image = 12 * width * size[0] * size[1] * 4  # bytes: a dozen live activation maps of the widest layer
    if per_image > budget:
        raise ResbenchError(f"test size {format_size(size)}: one image needs about "
                            f"{per_image / 1024 ** 3:.1f} GiB of activations (budget "
                            f"{budget / 1024 ** 3:.0f} GiB); choose a smaller size")
    return max(1, min(requested, budget // per_image))


def _dataset_name(ckpt: Checkpoint, cfg: SweepConfig) -> str:
    """The dataset a checkpoint is tested on: --dataset, else the one it was trained on."""
    return cfg.dataset or ckpt.provenance.get("dataset") or "fashion-mnist"


def _row_warning(ckpt: Checkpoint, tested: str) -> str:
    """What every row of this checkpoint on the dataset `tested` (its canonical name) should say about its
    normalisation: the source's own notes, and a test set other than the one its statistics come from."""
    notes = list(ckpt.provenance.get("warnings") or [])
    trained = ckpt.provenance.get("dataset")
    if trained and str(trained).strip().lower().replace("_", "-") != tested:
        notes.append(f"normalisation: statistics made for {trained}, tested on {tested}")
    return "; ".join(notes)


def cache_batch(requested: int, size: tuple[int, int]) -> int:
    """`requested`, cut to at most CACHE_PIXELS model pixels per batch (at least 8 images)."""
    return min(requested, max(8, CACHE_PIXELS // (size[0] * size[1])))


def _model_size(ckpt: Checkpoint, cell: Cell) -> tuple[int, int]:
    """The size the model runs at: the training size under resize-input, the test size natively."""
    return ckpt.train_res if cell.policy == "resize-input" else cell.test_res


def _cell_batch_size(model: torch.nn.Module, ckpt: Checkpoint, cell: Cell, cfg: SweepConfig) -> int:
    """The batch of one cell, for the size the model runs at; the test images themselves exist at the
    test size either way."""
    size, budget = _model_size(ckpt, cell), _budget(cfg)
    batch = _batch_size_for(model, size, cache_batch(cfg.batch_size, size), budget)
    per_image = 3 * model.config.in_chans * cell.test_res[0] * cell.test_res[1] * 4  # resized, normalised, temp
    if per_image > budget:
        raise ResbenchError(f"test size {format_size(cell.test_res)}: one test image needs about "
                            f"{per_image / 1024 ** 3:.1f} GiB (budget {budget / 1024 ** 3:.0f} GiB); "
                            "choose a smaller size")
    return max(1, min(batch, budget // per_image))


def _check_cells(ckpts: list[Checkpoint], cells: list[Cell], cfg: SweepConfig) -> list[torch.nn.Module]:
    """User errors any cell would hit, raised before any work: a test set the model cannot take, a size no
    batch fits. Returns the checkpoints' models, built once for the check and reused by the sweep."""
    models = []
    for i, ckpt in enumerate(ckpts):
        model = ckpt.build_model().to(cfg.device)
        models.append(model)
        info = data.dataset_info(_dataset_name(ckpt, cfg), cfg.data_dir)
        takes = (model.config.in_chans, model.config.num_classes)
        if takes != (info.in_chans, info.num_classes):
            raise ResbenchError(f"{ckpt.path}: the model takes {takes[0]} channel(s) and {takes[1]} classes, "
                                f"dataset {info.name!r} has {info.in_chans} and {info.num_classes}; "
                                f"choose a --dataset like the one it was trained on")
        for cell in cells:
            if cell.ckpt_index == i:
                _cell_batch_size(model, ckpt, cell, cfg)
    return models


class _TestImages:
    """A checkpoint's test split, kept raw in memory and resized batch by batch (memory stays bounded)."""

    def __init__(self, ckpt: Checkpoint, cfg: SweepConfig):
        self.dataset = _dataset_name(ckpt, cfg)
        info = data.dataset_info(self.dataset, cfg.data_dir)  # once: an image folder is scanned
        self.classes = list(info.classes)
        self.warning = _row_warning(ckpt, info.name)
        self.cfg = cfg
        self.stats = (ckpt.data_stats["mean"], ckpt.data_stats["std"])
        if self.dataset == "synthetic":
            self.raw, self.labels = None, data.load_raw("synthetic", "test", limit=cfg.limit, seed=cfg.seed)[1]
        else:
            self.raw, self.labels = data.load_raw(self.dataset, "test", cfg.data_dir, cfg.limit, cfg.seed)

    def batches(self, size: tuple[int, int], batch: int):
        """(images, labels) batches at `size` on the sweep's device: stored images are resized there."""
        device = torch.device(self.cfg.device)
        mean = torch.tensor(self.stats[0], device=device)[:, None, None]  # (C, 1, 1)
        std = torch.tensor(self.stats[1], device=device)[:, None, None]  # (C, 1, 1)
        for i in range(0, len(self.labels), batch):
            if self.raw is None:  # synthetic: rendered at the size itself, the point of that dataset
                x = data.render_synthetic("test", size, self.cfg.seed, limit=min(i + batch, len(self.labels)),
                                          start=i)[0].to(device)
            else:
                x = resize_images(self.raw[i:i + batch].to(device), size)
            yield (x - mean) / std, self.labels[i:i + batch].to(device)  # (b, C, h, w), (b,)


def evaluate_cell(model, images: _TestImages, ckpt: Checkpoint, cell: Cell, cfg: SweepConfig,
                  num_classes: int, on_batch: Callable[[int], None] | None = None) -> dict:
    """Score one cell; `on_batch(n)` is called after each batch of n images."""
    t0 = time.perf_counter()
    batch = _cell_batch_size(model, ckpt, cell, cfg)
    ctx = (_bandlimit_context(model, _alpha(ckpt, cell.bandlimit), cell.bandlimit == "adaptive")
           if cell.bandlimit != "none" else contextlib.nullcontext())
    with ctx, autocast(torch.device(cfg.device), cfg.precision):
        result = score(model, images.batches(cell.test_res, batch), num_classes, cell.policy, on_batch,
                       samples=cfg.log_samples)
    seconds = time.perf_counter() - t0
    n, correct = result.n, result.correct
    low, high = wilson_interval(correct, n)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else float("nan"), "ci_low": low,
            "ci_high": high, "loss": result.loss, "seconds": round(seconds, 3),
            "images_per_s": round(n / seconds, 1) if seconds > 0 else None, "error": "",
            "class_n": result.class_n.tolist(), "class_correct": result.class_correct.tolist(),
            **({"_records": result.samples} if result.samples is not None else {})}


# ----------------------------------------------------------------------------------------------
# validate, plan, execute


@dataclass
class SweepPlan:
    """What a validated sweep will do: its checkpoints (models built), all planned cells, those left to run."""
    cfg: SweepConfig
    ckpts: list[Checkpoint]
    models: list[torch.nn.Module]
    cells: list[Cell]        # every cell of this shard
    todo: list[Cell]         # those not yet in the folder
    n_test: dict[int, int]   # checkpoint index -> test images each of its cells uses
    images: dict[int, int]   # checkpoint index -> the store's key for them (images_key)
    available: dict[int, int]  # checkpoint index -> images in its whole test split

    def subset(self) -> str:
        """'' for a run on whole test splits, else what part of them it uses, said plainly."""
        parts = sorted({(self.n_test[i], n) for i, n in self.available.items() if self.n_test[i] < n})
        return "; ".join(f"SUBSET: the first {k} of {n} test images per cell" for k, n in parts)


def _check_names(ckpts: list[Checkpoint]) -> None:
    """Rows are grouped by checkpoint name: two different models under one name would mix (or supersede)."""
    seen: dict[str, Checkpoint] = {}
    for ckpt in ckpts:
        other = seen.setdefault(ckpt.name, ckpt)
        if other.sha256 != ckpt.sha256:
            raise ResbenchError(f"{ckpt.path} and {other.path}: two different models named {ckpt.name!r}; "
                                f"rename one (results are grouped by name)")


def validate(cfg: SweepConfig) -> tuple[list[Checkpoint], list[Cell], list[torch.nn.Module]]:
    """Every user error a sweep can hit, raised before any work: options, checkpoint files, datasets, sizes,
    the output folder. Returns the checkpoints, the shard's cells and the checkpoints' models."""
    if cfg.limit is not None and cfg.limit < 1:
        raise ResbenchError(f"--limit {cfg.limit}: expected a positive number of images")
    if cfg.batch_size < 1:
        raise ResbenchError(f"--batch-size {cfg.batch_size}: expected a positive number")
    for policy in cfg.policy:
        if policy not in ("native", "resize-input"):
            raise ResbenchError(f"--policy {policy!r}: expected native or resize-input")
    cfg.bandlimit = [parse_bandlimit(b) for b in cfg.bandlimit]
    if cfg.log_samples:
        try:
            import pyarrow  # noqa: F401  (the per-image records are Parquet files)
        except ImportError:
            raise ResbenchError("--log-samples: needs pyarrow (pip install pyarrow)") from None
    cfg.device, cfg.precision = str(resolve_device(cfg.device)), check_precision(cfg.precision)
    ckpts = [load_checkpoint(p) for p in find_checkpoints(cfg.checkpoints)] + list(cfg.models)  # every file checked
    if not ckpts:
        raise ResbenchError("nothing to sweep: give checkpoint files or folders, or --model SPEC "
                            "(timm:NAME or package.module:factory)")
    _check_names(ckpts)
    for name in sorted({_dataset_name(c, cfg) for c in ckpts}):
        # dataset_info alone does not look for the files of fixed sets (mnist, ...): read one test image
        data.load_raw(name, "test", cfg.data_dir, limit=1)
    cells = plan_cells(ckpts, cfg)
    models = _check_cells(ckpts, cells, cfg)
    check_out_dir(Path(cfg.out))
    return ckpts, cells, models


def plan(cfg: SweepConfig) -> SweepPlan:
    """Validate, then find the cells the folder does not hold yet (keyed by the test images really used)."""
    ckpts, cells, models = validate(cfg)
    available = {name: len(data.load_raw(name, "test", cfg.data_dir, seed=cfg.seed)[1])  # parsed once, cached
                 for name in {_dataset_name(c, cfg) for c in ckpts}}
    full = {i: available[_dataset_name(c, cfg)] for i, c in enumerate(ckpts)}
    n_test = {i: n if cfg.limit is None else min(n, cfg.limit) for i, n in full.items()}
    images = {i: images_key(cfg.limit, n) for i, n in full.items()}
    repair_log(log_path(Path(cfg.out), cfg.shard))
    out = Path(cfg.out)
    # with --log-samples a cell whose row has no records file (yet) runs again; its row is rewritten the same
    done = {row_key(r) for r in read_rows(out) if not r.get("error")
            and (not cfg.log_samples or (r.get("samples") and (out / r["samples"]).is_file()))}
    todo = [c for c in cells
            if c.key(ckpts[c.ckpt_index], cfg.seed, images[c.ckpt_index], cfg.precision) not in done]
    return SweepPlan(cfg, ckpts, models, cells, todo, n_test, images, full)


def _code_commit() -> dict:
    """The git commit of resbench's own source tree, when it is a checkout (None otherwise), and whether
    files differ from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}


def _run_record(p: SweepPlan, run_id: str, started: str) -> dict:
    """This run's record as it starts ("finished" None; run_sweep fills it in at the end)."""
    cfg = p.cfg
    return {"run_id": run_id, "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "started": started,
            "finished": None, "shard": list(cfg.shard), "code": _code_commit(), "versions": package_versions(),
            "device": device_name(torch.device(cfg.device)), "precision": cfg.precision,
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
            "config": {**{k: v for k, v in vars(cfg).items() if k not in ("test_res", "models")},
                       "test_res": None if cfg.test_res is None else [format_size(s) for s in cfg.test_res],
                       "models": [m.name for m in cfg.models]},
            "checkpoints": [{"name": c.name, "path": str(c.path), "sha256": c.sha256, "model": c.model,
                             "train_res": format_size(c.train_res), "test_images": p.n_test[i],
                             "test_split_images": p.available[i],
                             "native_accuracy": c.provenance.get("native_accuracy")} for i, c in enumerate(p.ckpts)],
            "planned_cells": [[p.ckpts[c.ckpt_index].name, format_size(c.test_res), c.policy, c.bandlimit]
                              for c in p.cells]}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cell_row(p: SweepPlan, cell: Cell, images: _TestImages) -> dict:
    """The identifying part of a cell's row; evaluate_cell adds the measurement."""
    ckpt = p.ckpts[cell.ckpt_index]
    return {"model": ckpt.model, "checkpoint": ckpt.name, "checkpoint_sha256": ckpt.sha256,
            "dataset": images.dataset, "train_res": format_size(ckpt.train_res),
            "test_res": format_size(cell.test_res), "policy": cell.policy, "bandlimit": cell.bandlimit,
            "alpha": _alpha(ckpt, cell.bandlimit), "seed": p.cfg.seed, "precision": p.cfg.precision,
            "device": device_name(torch.device(p.cfg.device)), "limit": p.images[cell.ckpt_index],
            "test_images": ("full" if p.images[cell.ckpt_index] == -1 else
                            f"first {p.n_test[cell.ckpt_index]} of {p.available[cell.ckpt_index]}"),
            "class_names": images.classes, "warning": images.warning,
            "seen_in_training": tuple(cell.test_res) in training_sizes(ckpt),
            "trained_bandlimit": ckpt.config.get("bandlimit"), "recipe": recipe(ckpt)}


def _failed(e: Exception) -> dict:
    """The measurement part of a failed cell's row: a failed cell is a row, not a gap."""
    nan = float("nan")
    return {"n": 0, "correct": 0, "accuracy": nan, "ci_low": nan, "ci_high": nan, "loss": nan, "seconds": 0.0,
            "images_per_s": None, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}


def execute(p: SweepPlan, console, on_cell_done=None) -> None:
    """Run the plan's cells in order; after each, append its row and rebuild the tables."""
    out, log = Path(p.cfg.out), log_path(Path(p.cfg.out), p.cfg.shard)
    pixels = [math.prod(_model_size(p.ckpts[c.ckpt_index], c)) for c in p.todo]  # per image, as the model runs
    work = [p.n_test[c.ckpt_index] * px for c, px in zip(p.todo, pixels)]
    with CellProgress(console, work) as progress:
        current, images = None, None
        for i, (cell, per_image) in enumerate(zip(p.todo, pixels)):
            ckpt, model = p.ckpts[cell.ckpt_index], p.models[cell.ckpt_index]
            if cell.ckpt_index != current:  # cells come grouped by checkpoint: load each test set once
                images, current = _TestImages(ckpt, p.cfg), cell.ckpt_index
            description = f"{ckpt.name} @ {format_size(cell.test_res)} {cell.policy} bl={cell.bandlimit}"
            on_batch = progress.cell_started(description, per_image)
            row = _cell_row(p, cell, images)
            try:
                row.update(evaluate_cell(model, images, ckpt, cell, p.cfg, model.config.num_classes, on_batch))
            except ResbenchError:
                raise
            except (RuntimeError, MemoryError, ValueError) as e:
                row.update(_failed(e))
            records = row.pop("_records", None)
            if records is not None:  # the records first: a row that names a file always has it
                row["samples"] = write_samples(out, row, records)
            append_row(log, row)
            write_tables(out)
            progress.cell_done(i, description, row)
            if on_cell_done is not None:
                on_cell_done(row)


def run_sweep(cfg: SweepConfig, quiet: bool = False, on_cell_done=None) -> pd.DataFrame:
    """Evaluate every cell not already in OUT; return the results frame of OUT (current checkpoint files)."""
    from rich.console import Console

    p = plan(cfg)
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    k, n = cfg.shard
    run_id = f"{time.time_ns()}-{k}of{n}-{os.getpid()}"  # unique, and sorts by start time
    record = _run_record(p, run_id, _now())
    write_run(out, record)
    console = Console(stderr=True, quiet=quiet, highlight=False)
    # print, not log: a log file or pipe (80 columns) gets the line whole, never wrapped mid-phrase
    console.print(f"[{datetime.now().strftime('%H:%M:%S')}] sweep: {len(p.cells)} cells in this shard, "
                  f"{len(p.cells) - len(p.todo)} already done, {len(p.todo)} to run"
                  + (f"; {p.subset()}" if p.subset() else ""), soft_wrap=True, markup=False)
    execute(p, console, on_cell_done)
    df = write_tables(out) if read_rows(out) else results_frame([])
    write_run(out, {**record, "finished": _now()})
    df.attrs["checkpoint_sha256"] = [c.sha256 for c in p.ckpts]  # the files this run swept
    df.attrs["limit"] = sorted(set(p.images.values()))  # and the test images and seed of its cells
    df.attrs["seed"] = cfg.seed
    df.attrs["subset"] = p.subset()
    return df


def summary_frame(df: pd.DataFrame, sha256s: Iterable[str] | None = None, precision: str | None = None,
                  limits: Iterable[int] | None = None, seed: int | None = None) -> tuple[pd.DataFrame, int]:
    """(accuracy in % by test size, one row per checkpoint, train size, policy and bandlimit; failed cells).

    `sha256s`, `precision`, `limits` (the store's test-images keys) and `seed` keep only what a run swept,
    so a folder that also holds a subset run (or another seed) never mixes it in; failures are counted
    among the rows kept.
    """
    if sha256s is not None:
        df = df[df["checkpoint_sha256"].isin(set(sha256s))]
    if precision is not None:
        df = df[df["precision"] == precision]
    if limits is not None:
        df = df[df["limit"].isin(set(limits))]
    if seed is not None:
        df = df[df["seed"] == seed]
    ok = df[df["error"] == ""]
    keys = ["checkpoint", "train_res", "policy", "bandlimit"]
    table = (100 * ok.pivot_table(index=keys, columns="test_res", values="accuracy", aggfunc="first"))
    table = table[sort_sizes(table.columns)].reset_index() if len(ok) else pd.DataFrame(columns=keys)
    table.columns.name = None
    return table, int((df["error"] != "").sum())
