"""The train x test resolution grid: every (checkpoint, test size, policy, bandlimit) cell -> one tidy row.

Finished cells are appended to a per-shard JSON-lines log (one line per cell, flushed and fsynced);
`results.csv` and `per_class.csv` are rebuilt from the logs and replaced atomically after every
cell. A run killed at any moment loses at most the cell in flight, and a rerun skips what is done.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import torch

from resbench import data
from resbench.checkpoints import (Checkpoint, atomic_write_bytes, find_checkpoints, load_checkpoint, package_versions,
                                  writable_folder)
from resbench.errors import ResbenchError
from resbench.scoring import score

__all__ = ["SweepConfig", "Cell", "plan_cells", "run_sweep", "read_results", "wilson_interval", "parse_shard",
           "default_test_sizes", "merge_sweeps", "summary_table", "RESULT_COLUMNS"]

RESULT_COLUMNS = ["model", "checkpoint", "checkpoint_sha256", "dataset", "train_res", "test_res", "policy",
                  "bandlimit", "alpha", "seed", "n", "correct", "accuracy", "ci_low", "ci_high", "loss",
                  "seconds", "images_per_s", "error"]
KEY_COLUMNS = ["checkpoint_sha256", "test_res", "policy", "bandlimit", "seed", "limit"]
MEMORY_BUDGET = 2 * 1024 ** 3  # bytes of activations one batch may take; larger cells use smaller batches


@dataclass
class SweepConfig:
    checkpoints: list[str]
    out: str
    test_res: list[tuple[int, int]] | None = None   # None: default_test_sizes of the checkpoints
    bandlimit: list[str] = field(default_factory=lambda: ["on", "off"])  # on, off or an alpha like 0.3
    policy: list[str] = field(default_factory=lambda: ["native", "resize-input"])
    dataset: str | None = None       # None: each checkpoint's own
    data_dir: str | None = None
    limit: int | None = None         # first N test images, the same for every cell
    seed: int = 0
    batch_size: int = 256
    shard: tuple[int, int] = (1, 1)  # (k, n): this process runs every n-th cell starting at k-1
    threads: int = 2


@dataclass(frozen=True)
class Cell:
    ckpt_index: int
    test_res: tuple[int, int]
    policy: str
    bandlimit: str  # "on", "off", "none" or an alpha as text

    def key(self, ckpt: Checkpoint, cfg: SweepConfig) -> tuple:
        return (ckpt.sha256, data.format_size(self.test_res), self.policy, self.bandlimit, cfg.seed,
                -1 if cfg.limit is None else cfg.limit)


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


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ResbenchError(f"--shard {text!r}: expected K/N such as 1/4") from None
    if not (n >= 1 and 1 <= k <= n):
        raise ResbenchError(f"--shard {text!r}: expected 1 <= K <= N")
    return k, n


def default_test_sizes(train_sizes: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Multiples of 7 from half the smallest to twice the largest training side (at least 7)."""
    sides = [max(s) for s in train_sizes]
    lo, hi = max(7, min(sides) // 2), 2 * max(sides)
    sizes = {(s, s) for s in range(7 * math.ceil(lo / 7), hi + 1, 7)} | {(s, s) for s in sides}
    return sorted(sizes)


def _bandlimit_values(ckpt: Checkpoint, requested: list[str]) -> list[str]:
    """Settings that apply to this checkpoint: 'none' for models without a bandlimit."""
    trained_alpha = ckpt.config.get("bandlimit")
    if "bandlimit" not in ckpt.config:
        return ["none"]
    return [b for b in requested if not (b == "on" and trained_alpha is None)] or ["off"]


def _alpha(ckpt: Checkpoint, setting: str):
    if setting == "on":
        return ckpt.config.get("bandlimit")
    if setting in ("off", "none"):
        return None
    return float(setting)


def plan_cells(ckpts: list[Checkpoint], cfg: SweepConfig) -> list[Cell]:
    """All cells of the sweep in a fixed order; the shard keeps every n-th, starting at k-1."""
    sizes = cfg.test_res or default_test_sizes(c.train_res for c in ckpts)
    cells = [Cell(i, size, policy, bl) for i, ckpt in enumerate(ckpts) for size in sizes for policy in cfg.policy
             for bl in _bandlimit_values(ckpt, cfg.bandlimit)]
    k, n = cfg.shard
    return cells[k - 1::n]


# ----------------------------------------------------------------------------------------------
# the results log and the tables derived from it


def _log_path(out: Path, shard: tuple[int, int]) -> Path:
    k, n = shard
    return out / ("cells.jsonl" if n == 1 else f"cells-{k}of{n}.jsonl")


def _read_log(path: Path) -> list[dict]:
    """Complete lines only: a line cut short by a kill is ignored (and dropped by _repair_log)."""
    rows = []
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _repair_log(path: Path) -> None:
    """A kill can leave a partial last line; rewrite the log with its complete lines before appending."""
    if not path.exists():
        return
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        rows = _read_log(path)
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def _append_row(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_rows(out: Path) -> list[dict]:
    """Every logged cell of a sweep folder; for a key logged twice the last success (else last row) wins."""
    latest: dict[tuple, dict] = {}
    for path in sorted(Path(out).glob("cells*.jsonl")):
        for row in _read_log(path):
            key = tuple(row.get(c) for c in KEY_COLUMNS)
            if key not in latest or not row.get("error") or latest[key].get("error"):
                latest[key] = row
    return list(latest.values())


def read_results(out: str | Path) -> pd.DataFrame:
    """The results frame of a sweep folder (from its logs, so it is complete even mid-run)."""
    out = Path(out)
    rows = read_rows(out) if out.is_dir() else []
    if not rows:
        csv = out / "results.csv"
        if csv.is_file():
            return _read_results_csv(csv)
        raise ResbenchError(f"{out}: no sweep results here (expected results.csv or cells*.jsonl)")
    return _results_frame(rows)


def _read_results_csv(path: Path) -> pd.DataFrame:
    """results.csv as written: "none" (bandlimit) and "" (error) are values, not missing data; sizes stay text."""
    text = ["model", "checkpoint", "checkpoint_sha256", "dataset", "train_res", "test_res", "policy", "bandlimit",
            "error"]
    numbers = {c: [""] for c in RESULT_COLUMNS if c not in text}  # to_csv writes NaN as ""
    return pd.read_csv(path, dtype=dict.fromkeys(text, str), keep_default_na=False, na_values=numbers)


def _results_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{c: r.get(c) for c in RESULT_COLUMNS} for r in rows], columns=RESULT_COLUMNS)
    df["error"] = df["error"].fillna("")
    order = ["model", "checkpoint", "train_res", "policy", "bandlimit", "test_res"]
    df["_side"] = df["test_res"].map(lambda s: data.parse_size(s)[0] * 10000 + data.parse_size(s)[1])
    df = df.sort_values(order[:-1] + ["_side"], kind="stable").drop(columns="_side").reset_index(drop=True)
    return df.astype({"n": "int64", "correct": "int64", "seed": "int64"})


