"""A sweep from start to end: plan it, say the plan, record the run, hand the cells to an executor, tables last."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import pandas as pd
import torch

from resbench.checkpoints import package_versions
from resbench.device import cpu_model, device_name
from resbench.layers import compiled_passes, onednn
from resbench.resolution import KINDS, format_size, sort_sizes
from resbench.store import SweepLock, read_rows, results_frame, write_run, write_tables
from resbench.sweep.checks import validate
from resbench.sweep.config import SweepConfig
from resbench.sweep.local import execute
from resbench.sweep.planning import (SweepPlan, estimate_seconds, lowered_batches, lowered_line, plan_checked,
                                     plan_line, plan_lines)

__all__ = ["run_sweep", "summary_frame"]


def _code_commit() -> dict:
    """The git commit of resbench's own source tree, when it is a checkout (None otherwise), and whether
    files differ from it."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}


def _pass_status() -> dict:
    """What ran the cells' passes in this process, as a run record says it (it can change mid-run on a failure)."""
    return {"compiled_passes": compiled_passes.status(),  # bf16/fp16 passes compiled (layers.compiled_passes)
            "onednn_linears": onednn.status()}  # float32 output linears on the CPU (layers.onednn)


def _run_record(p: SweepPlan, run_id: str, started: str) -> dict:
    """This run's record as it starts ("finished" None; run_sweep fills it in at the end)."""
    cfg = p.cfg
    return {"run_id": run_id, "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "started": started,
            "finished": None, "shard": list(cfg.shard), "code": _code_commit(), "versions": package_versions(),
            "device": device_name(torch.device(cfg.device)), "precision": cfg.precision,
            **_pass_status(),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
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


def run_sweep(cfg: SweepConfig, quiet: bool = False, on_cell_done=None) -> pd.DataFrame:
    """Evaluate every cell not already in OUT; return the results frame of OUT (current checkpoint files).

    One sweep per shard of a folder at a time (store.SweepLock): the lock is taken after the checks, before the
    plan reads which cells are done, and held to the end."""
    checked = validate(cfg)
    with contextlib.nullcontext() if cfg.dry_run else SweepLock(Path(cfg.out), cfg.shard):
        return _run_plan(plan_checked(cfg, *checked), quiet, on_cell_done)


def _run_plan(p: SweepPlan, quiet: bool, on_cell_done) -> pd.DataFrame:
    """Say the plan, record the run, run the cells with the chosen executor, rebuild the tables."""
    from rich.console import Console

    cfg = p.cfg
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
        from resbench.sweep.ray_executor import execute_ray

        execute_ray(p, console, on_cell_done)
    else:
        execute(p, console, on_cell_done)
    df = write_tables(out) if read_rows(out) else results_frame([])
    write_run(out, {**record, "finished": _now(), **_pass_status()})
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
