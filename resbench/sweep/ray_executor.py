"""The Ray executor of a sweep: one task per group of cells sharing a checkpoint and a test size.

A task loads its model and test images once and returns its rows (with per-image records); it never
touches the sweep folder. This process, the driver, writes every row as its task finishes, through the
same store as the local executor (resbench.sweep.local), so resume, merge and report see no
difference. A killed driver loses the cells in flight; a task that raises becomes error rows for its
cells; a worker lost mid-task is retried up to MAX_RETRIES times by Ray.

Ray is an optional extra: `pip install -e '.[ray]'`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import sys
from collections import deque
from pathlib import Path

import torch

from resbench.errors import ResbenchError
from resbench.progress import CellProgress, rate_unit
from resbench.store import log_path, write_tables
from resbench.sweep.cell import cell_rows, describe_cell, failed_rows, log_row
from resbench.sweep.checks import require_ray
from resbench.sweep.config import Cell, SweepConfig
from resbench.sweep.images import SplitImages
from resbench.sweep.planning import SweepPlan, cell_work

__all__ = ["group_cells", "start_ray", "execute_ray", "MAX_RETRIES"]

MAX_RETRIES = 2  # Ray resubmits a task whose worker died (node lost, OOM-killed) this many times


def group_cells(cells: list[Cell]) -> list[list[Cell]]:
    """Runs of cells sharing a checkpoint and a test size, in plan order (plan_cells puts them side by side):
    one task each, so a task loads its model and test images once for every policy and bandlimit setting."""
    return [list(group) for _, group in itertools.groupby(cells, key=lambda cell: (cell.ckpt_index, cell.test_res))]


def _worker_path() -> str:
    """PYTHONPATH for a local Ray's workers: resbench's own folder, then the driver's extra sys.path entries
    (the script's folder, a --model module's), so workers import what this process imports."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    extra = [os.path.abspath(p) for p in sys.path if p and os.path.isdir(p)
             and not any(os.path.realpath(p).startswith(prefix) for prefix in prefixes)]
    package = str(Path(__file__).resolve().parents[2])
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys([package, *extra, *existing]))


def start_ray(cfg: SweepConfig) -> bool:
    """Connect to cfg.address, or start a local Ray sized for the sweep unless one is running in this process.
    Returns whether this call started (or connected) it, so the caller shuts it down."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if cfg.address is not None:
            ray.init(address=cfg.address, **quiet)
        else:
            cpus = max(1, (os.cpu_count() or 1) // cfg.cpus_per_task)  # no more workers than this machine has CPUs for
            workers = min(cfg.ray_tasks or cpus, cpus)
            ray.init(num_cpus=workers * cfg.cpus_per_task, runtime_env={"env_vars": {"PYTHONPATH": _worker_path()}},
                     **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ResbenchError(f"--address {cfg.address}: cannot connect to Ray ({str(e).splitlines()[0][:200]})"
                            if cfg.address is not None else
                            f"--executor ray: cannot start a local Ray ({str(e).splitlines()[0][:200]})") from None
    return True


def _uses_gpu(cfg: SweepConfig) -> bool:
    return torch.device(cfg.device).type == "cuda"


def _task_slots(cfg: SweepConfig) -> int:
    """Tasks in flight at once: as many as the cluster's CPUs (GPUs with cuda) allow, fewer with --ray-tasks."""
    import ray

    resources = ray.cluster_resources()
    slots = resources.get("CPU", 1) // cfg.cpus_per_task
    if _uses_gpu(cfg):
        slots = min(slots, resources.get("GPU", 0))
    slots = max(1, int(slots))
    return slots if cfg.ray_tasks is None else min(cfg.ray_tasks, slots)  # never past the cluster's CPUs


def _run_group(ckpt, cfg: SweepConfig, cells: list[Cell], tested: tuple[int, str]) -> list[dict]:
    """A Ray task: the rows of `cells` (one checkpoint, one test size), model and test images loaded once."""
    torch.set_num_threads(cfg.cpus_per_task)
    model = ckpt.build_model().to(cfg.device)
    return list(cell_rows(ckpt, model, SplitImages(ckpt, cfg), cells, cfg, tested))


def _task_config(cfg: SweepConfig) -> SweepConfig:
    """What a task needs of the config: no models (each task gets its own checkpoint), and on a GPU the one
    Ray gave it (Ray sets CUDA_VISIBLE_DEVICES per task, so it is always cuda:0 there)."""
    return dataclasses.replace(cfg, models=[], device="cuda" if _uses_gpu(cfg) else cfg.device)


def _put_checkpoints(ray, p: SweepPlan, indices) -> dict:
    """Each checkpoint into Ray's object store once; its tasks get a reference (no shared file system needed)."""
    refs = {}
    for i in indices:
        net = getattr(p.ckpts[i], "net", None)  # a model from outside resbench travels built
        if net is not None:
            net.cpu()  # CPU tensors: a worker may not see the driver's GPU; _run_group moves it to the task's own
        try:
            refs[i] = ray.put(p.ckpts[i])
        except Exception as e:  # what fails to pickle raises TypeError, PicklingError or a Ray error
            raise ResbenchError(f"{p.ckpts[i].path}: cannot be sent to Ray workers ({type(e).__name__}: "
                                f"{str(e).splitlines()[0][:200] if str(e) else ''}); sweep it with --executor local "
                                "into the same folder") from None
    return refs


def execute_ray(p: SweepPlan, console, on_cell_done=None) -> None:
    """Run the plan's cells as Ray tasks, at most _task_slots at once; as each task returns, log its rows and
    rebuild the tables. A task that raised, or whose worker was lost more than MAX_RETRIES times, becomes
    error rows for its cells."""
    if not p.todo:
        return
    ray = require_ray()
    cfg, out = p.cfg, Path(p.cfg.out)
    log = log_path(out, cfg.shard)
    started = start_ray(cfg)
    pending: dict = {}  # task reference -> its cells
    try:
        groups = deque(group_cells(p.todo))
        refs = _put_checkpoints(ray, p, {group[0].ckpt_index for group in groups})
        task = ray.remote(_run_group).options(num_cpus=cfg.cpus_per_task, num_gpus=1 if _uses_gpu(cfg) else 0,
                                              max_retries=MAX_RETRIES)
        task_cfg, slots = ray.put(_task_config(cfg)), _task_slots(cfg)
        index = {cell: i for i, cell in enumerate(p.todo)}
        with CellProgress(console, cell_work(p)) as progress:
            while groups or pending:
                while groups and len(pending) < slots:
                    cells = groups.popleft()
                    i = cells[0].ckpt_index
                    pending[task.remote(refs[i], task_cfg, cells, p.tested(i))] = cells
                progress.in_flight(sum(map(len, pending.values())), f"ray: {len(pending)} tasks in flight")
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                cells = pending.pop(ready)
                ckpt = p.ckpts[cells[0].ckpt_index]
                try:
                    rows = ray.get(ready)
                except ray.exceptions.RayError as e:  # the task raised (its cause), or its worker was lost
                    cause = getattr(e, "cause", None) or e
                    rows = failed_rows(ckpt, cells, cfg, p.tested(cells[0].ckpt_index), cause)
                for row in rows:
                    log_row(out, log, row)
                write_tables(out)  # once per task: a rebuild costs more than appending a row (docs/scale.md)
                for cell, row in zip(cells, rows):
                    progress.cell_done(index[cell], describe_cell(ckpt, cell), row, rate_unit(ckpt.dims))
                    if on_cell_done is not None:
                        on_cell_done(row)
    finally:
        for ref in pending:  # Ctrl-C or an error here: stop what still runs on a cluster
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