def _per_class_frame(rows: list[dict]) -> pd.DataFrame:
    out = []
    for r in rows:
        for cls, (n, correct) in enumerate(zip(r.get("class_n") or [], r.get("class_correct") or [])):
            out.append({"checkpoint": r["checkpoint"], "checkpoint_sha256": r["checkpoint_sha256"],
                        "test_res": r["test_res"], "policy": r["policy"], "bandlimit": r["bandlimit"],
                        "seed": r["seed"], "class": cls, "n": n, "correct": correct})
    return pd.DataFrame(out, columns=["checkpoint", "checkpoint_sha256", "test_res", "policy", "bandlimit", "seed",
                                      "class", "n", "correct"])


def write_tables(out: Path) -> pd.DataFrame:
    """Rebuild results.csv (+ .parquet when pyarrow is there) and per_class.csv from the logs, atomically."""
    rows = read_rows(out)
    df = _results_frame(rows)
    atomic_write_bytes(out / "results.csv", df.to_csv(index=False).encode())
    atomic_write_bytes(out / "per_class.csv", _per_class_frame(rows).to_csv(index=False).encode())
    try:
        import io

        import pyarrow  # noqa: F401  (optional)

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(out / "results.parquet", buf.getvalue())
    except ImportError:
        pass
    return df


# ----------------------------------------------------------------------------------------------
# evaluation


# A batch of about 25k pixels (32 images at 28x28, 8 at 56x56) keeps a layer's activations near the
# cache: measured on the 2-core CPU, s4nd_iso evaluates 789 img/s at 28x28 in batches of 32 against
# 491 in batches of 256, and 185 against 110 img/s at 56x56 (batch 8 vs 256).
CACHE_PIXELS = 32 * 28 * 28


