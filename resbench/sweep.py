"""The train x test resolution grid: every (checkpoint, test size, policy, bandlimit) cell -> one tidy row.

Checkpoint files and models from outside resbench (resbench.external: timm models, nn.Module factories)
are swept alike: each is a source with a model, an identity (sha256) and normalisation statistics.

A sweep is validated (every user error before any work), planned (the cells, the images each uses)
and executed: cell by cell in this process, or as Ray tasks (resbench.executors). Each finished cell
is appended to the folder's log by this process and the tables are rebuilt atomically (resbench.store),
so a run killed at any moment loses at most the cells in flight, and a rerun skips what is done.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd
import torch

from resbench import data
from resbench.checkpoints import Checkpoint, find_checkpoints, load_checkpoint, package_versions
from resbench.data.stream import check_stream_options, default_workers, folder_batches, folder_split, transform_text
from resbench.data.subset import SUBSET_RULES, stratified_indices, subset_text
from resbench.device import (CPU_MEMORY_BUDGET, autocast, check_precision, device_name, free_memory_budget,
                             resolve_device)
from resbench.errors import ResbenchError
from resbench.resolution import (DEFAULT_BANDLIMITS, KINDS, bandlimit_alpha, default_test_sizes, fit_sizes, format_size,
                                 parse_bandlimit, parse_size, resize_images, sort_sizes)
from resbench.progress import CellProgress, rate_unit
from resbench.scoring import score, top5_columns, wilson_interval
from resbench.store import (append_row, check_out_dir, log_path, read_rows, repair_log, results_frame, row_key,
                            write_run, write_samples, write_tables)

__all__ = ["SweepConfig", "Cell", "SweepPlan", "test_sizes", "plan_cells", "validate", "plan", "execute", "run_sweep",
           "training_sizes", "recipe", "EXECUTORS",
           "parse_shard", "images_key", "evaluate_cell", "cell_rows", "failed_rows", "log_row", "describe_cell",
           "cell_work", "cache_batch", "CACHE_PIXELS", "summary_frame"]

DEFAULT_BATCH = 256  # images a batch when --batch-size is not given
MEMORY_BUDGET = CPU_MEMORY_BUDGET  # bytes of activations one batch may take on the CPU; a GPU: half its free memory
EXECUTORS = ("local", "ray")


@dataclass
class SweepConfig:
    checkpoints: list[str]
    out: str
    test_res: list | None = None  # sizes as tuples, or ints (bare: a square image or a signal's length;
    # resolution.fit_size fits each to a checkpoint's axes); None: default_test_sizes of the checkpoints
    bandlimit: list[str] = field(default_factory=lambda: list(DEFAULT_BANDLIMITS))  # on, off, capped, adaptive, an alpha
    policy: list[str] = field(default_factory=lambda: ["native", "resize-input"])
    dataset: str | None = None       # None: each checkpoint's own
    data_dir: str | None = None
    limit: int | None = None         # N test images, the same for every cell, chosen by `subset`
    subset: str = "stratified"       # stratified (class-stratified, drawn with `seed`) or first: the first N
    # (a rendered set's samples are drawn independently, one by one: its first N are a random sample already)
    seed: int = 0
    batch_size: int | None = None    # None: DEFAULT_BATCH, cut on the CPU to the cache (cache_batch); a given
    # batch is honoured unless memory cannot take it (then lowered, said and recorded: sweep_plan.lowered_batches)
    shard: tuple[int, int] = (1, 1)  # (k, n): this process runs every n-th cell starting at k-1
    threads: int | None = None       # CPU threads; None: torch's default (the cores, or $OMP_NUM_THREADS)
    device: str = "cpu"              # auto, cpu, cuda, cuda:N or mps (validate makes it concrete)
    precision: str = "fp32"          # fp32, bf16 or fp16 (autocast); part of a cell's identity
    models: list = field(default_factory=list)  # sources from outside resbench (resbench.external), after the files
    log_samples: bool = False        # write each cell's per-image records (samples/*.parquet)
    executor: str = "local"          # local (this process, cell by cell) or ray (resbench.executors)
    address: str | None = None       # ray: an existing cluster ("auto", "ray://head:10001"); None: start one here
    num_workers: int | None = None   # ray: tasks at once; None: the CPUs (GPUs with cuda) Ray has, per task
    cpus_per_task: int = 1           # ray: CPUs (and torch threads) of each task
    kinds: set[int] | None = None    # sweep only the models with these numbers of axes (--kind); None: all
    dry_run: bool = False            # print the plan and its estimated time; write nothing
    reader: str = "memory"           # image folders: memory (decoded whole) or stream (per batch: resbench.data.stream)
    workers: int | None = None       # stream: loader processes; None: stream.default_workers()
    crop_pct: float | None = None    # stream: timm's eval crop (None: 1.0, the whole image)
    interpolation: str | None = None  # stream: timm's interpolation (None: bilinear)


@dataclass(frozen=True)
class Cell:
    ckpt_index: int
    test_res: tuple[int, ...]  # (L,), (h, w) or (t, h, w): the checkpoint's axes
    policy: str
    bandlimit: str  # "on", "off", "none" or an alpha as text

    def key(self, ckpt: Checkpoint, seed: int, images: int, precision: str, subset: str = "",
            transform: str = "") -> tuple:
        """The cell's identity in the store (store.KEY_COLUMNS); `images`: the test images used, -1 for all;
        `subset`: how they were chosen ("" for all); `transform`: how they were read ("" in memory)."""
        return (ckpt.sha256, format_size(self.test_res), self.policy, self.bandlimit, seed, images, precision,
                subset, transform)


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
    those with adaptive kernels); 'on' and 'adaptive' only for a checkpoint trained with an alpha; 'capped'
    for resbench's S4ND models, trained with an alpha or without."""
    trained_alpha = ckpt.config.get("bandlimit")
    if "bandlimit" not in ckpt.config:
        return ["none"] + (["adaptive"] if "adaptive" in requested and _adaptive_kernels(ckpt) else [])
    usable = [b for b in requested if not (b in ("on", "adaptive") and trained_alpha is None)]
    usable = [b for b in usable if b != "capped" or _adaptive_kernels(ckpt)]
    return [b for b in usable if b != "adaptive" or _adaptive_kernels(ckpt)] or ["off"]


