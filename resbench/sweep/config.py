"""A sweep's settings and its unit of work: SweepConfig (every option, with its default) and Cell."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resbench.errors import ResbenchError
from resbench.resolution import DEFAULT_BANDLIMITS, format_size

if TYPE_CHECKING:
    from resbench.checkpoints import Checkpoint

__all__ = ["SweepConfig", "Cell", "parse_shard", "DEFAULT_BATCH", "EXECUTORS"]

DEFAULT_BATCH = 256  # images a batch when --batch-size is not given
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
    # batch is honoured unless memory cannot take it (then lowered, said and recorded: planning.lowered_batches)
    shard: tuple[int, int] = (1, 1)  # (k, n): this process runs every n-th cell starting at k-1
    threads: int | None = None       # CPU threads; None: torch's default (the cores, or $OMP_NUM_THREADS)
    device: str = "cpu"              # auto, cpu, cuda, cuda:N or mps (validate makes it concrete)
    precision: str = "fp32"          # fp32, bf16 or fp16 (autocast); part of a cell's identity
    models: list = field(default_factory=list)  # sources from outside resbench (resbench.external), after the files
    log_samples: bool = False        # write each cell's per-image records (samples/*.parquet)
    executor: str = "local"          # local (this process, cell by cell) or ray (resbench.sweep.ray_executor)
    address: str | None = None       # ray: an existing cluster ("auto", "ray://head:10001"); None: start one here
    ray_tasks: int | None = None     # ray: tasks at once; None: the CPUs (GPUs with cuda) Ray has, per task
    cpus_per_task: int = 1           # ray: CPUs (and torch threads) of each task
    kinds: set[int] | None = None    # sweep only the models with these numbers of axes (--kind); None: all
    dry_run: bool = False            # print the plan and its estimated time; write nothing
    reader: str = "memory"           # image folders: memory (decoded whole) or stream (per batch: resbench.data.stream)
    loader_workers: int | None = None  # stream: data-loading processes; None: stream.default_workers()
    crop_pct: float | None = None    # stream: timm's eval crop (None: 1.0, the whole image)
    interpolation: str | None = None  # stream: timm's interpolation (None: bilinear)
    cell_timeout: float | None = None  # seconds one cell may run (local executor), else an error row; None: no limit


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