def _batch_size_for(model: torch.nn.Module, size: tuple[int, int], requested: int) -> int:
    """Shrink the batch so one batch's activations stay under MEMORY_BUDGET; refuse hopeless sizes."""
    width = max((p.shape[0] for p in model.parameters() if p.dim() >= 2), default=64)
    per_image = 12 * width * size[0] * size[1] * 4  # bytes: a dozen live activation maps of the widest layer
    if per_image > MEMORY_BUDGET:
        raise ResbenchError(f"test size {data.format_size(size)}: one image needs about "
                            f"{per_image / 1024 ** 3:.1f} GiB of activations (budget "
                            f"{MEMORY_BUDGET / 1024 ** 3:.0f} GiB); choose a smaller size")
    return max(1, min(requested, MEMORY_BUDGET // per_image))


def _dataset_name(ckpt: Checkpoint, cfg: SweepConfig) -> str:
    """The dataset a checkpoint is tested on: --dataset, else the one it was trained on."""
    return cfg.dataset or ckpt.provenance.get("dataset") or "fashion-mnist"


def cache_batch(requested: int, size: tuple[int, int]) -> int:
    """`requested`, cut to at most CACHE_PIXELS model pixels per batch (at least 8 images)."""
    return min(requested, max(8, CACHE_PIXELS // (size[0] * size[1])))


def _model_size(ckpt: Checkpoint, cell: Cell) -> tuple[int, int]:
    """The size the model runs at: the training size under resize-input, the test size natively."""
    return ckpt.train_res if cell.policy == "resize-input" else cell.test_res


def _cell_batch_size(model: torch.nn.Module, ckpt: Checkpoint, cell: Cell, cfg: SweepConfig) -> int:
    """The batch of one cell, for the size the model runs at; the test images themselves exist at the
    test size either way."""
    size = _model_size(ckpt, cell)
    batch = _batch_size_for(model, size, cache_batch(cfg.batch_size, size))
    per_image = 3 * model.config.in_chans * cell.test_res[0] * cell.test_res[1] * 4  # resized, normalised, temp
    if per_image > MEMORY_BUDGET:
        raise ResbenchError(f"test size {data.format_size(cell.test_res)}: one test image needs about "
                            f"{per_image / 1024 ** 3:.1f} GiB (budget {MEMORY_BUDGET / 1024 ** 3:.0f} GiB); "
                            "choose a smaller size")
    return max(1, min(batch, MEMORY_BUDGET // per_image))


def _check_cells(ckpts: list[Checkpoint], cells: list[Cell], cfg: SweepConfig) -> list[torch.nn.Module]:
    """User errors any cell would hit, raised before any work: a test set the model cannot take, a size no
    batch fits. Returns the checkpoints' models, built once for the check and reused by the sweep."""
    models = []
    for i, ckpt in enumerate(ckpts):
        model = ckpt.build_model()
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
        self.cfg = cfg
        self.stats = (ckpt.data_stats["mean"], ckpt.data_stats["std"])
        if self.dataset == "synthetic":
            self.raw, self.labels = None, data.load_raw("synthetic", "test", limit=cfg.limit, seed=cfg.seed)[1]
        else:
            self.raw, self.labels = data.load_raw(self.dataset, "test", cfg.data_dir, cfg.limit, cfg.seed)

    def batches(self, size: tuple[int, int], batch: int):
        mean = torch.tensor(self.stats[0])[:, None, None]  # (C, 1, 1)
        std = torch.tensor(self.stats[1])[:, None, None]  # (C, 1, 1)
        for i in range(0, len(self.labels), batch):
            if self.raw is None:  # synthetic: rendered at the size itself, the point of that dataset
                x = data.render_synthetic("test", size, self.cfg.seed, limit=min(i + batch, len(self.labels)),
                                          start=i)[0]
            else:
                x = data.resize_images(self.raw[i:i + batch], size)
            yield (x - mean) / std, self.labels[i:i + batch]  # (b, C, h, w), (b,)


def evaluate_cell(model, images: _TestImages, ckpt: Checkpoint, cell: Cell, cfg: SweepConfig,
                  num_classes: int, on_batch: Callable[[int], None] | None = None) -> dict:
    """Score one cell; `on_batch(n)` is called after each batch of n images."""
    from resbench.models import bandlimit as bandlimit_ctx

    t0 = time.perf_counter()
    batch = _cell_batch_size(model, ckpt, cell, cfg)
    ctx = bandlimit_ctx(model, _alpha(ckpt, cell.bandlimit)) if cell.bandlimit != "none" else contextlib.nullcontext()
    with ctx:
        result = score(model, images.batches(cell.test_res, batch), num_classes, cell.policy, on_batch)
    seconds = time.perf_counter() - t0
    n, correct = result.n, result.correct
    low, high = wilson_interval(correct, n)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else float("nan"), "ci_low": low,
            "ci_high": high, "loss": result.loss, "seconds": round(seconds, 3),
            "images_per_s": round(n / seconds, 1) if seconds > 0 else None, "error": "",
            "class_n": result.class_n.tolist(), "class_correct": result.class_correct.tolist()}


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ResbenchError(f"{out}: exists and is not a folder; expected an output folder for the sweep")
    writable_folder(out)


def run_sweep(cfg: SweepConfig, quiet: bool = False, on_cell_done=None) -> pd.DataFrame:
    """Evaluate every cell not already in OUT; return the full results frame of OUT."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    out = Path(cfg.out)
    for policy in cfg.policy:
        if policy not in ("native", "resize-input"):
            raise ResbenchError(f"--policy {policy!r}: expected native or resize-input")
    for b in cfg.bandlimit:
        if b not in ("on", "off"):
            try:
                if not float(b) > 0:
                    raise ValueError
            except ValueError:
                raise ResbenchError(f"--bandlimit {b!r}: expected on, off or a positive alpha") from None
    paths = find_checkpoints(cfg.checkpoints)
    ckpts = [load_checkpoint(p) for p in paths]  # validates every file before any work
    names = [c.name for c in ckpts]
    for name in sorted({_dataset_name(c, cfg) for c in ckpts}):
        # dataset_info alone does not look for the files of fixed sets (mnist, ...): read one test image
        data.load_raw(name, "test", cfg.data_dir, limit=1)  # missing dataset: user error before any work
    cells = plan_cells(ckpts, cfg)
    models = _check_cells(ckpts, cells, cfg)
    _check_out_dir(out)
    torch.set_num_threads(cfg.threads)

    log = _log_path(out, cfg.shard)
    _repair_log(log)
    done = {tuple(r.get(c) for c in KEY_COLUMNS) for r in read_rows(out) if not r.get("error")}
    todo = [c for c in cells if c.key(ckpts[c.ckpt_index], cfg) not in done]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_meta(out, cfg, ckpts, cells, started, None)

    console = Console(stderr=True, quiet=quiet)
    console.log(f"sweep: {len(cells)} cells in this shard, {len(cells) - len(todo)} already done, "
                f"{len(todo)} to run")
    # The bar advances batch by batch in units of images x model pixels, so that its ETA holds when
    # cells differ a hundredfold in cost (7x7 against 56x56).
    n_by_dataset = {name: len(data.load_raw(name, "test", cfg.data_dir, cfg.limit, cfg.seed)[1])  # parsed once, cached
                    for name in {_dataset_name(c, cfg) for c in ckpts}}
    n_test = {i: n_by_dataset[_dataset_name(c, cfg)] for i, c in enumerate(ckpts)}
    pixels = [math.prod(_model_size(ckpts[c.ckpt_index], c)) for c in todo]  # per image, as the model runs
    work = [n_test[c.ckpt_index] * p for c, p in zip(todo, pixels)]
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[cells]} cells"),
                  TextColumn("{task.fields[ips]:.0f} img/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task("cells", total=max(1, sum(work)), ips=0.0, cells=f"0/{len(todo)}")
        current, model, images = None, None, None
        for done_cells, (cell, per_image) in enumerate(zip(todo, pixels)):
            ckpt = ckpts[cell.ckpt_index]
            if cell.ckpt_index != current:  # cells come grouped by checkpoint: build each model once
                model, images, current = models[cell.ckpt_index], _TestImages(ckpt, cfg), cell.ckpt_index
            started_cell, seen = time.perf_counter(), 0

            def on_batch(n: int) -> None:
                nonlocal seen
                seen += n
                progress.update(task, advance=n * per_image, ips=seen / max(1e-9, time.perf_counter() - started_cell))
            progress.update(task, description=f"{names[cell.ckpt_index]} @ {data.format_size(cell.test_res)} "
                                              f"{cell.policy} bl={cell.bandlimit}")
            row = {"model": ckpt.model, "checkpoint": names[cell.ckpt_index], "checkpoint_sha256": ckpt.sha256,
                   "dataset": images.dataset, "train_res": data.format_size(ckpt.train_res),
                   "test_res": data.format_size(cell.test_res), "policy": cell.policy, "bandlimit": cell.bandlimit,
                   "alpha": _alpha(ckpt, cell.bandlimit), "seed": cfg.seed,
                   "limit": -1 if cfg.limit is None else cfg.limit}
            try:
                row.update(evaluate_cell(model, images, ckpt, cell, cfg, model.config.num_classes, on_batch))
            except ResbenchError:
                raise
            except (RuntimeError, MemoryError, ValueError) as e:  # a failed cell is a row, not a gap
                row.update({"n": 0, "correct": 0, "accuracy": float("nan"), "ci_low": float("nan"),
                            "ci_high": float("nan"), "loss": float("nan"), "seconds": 0.0, "images_per_s": None,
                            "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"})
            _append_row(log, row)
            write_tables(out)
            progress.update(task, completed=sum(work[:done_cells + 1]), cells=f"{done_cells + 1}/{len(todo)}")
            if on_cell_done is not None:
                on_cell_done(row)
    df = write_tables(out) if read_rows(out) else _results_frame([])
    _write_meta(out, cfg, ckpts, cells, started, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    df.attrs["checkpoint_sha256"] = [c.sha256 for c in ckpts]  # the files this run swept
    return df


def _write_meta(out: Path, cfg: SweepConfig, ckpts: list[Checkpoint], cells: list[Cell], started: str,
                finished: str | None):
    meta = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "started": started, "finished": finished,
            "versions": package_versions(),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
            "config": {**{k: v for k, v in vars(cfg).items() if k != "test_res"},
                       "test_res": None if cfg.test_res is None else [data.format_size(s) for s in cfg.test_res]},
            "checkpoints": [{"name": c.name, "path": str(c.path), "sha256": c.sha256, "model": c.model,
                             "train_res": data.format_size(c.train_res),
                             "native_accuracy": c.provenance.get("native_accuracy")} for c in ckpts],
            "planned_cells": [[ckpts[c.ckpt_index].name, data.format_size(c.test_res), c.policy, c.bandlimit]
                              for c in cells]}
    name = "meta.json" if cfg.shard[1] == 1 else f"meta-{cfg.shard[0]}of{cfg.shard[1]}.json"
    atomic_write_bytes(out / name, json.dumps(meta, indent=2, default=str).encode())


def summary_table(df: pd.DataFrame, sha256s: Iterable[str] | None = None):
    """A rich table: accuracy (%) by test size, one row per checkpoint, policy and bandlimit.

    `sha256s` keeps only those checkpoint files (a folder may hold rows of since-replaced ones).
    """
    from rich.table import Table

    ok = df[df["error"] == ""]
    if sha256s is not None:
        ok = ok[ok["checkpoint_sha256"].isin(set(sha256s))]
    sizes = sorted(ok["test_res"].unique(), key=lambda s: data.parse_size(s))
    table = Table(title="accuracy (%) by test size")
    for col in ["checkpoint", "train", "policy", "bandlimit", *sizes]:
        table.add_column(col, justify="right" if col in sizes else "left", no_wrap=True)
    for (ckpt, train, policy, bl), g in ok.groupby(["checkpoint", "train_res", "policy", "bandlimit"], sort=True):
        acc = dict(zip(g["test_res"], g["accuracy"]))
        table.add_row(ckpt, str(train), policy, bl,
                      *[f"{100 * acc[s]:.1f}" if s in acc else "" for s in sizes])
    failed = len(df) - len(ok)
    if failed:
        table.caption = f"{failed} cell(s) failed: see the error column of results.csv"
    return table


def merge_sweeps(sources: list[str], out: str) -> pd.DataFrame:
    """Join the cell logs of several sweep folders (e.g. shards run elsewhere) into OUT."""
    out_path = Path(out)
    _check_out_dir(out_path)
    rows = []
    for src in map(Path, sources):
        if not src.is_dir() or not list(src.glob("cells*.jsonl")):
            raise ResbenchError(f"{src}: not a sweep folder (no cells*.jsonl)")
        rows.extend(read_rows(src))
        for meta in src.glob("meta*.json"):
            target = out_path / meta.name
            if not target.exists():
                atomic_write_bytes(target, meta.read_bytes())
    existing = read_rows(out_path) if list(out_path.glob("cells*.jsonl")) else []
    merged = {tuple(r.get(c) for c in KEY_COLUMNS): r for r in existing + rows}
    atomic_write_bytes(out_path / "cells.jsonl", "".join(json.dumps(r) + "\n" for r in merged.values()).encode())
    for extra in out_path.glob("cells-*.jsonl"):
        extra.unlink()
    return write_tables(out_path)