def _adaptive_differs(ckpt: Checkpoint, size: tuple[int, int], policy: str) -> bool:
    """An adaptive (or capped) cell differs from the 'on' (or 'none') cell only where the model runs below its training
    size on some axis; elsewhere it would repeat that cell, so it is not planned."""
    return policy == "native" and any(s < t for s, t in zip(size, ckpt.train_res))


def _repeats_native(ckpt: Checkpoint, size: tuple[int, ...], policy: str) -> bool:
    """Resize-input at the training size is the native cell (the resize is the identity): not run twice;
    the report reads the native cell as that size's resize-input reference."""
    return policy == "resize-input" and tuple(size) == tuple(ckpt.train_res)


def training_sizes(ckpt: Checkpoint) -> set[tuple[int, ...]]:
    """The sizes a checkpoint was trained at: every stage of its schedule and multi-scale size, else its training size."""
    sizes = {tuple(ckpt.train_res)}
    for stage in [*(ckpt.provenance.get("schedule") or []), *([s] for s in ckpt.provenance.get("multiscale") or [])]:
        try:
            sizes.add(parse_size(stage[0], ckpt.dims))
        except (ResbenchError, TypeError, IndexError):
            continue  # a schedule resbench cannot read names no size
    return sizes


def recipe(ckpt: Checkpoint) -> str:
    """How the checkpoint was trained, as a short text: 'size:epochs,...', any config overrides, any multi-scale sizes."""
    stages = ",".join(f"{format_size(parse_size(size, ckpt.dims))}:{epochs}" for size, epochs in
                      (ckpt.provenance.get("schedule") or []))
    overrides = (ckpt.provenance.get("train_config") or {}).get("model_overrides") or {}
    extra = " ".join(f"{k}={v}" for k, v in sorted(overrides.items()) if k != "bandlimit")
    multiscale = ckpt.provenance.get("multiscale")
    scales = "multiscale=" + ",".join(format_size(parse_size(s, ckpt.dims)) for s in multiscale) if multiscale else ""
    return " ".join(part for part in (stages, extra, scales) if part)


def _alpha(ckpt: Checkpoint, setting: str):
    return bandlimit_alpha(setting, ckpt.config.get("bandlimit"))


def _bandlimit_context(model: torch.nn.Module, alpha: float | None, setting: str):
    """The model's own bandlimit switch (a model from outside resbench has one), else its continuous layers'."""
    from resbench.models import bandlimit

    own = getattr(model, "bandlimit_context", None)
    return own(alpha) if own is not None else bandlimit(model, alpha, setting == "adaptive", setting == "capped")


def subset_rule(cfg: SweepConfig, dataset: str) -> str:
    """How --limit chooses a checkpoint's test images: cfg.subset for a stored set; "first" for a rendered one
    (its samples are drawn independently in turn, so the first N are a random sample, and rendering others
    than the first N would render them all)."""
    return "first" if cfg.subset == "first" or data.is_rendered(dataset) else "stratified"


def images_key(limit: int | None, available: int) -> int:
    """The test images a cell uses, as keyed in the store: -1 for the whole split (a --limit at or
    above its size included), else the limit; so `--limit 99999` on 10k images is the full run."""
    return -1 if limit is None or limit >= available else limit


def test_sizes(ckpts: list[Checkpoint], cfg: SweepConfig) -> list[list[tuple[int, ...]]]:
    """Each checkpoint's test sizes: --test-res fitted to its axes (a clip model takes only TxHxW sizes, an
    image model HxW or bare ones, a signal model bare ones), else the ladder around its own training size
    (resolution.default_test_sizes)."""
    if cfg.test_res is None:
        return [default_test_sizes([c.train_res]) for c in ckpts]
    return [fit_sizes(cfg.test_res, ckpt.dims, ckpt.name) for ckpt in ckpts]


def plan_cells(ckpts: list[Checkpoint], cfg: SweepConfig) -> list[Cell]:
    """All cells of the sweep in a fixed order; the shard keeps every n-th, starting at k-1."""
    cells = [Cell(i, size, policy, bl) for i, (ckpt, sizes) in enumerate(zip(ckpts, test_sizes(ckpts, cfg)))
             for size in sizes for policy in cfg.policy for bl in _bandlimit_values(ckpt, cfg.bandlimit)
             if (bl not in ("adaptive", "capped") or _adaptive_differs(ckpt, size, policy))
             and not _repeats_native(ckpt, size, policy)]
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


def _batch_size_for(model: torch.nn.Module, size: tuple[int, ...], requested: int, budget: int | None = None) -> int:
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


def cache_batch(requested: int, size: tuple[int, ...], device: str = "cpu") -> int:
    """On the CPU `requested`, cut to at most CACHE_PIXELS model pixels (samples, voxels) per batch (at least 8
    images); on a GPU `requested` itself (its limit is memory, _batch_size_for)."""
    if torch.device(device).type != "cpu":
        return requested
    return min(requested, max(8, CACHE_PIXELS // math.prod(size)))


def _model_size(ckpt: Checkpoint, cell: Cell) -> tuple[int, ...]:
    """The size the model runs at: the training size under resize-input, the test size natively."""
    return ckpt.train_res if cell.policy == "resize-input" else cell.test_res


def _cell_batch_size(model: torch.nn.Module, ckpt: Checkpoint, cell: Cell, cfg: SweepConfig) -> int:
    """The batch of one cell, for the size the model runs at; the test images themselves exist at the
    test size either way."""
    size, budget = _model_size(ckpt, cell), _budget(cfg)
    requested = cache_batch(DEFAULT_BATCH, size, cfg.device) if cfg.batch_size is None else cfg.batch_size
    batch = _batch_size_for(model, size, requested, budget)
    per_image = 3 * model.config.in_chans * math.prod(cell.test_res) * 4  # resized, normalised, temp
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


@dataclass(frozen=True)
class _TestSet:
    """What every row of a checkpoint says about its test split."""
    dataset: str        # as the user named it (--dataset, else the checkpoint's own)
    classes: list[str]  # class names, by label
    warning: str        # _row_warning


def _test_set(ckpt: Checkpoint, cfg: SweepConfig) -> _TestSet:
    name = _dataset_name(ckpt, cfg)
    info = data.dataset_info(name, cfg.data_dir)  # once per checkpoint: an image folder is scanned
    return _TestSet(name, list(info.classes), _row_warning(ckpt, info.name))


class _TestImages:
    """A checkpoint's test split, kept raw in memory and resized batch by batch (memory stays bounded)."""

    def __init__(self, ckpt: Checkpoint, cfg: SweepConfig):
        self.about = _test_set(ckpt, cfg)
        self._render_cache: tuple | None = None  # (size, {(size, start, stop): batch}) of a rendered set's last size
        self.cfg = cfg
        self.indices = None  # (N,) positions in the test split of a stratified sample; None: the first N
        self.stats = (ckpt.data_stats["mean"], ckpt.data_stats["std"])
        name = self.about.dataset
        self.files = None  # stream.FolderSplit when the folder is read batch by batch
        if transform_text(cfg.reader, name, None, None):
            self.files, self.raw = folder_split(cfg.data_dir), None
            self.labels = self.files.labels
            if cfg.limit is not None and cfg.limit < len(self.labels):
                self.indices = (stratified_indices(self.labels, cfg.limit, cfg.seed) if cfg.subset == "stratified"
                                else torch.arange(cfg.limit))  # (limit,)
                self.labels = self.labels[self.indices]
        elif data.is_rendered(name):  # sampled anew at each size: only its labels are needed here
            self.raw, self.labels = None, data.load_labels(name, "test", cfg.data_dir, cfg.limit, cfg.seed)
        elif subset_rule(cfg, name) == "first":
            self.raw, self.labels = data.load_raw(name, "test", cfg.data_dir, cfg.limit, cfg.seed)
        else:  # the same images on every machine: the sample depends on the labels and the seed alone
            self.raw, self.labels = data.load_raw(name, "test", cfg.data_dir, None, cfg.seed)
            if cfg.limit is not None and cfg.limit < len(self.labels):
                keep = stratified_indices(self.labels, cfg.limit, cfg.seed)  # (limit,)
                self.raw, self.labels, self.indices = self.raw[keep], self.labels[keep], keep
        device = torch.device(cfg.device)
        if device.type == "cuda":  # once per checkpoint, not per batch; a stored split too large stays on the host
            self.labels = self.labels.to(device)
            if self.raw is not None and self.raw.nbytes <= _budget(cfg) // 8:
                self.raw = self.raw.to(device)

    def batches(self, size: tuple[int, ...], batch: int):
        """(samples, labels) batches at `size` on the sweep's device: stored images are resized there."""
        device = torch.device(self.cfg.device)
        per_channel = (slice(None),) + (None,) * len(size)  # (C, 1, ..., 1)
        mean = torch.tensor(self.stats[0], device=device)[per_channel]
        std = torch.tensor(self.stats[1], device=device)[per_channel]
        if self.files is not None:  # decoded per batch, through timm's eval transform at the size
            workers = default_workers() if self.cfg.workers is None else self.cfg.workers
            for x, y in folder_batches(self.files, self.indices, size, batch, workers, self.stats, self.cfg.crop_pct,
                                       self.cfg.interpolation):
                yield x.to(device), y.to(device)  # (b, C, *size) normalised, (b,)
            return
        for i in range(0, len(self.labels), batch):
            if self.raw is None:  # a rendered set: sampled at the size itself, the point of such sets
                x = self._rendered(size, i, min(i + batch, len(self.labels)), device)
            else:
                x = resize_images(self.raw[i:i + batch].to(device), size)
            yield (x - mean) / std, self.labels[i:i + batch].to(device)  # (b, C, *size), (b,)


    def _rendered(self, size: tuple[int, ...], start: int, stop: int, device: torch.device) -> torch.Tensor:
        """Samples start..stop of a rendered set at `size`; the last size's batches are kept, since a checkpoint's
        cells at one size (policies, bandlimit settings) follow each other and rendering is the slow part."""
        key = (size, start, stop)
        cache = self._render_cache
        if cache is None or cache[0] != size:
            cache = self._render_cache = (size, {})
        if key not in cache[1]:
            cache[1][key] = data.render(self.about.dataset, "test", size, self.cfg.seed, start=start, stop=stop,
                                        data_dir=self.cfg.data_dir).to(device)
        return cache[1][key]


def evaluate_cell(model, images: _TestImages, ckpt: Checkpoint, cell: Cell, cfg: SweepConfig,
                  num_classes: int, on_batch: Callable[[int], None] | None = None) -> dict:
    """Score one cell; `on_batch(n)` is called after each batch of n images."""
    t0 = time.perf_counter()
    try:
        batch = _cell_batch_size(model, ckpt, cell, cfg)
    except ResbenchError as e:  # checked for every cell before the run: only the device's free memory changed
        raise MemoryError(f"{e} (free device memory fell during the run)") from None
    ctx = (_bandlimit_context(model, _alpha(ckpt, cell.bandlimit), cell.bandlimit)
           if cell.bandlimit != "none" else contextlib.nullcontext())
    with ctx, autocast(torch.device(cfg.device), cfg.precision):
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
    rules: dict[int, str] = field(default_factory=dict)  # checkpoint index -> its subset rule ("" for all)

    def tested(self, i: int) -> tuple[int, str, str]:
        """(the store's key for the test images of checkpoint i's cells, the rows' test_images text, the rule)."""
        key, rule = self.images[i], self.rules.get(i, "first")
        return key, subset_text(rule, self.n_test[i], self.available[i], self.cfg.seed), "" if key == -1 else rule

    def subset(self, dims: int | None = None) -> str:
        """'' for a run on whole test splits, else what part of them it uses, said plainly (`dims`: of the
        checkpoints whose inputs have that many axes only)."""
        parts = sorted({(self.n_test[i], n, KINDS[self.ckpts[i].dims], self.rules.get(i, "first"))
                        for i, n in self.available.items()
                        if self.n_test[i] < n and dims in (None, self.ckpts[i].dims)})
        return "; ".join(f"SUBSET: the first {k} of {n} test {kind} per cell" if rule == "first" else
                         f"SUBSET: a stratified sample of {k} of {n} test {kind} per cell (seed {self.cfg.seed})"
                         for k, n, kind, rule in parts)


def _check_names(ckpts: list[Checkpoint]) -> None:
    """Rows are grouped by checkpoint name: two different models under one name would mix (or supersede)."""
    seen: dict[str, Checkpoint] = {}
    named: dict[str, Checkpoint] = {}  # sha256 -> the first checkpoint with those bytes
    for ckpt in ckpts:
        other = seen.setdefault(ckpt.name, ckpt)
        if other.sha256 != ckpt.sha256:
            raise ResbenchError(f"{ckpt.path} and {other.path}: two different models named {ckpt.name!r}; "
                                f"rename one (results are grouped by name)")
        twin = named.setdefault(ckpt.sha256, ckpt)
        if twin.name != ckpt.name:  # a cell is keyed by the file's bytes: the two names would share one row
            raise ResbenchError(f"{twin.path} and {ckpt.path}: the same file under two names "
                                f"({twin.name!r}, {ckpt.name!r}); sweep one of them")


def _check_executor(cfg: SweepConfig) -> None:
    """The executor and its options: Ray's only with --executor ray, positive counts, Ray importable."""
    if cfg.executor not in EXECUTORS:
        raise ResbenchError(f"--executor {cfg.executor!r}: expected one of {', '.join(EXECUTORS)}")
    if cfg.num_workers is not None and cfg.num_workers < 1:
        raise ResbenchError(f"--num-workers {cfg.num_workers}: expected a positive number of tasks at once")
    if cfg.cpus_per_task < 1:
        raise ResbenchError(f"--cpus-per-task {cfg.cpus_per_task}: expected a positive number of CPUs")
    if cfg.executor == "ray":
        from resbench.executors import check_address, require_ray

        if cfg.address is not None:
            check_address(cfg.address)
        require_ray()
        return
    given = [name for name, value in (("--address", cfg.address), ("--num-workers", cfg.num_workers))
             if value is not None] + (["--cpus-per-task"] if cfg.cpus_per_task != 1 else [])
    if given:
        raise ResbenchError(f"{given[0]}: only with --executor ray (the local executor runs in this process)")


def validate(cfg: SweepConfig) -> tuple[list[Checkpoint], list[Cell], list[torch.nn.Module]]:
    """Every user error a sweep can hit, raised before any work: options, checkpoint files, datasets, sizes,
    the output folder. Returns the checkpoints, the shard's cells and the checkpoints' models."""
    _check_executor(cfg)
    if cfg.limit is not None and cfg.limit < 1:
        raise ResbenchError(f"--limit {cfg.limit}: expected a positive number of images")
    if cfg.subset not in SUBSET_RULES:
        raise ResbenchError(f"--subset {cfg.subset!r}: expected one of {', '.join(SUBSET_RULES)}")
    check_stream_options(cfg.reader, cfg.workers, cfg.crop_pct, cfg.interpolation)
    if cfg.batch_size is not None and cfg.batch_size < 1:
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
    if cfg.kinds is not None:
        found = ckpts
        ckpts = [c for c in ckpts if c.dims in cfg.kinds]
        if found and not ckpts:
            wanted, given = (",".join(sorted(KINDS[d] for d in axes))
                             for axes in (cfg.kinds, {c.dims for c in found}))
            raise ResbenchError(f"--kind {wanted}: none of the {len(found)} models given takes {wanted} "
                                f"(they take {given})")
    if not ckpts:
        raise ResbenchError("nothing to sweep: give checkpoint files or folders, or --model SPEC "
                            "(timm:NAME or package.module:factory)")
    _check_names(ckpts)
    for name in sorted({_dataset_name(c, cfg) for c in ckpts}):
        if transform_text(cfg.reader, name, None, None):
            folder_split(cfg.data_dir)  # a streamed folder: scanned (headers), never decoded whole
            continue
        # dataset_info alone does not look for the files of fixed sets (mnist, ...): read one test image
        data.load_raw(name, "test", cfg.data_dir, limit=1)
    cells = plan_cells(ckpts, cfg)
    models = _check_cells(ckpts, cells, cfg)
    if cfg.dry_run:  # nothing is created: only a file in the folder's place is an error
        if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
            raise ResbenchError(f"{cfg.out}: exists and is not a folder; expected an output folder for the sweep")
    else:
        check_out_dir(Path(cfg.out))
    return ckpts, cells, models


def plan(cfg: SweepConfig) -> SweepPlan:
    """Validate, then find the cells the folder does not hold yet (keyed by the test images really used)."""
    ckpts, cells, models = validate(cfg)
    available = {name: len(folder_split(cfg.data_dir).labels) if transform_text(cfg.reader, name, None, None)
                 else len(data.load_labels(name, "test", cfg.data_dir, seed=cfg.seed))  # parsed once, cached
                 for name in {_dataset_name(c, cfg) for c in ckpts}}
    full = {i: available[_dataset_name(c, cfg)] for i, c in enumerate(ckpts)}
    n_test = {i: n if cfg.limit is None else min(n, cfg.limit) for i, n in full.items()}
    images = {i: images_key(cfg.limit, n) for i, n in full.items()}
    rules = {i: subset_rule(cfg, _dataset_name(c, cfg)) for i, c in enumerate(ckpts)}
    if not cfg.dry_run:
        repair_log(log_path(Path(cfg.out), cfg.shard))
    out = Path(cfg.out)
    # with --log-samples a cell whose row has no records file (yet) runs again; its row is rewritten the same
    done = {row_key(r) for r in read_rows(out) if not r.get("error")
            and (not cfg.log_samples or (r.get("samples") and (out / r["samples"]).is_file()))}
    todo = [c for c in cells
            if c.key(ckpts[c.ckpt_index], cfg.seed, images[c.ckpt_index], cfg.precision,
                     "" if images[c.ckpt_index] == -1 else rules[c.ckpt_index],
                     transform_text(cfg.reader, _dataset_name(ckpts[c.ckpt_index], cfg), cfg.crop_pct,
                                    cfg.interpolation)) not in done]
    return SweepPlan(cfg, ckpts, models, cells, todo, n_test, images, full, rules)


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
                             "subset": p.tested(i)[1],
                             "test_split_images": p.available[i],
                             "native_accuracy": c.provenance.get("native_accuracy")} for i, c in enumerate(p.ckpts)],
            "planned_cells": [[p.ckpts[c.ckpt_index].name, format_size(c.test_res), c.policy, c.bandlimit]
                              for c in p.cells]}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cell_row(ckpt: Checkpoint, cell: Cell, cfg: SweepConfig, about: _TestSet, tested: tuple[int, str]) -> dict:
    """The identifying part of a cell's row; evaluate_cell adds the measurement. `tested`: SweepPlan.tested."""
    limit, test_images, subset = tested
    return {"model": ckpt.model, "checkpoint": ckpt.name, "checkpoint_sha256": ckpt.sha256,
            "dataset": about.dataset, "dims": ckpt.dims, "train_res": format_size(ckpt.train_res),
            "test_res": format_size(cell.test_res), "policy": cell.policy, "bandlimit": cell.bandlimit,
            "alpha": _alpha(ckpt, cell.bandlimit), "seed": cfg.seed, "precision": cfg.precision,
            "device": device_name(torch.device(cfg.device)), "limit": limit, "test_images": test_images,
            "subset": subset, "transform": transform_text(cfg.reader, about.dataset, cfg.crop_pct, cfg.interpolation),
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
    about = _test_set(ckpt, cfg)
    return [_cell_row(ckpt, cell, cfg, about, tested) | _failed(e) for cell in cells]


def cell_rows(ckpt: Checkpoint, model: torch.nn.Module, images: _TestImages, cells: Iterable[Cell],
              cfg: SweepConfig, tested: tuple[int, str],
              on_cell: Callable[[Cell], Callable[[int], None]] | None = None) -> Iterator[dict]:
    """Evaluate cells of one checkpoint in turn, yielding each one's row as it finishes; a cell that fails
    at run time is an error row. `on_cell(cell)`, called as a cell starts, returns its per-batch callback."""
    for cell in cells:
        on_batch = on_cell(cell) if on_cell is not None else None
        row = _cell_row(ckpt, cell, cfg, images.about, tested)
        try:
            row.update(evaluate_cell(model, images, ckpt, cell, cfg, model.config.num_classes, on_batch))
        except ResbenchError:
            raise
        except (RuntimeError, MemoryError, ValueError) as e:
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


def cell_work(p: SweepPlan) -> list[int]:
    """Each cell to run's cost in images x model pixels, the unit of the progress bar (7x7 and 56x56 cells
    differ 64-fold)."""
    return [p.n_test[c.ckpt_index] * math.prod(_model_size(p.ckpts[c.ckpt_index], c)) for c in p.todo]


def execute(p: SweepPlan, console, on_cell_done=None) -> None:
    """Run the plan's cells in order in this process; after each, append its row and rebuild the tables."""
    out, log = Path(p.cfg.out), log_path(Path(p.cfg.out), p.cfg.shard)
    index = {cell: i for i, cell in enumerate(p.todo)}
    with CellProgress(console, cell_work(p)) as progress:
        for i, group in itertools.groupby(p.todo, key=lambda c: c.ckpt_index):  # each test set loaded once
            ckpt, cells = p.ckpts[i], list(group)

            def started(cell: Cell, ckpt=ckpt) -> Callable[[int], None]:
                return progress.cell_started(describe_cell(ckpt, cell), math.prod(_model_size(ckpt, cell)),
                                             rate_unit(ckpt.dims))

            rows = cell_rows(ckpt, p.models[i], _TestImages(ckpt, p.cfg), cells, p.cfg, p.tested(i), started)
            for cell, row in zip(cells, rows):
                log_row(out, log, row)
                write_tables(out)
                progress.cell_done(index[cell], describe_cell(ckpt, cell), row, rate_unit(ckpt.dims))
                if on_cell_done is not None:
                    on_cell_done(row)


def run_sweep(cfg: SweepConfig, quiet: bool = False, on_cell_done=None) -> pd.DataFrame:
    """Evaluate every cell not already in OUT; return the results frame of OUT (current checkpoint files)."""
    from rich.console import Console

    from resbench.sweep_plan import estimate_seconds, lowered_batches, lowered_line, plan_line, plan_lines

    p = plan(cfg)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    console = Console(stderr=True, quiet=quiet, highlight=False, markup=False)  # file names are text, not markup
    # print, not log: a log file or pipe (80 columns) gets the line whole, never wrapped mid-phrase
    first = f"[{datetime.now().strftime('%H:%M:%S')}] {plan_line(p, estimate_seconds(p))}"
    console.print(first, soft_wrap=True, markup=False)
    lowered = lowered_batches(p)
    for line in ([lowered_line(lowered)] if lowered else []) + (plan_lines(p) if cfg.dry_run else []):
        console.print(line, soft_wrap=True, markup=False)
    if cfg.dry_run:
        return results_frame([])
    out = Path(cfg.out)
    k, n = cfg.shard
    run_id = f"{time.time_ns()}-{k}of{n}-{os.getpid()}"  # unique, and sorts by start time
    record = _run_record(p, run_id, _now()) | {"batch_lowered": lowered}
    write_run(out, record)
    if cfg.executor == "ray":
        from resbench.executors import execute_ray

        execute_ray(p, console, on_cell_done)
    else:
        execute(p, console, on_cell_done)
    df = write_tables(out) if read_rows(out) else results_frame([])
    write_run(out, {**record, "finished": _now()})
    df.attrs["checkpoint_sha256"] = [c.sha256 for c in p.ckpts]  # the files this run swept
    df.attrs["limit"] = sorted(set(p.images.values()))  # and the test images and seed of its cells
    df.attrs["seed"] = cfg.seed
    df.attrs["subset"] = {dims: p.subset(dims) for dims in KINDS}  # what each kind's cells used
    return df


def summary_frame(df: pd.DataFrame, sha256s: Iterable[str] | None = None, precision: str | None = None,
                  limits: Iterable[int] | None = None, seed: int | None = None,
                  dims: int | None = None) -> tuple[pd.DataFrame, int]:
    """(accuracy in % by test size, one row per checkpoint, train size, policy and bandlimit; failed cells).

    `sha256s`, `precision`, `limits` (the store's test-images keys) and `seed` keep only what a run swept,
    so a folder that also holds a subset run (or another seed) never mixes it in; `dims` keeps the models of
    one kind of input (signals, images or clips: their sizes are not one axis); failures are counted among
    the rows kept.
    """
    if dims is not None:
        df = df[df["dims"] == dims]
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
    table = table[sort_sizes(table.columns, dims)].reset_index() if len(ok) else pd.DataFrame(columns=keys)
    table.columns.name = None
    return table, int((df["error"] != "").sum())


from resbench._callable import make_callable  # noqa: E402  (last: the module is complete)

make_callable(__name__, "sweep")  # resbench.sweep(...) is resbench.api.sweep(...)
