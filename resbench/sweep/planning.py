"""What a validated sweep will do, said before the work: its cells, those already done, and an estimated time."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from resbench import data
from resbench.checkpoints import Checkpoint
from resbench.data.stream import folder_split, transform_text
from resbench.data.subset import subset_text
from resbench.device import autocast
from resbench.resolution import KINDS, format_size, sort_sizes
from resbench.runtime import TimeLimitExceeded, time_limit
from resbench.store import log_path, read_rows, repair_log, row_key
from resbench.sweep.batches import cell_batch_size, model_size
from resbench.sweep.checks import validate
from resbench.sweep.config import Cell, SweepConfig
from resbench.sweep.grid import checkpoint_transform, dataset_name, images_key, subset_rule

__all__ = ["SweepPlan", "plan", "plan_checked", "cell_work", "model_seconds_per_pixel", "estimate_seconds",
           "format_duration", "plan_line", "plan_lines", "lowered_batches", "lowered_line"]


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


def plan(cfg: SweepConfig) -> SweepPlan:
    """Validate, then find the cells the folder does not hold yet (keyed by the test images really used)."""
    return plan_checked(cfg, *validate(cfg))


def plan_checked(cfg: SweepConfig, ckpts: list[Checkpoint], cells: list[Cell],
                 models: list[torch.nn.Module]) -> SweepPlan:
    """The plan of a validated sweep (validate's checkpoints, cells and models): the cells the folder lacks."""
    available = {name: len(folder_split(cfg.data_dir).labels) if transform_text(cfg.reader, name, None, None)
                 else len(data.load_labels(name, "test", cfg.data_dir, seed=cfg.seed))  # parsed once, cached
                 for name in {dataset_name(c, cfg) for c in ckpts}}
    full = {i: available[dataset_name(c, cfg)] for i, c in enumerate(ckpts)}
    n_test = {i: n if cfg.limit is None else min(n, cfg.limit) for i, n in full.items()}
    images = {i: images_key(cfg.limit, n) for i, n in full.items()}
    rules = {i: subset_rule(cfg, dataset_name(c, cfg)) for i, c in enumerate(ckpts)}
    transforms = {i: checkpoint_transform(c, cfg) for i, c in enumerate(ckpts)}  # part of each cell's key
    if not cfg.dry_run:
        repair_log(log_path(Path(cfg.out), cfg.shard))
    out = Path(cfg.out)
    # with --log-samples a cell whose row has no records file (yet) runs again; its row is rewritten the same
    done = {row_key(r) for r in read_rows(out) if not r.get("error")
            and (not cfg.log_samples or (r.get("samples") and (out / r["samples"]).is_file()))}
    todo = [c for c in cells
            if c.key(ckpts[c.ckpt_index], cfg.seed, images[c.ckpt_index], cfg.precision,
                     "" if images[c.ckpt_index] == -1 else rules[c.ckpt_index],
                     transforms[c.ckpt_index]) not in done]
    return SweepPlan(cfg, ckpts, models, cells, todo, n_test, images, full, rules)


def cell_work(p: SweepPlan) -> list[int]:
    """Each cell to run's cost in images x model pixels, the unit of the progress bar (7x7 and 56x56 cells
    differ 64-fold)."""
    return [p.n_test[c.ckpt_index] * math.prod(model_size(p.ckpts[c.ckpt_index], c)) for c in p.todo]


_TIMED_RUNS = 3  # timed batches per model: the fastest counts


def model_seconds_per_pixel(model: torch.nn.Module, ckpt: Checkpoint, cfg: SweepConfig) -> float:
    """Seconds the model takes per image pixel (sample, voxel), from batches at its training size as large as
    the sweep's batches there (a call's fixed cost amortised as in the cells): the fastest of _TIMED_RUNS after
    one untimed call (which warms the allocator), since a shared machine only ever slows a run; kernels
    computed once, as score() does."""
    from resbench.layers.resolution_aware import cached_kernels

    size, device = tuple(ckpt.train_res), torch.device(cfg.device)
    batch = cell_batch_size(model, ckpt, Cell(0, size, "native", "none"), cfg)
    x = torch.randn(batch, model.config.in_chans, *size, device=device)  # (b, C, *size)
    model.eval()
    times = []
    with torch.inference_mode(), cached_kernels(model), autocast(device, cfg.precision):
        for _ in range(1 + _TIMED_RUNS):
            t0 = time.perf_counter()
            model.forward_policy(x, "native")
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    return min(times[1:]) / (batch * math.prod(size))


def _timed_rate(p: SweepPlan, i: int) -> float:
    """model_seconds_per_pixel of checkpoint i, within --cell-timeout; inf (an unknown estimate) past it."""
    try:
        with time_limit(p.cfg.cell_timeout, "timing the model (--cell-timeout)"):
            return model_seconds_per_pixel(p.models[i], p.ckpts[i], p.cfg)
    except TimeLimitExceeded:
        return math.inf


def estimate_seconds(p: SweepPlan) -> float:
    """Model time of the plan's cells left to run (a SweepPlan): each cell's images x the pixels the model
    runs at x its model's seconds per pixel. Reading, resizing or rendering the test images is not counted."""
    if not p.todo:
        return 0.0
    rate = {i: _timed_rate(p, i) for i in sorted({c.ckpt_index for c in p.todo})}
    return sum(work * rate[c.ckpt_index] for c, work in zip(p.todo, cell_work(p)))


def format_duration(seconds: float) -> str:
    """12 s, 4.5 min, 2.3 h; 'unknown' for inf (a model's timing ran past --cell-timeout)."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def plan_line(p: SweepPlan, seconds: float) -> str:
    """The first line of every sweep: cells planned, done and to run, and the estimated time."""
    line = (f"sweep: {len(p.cells)} cells in this shard, {len(p.cells) - len(p.todo)} already done, "
            f"{len(p.todo)} to run, estimated {format_duration(seconds)} (model time, timed at each training size)")
    return line + (f"; {p.subset()}" if p.subset() else "")


def plan_lines(p: SweepPlan) -> list[str]:
    """The plan, one line per model: its sizes, policies and bandlimit settings, and its cells done and to run."""
    cells, todo = defaultdict(list), defaultdict(int)
    for c in p.cells:
        cells[c.ckpt_index].append(c)
    for c in p.todo:
        todo[c.ckpt_index] += 1
    lines = []
    for i, mine in sorted(cells.items()):
        ckpt = p.ckpts[i]
        sizes = [format_size(s) for s in sort_sizes({c.test_res for c in mine}, ckpt.dims)]
        policies = list(dict.fromkeys(c.policy for c in mine))
        settings = list(dict.fromkeys(c.bandlimit for c in mine))
        combos = len(sizes) * len(policies) * len(settings)
        left = (f" ({combos - len(mine)} of {combos} combinations repeat another cell or do not apply)"
                if combos > len(mine) else "")
        unit, items = _UNITS[ckpt.dims]
        lines.append(f"  {ckpt.name} (trained at {format_size(ckpt.train_res)}): {len(sizes)} {unit} "
                     f"{','.join(sizes)} x {','.join(policies)} x bandlimit {','.join(settings)} = {len(mine)} cells"
                     f"{left}, {len(mine) - todo[i]} done, {todo[i]} to run, {p.n_test[i]} test {items} each")
    return lines


_UNITS = {1: ("lengths", "signals"), 2: ("sizes", "images"), 3: ("sizes (frames x h x w)", "clips")}


def lowered_batches(p: SweepPlan) -> list[dict]:
    """Where memory cannot take the --batch-size given: one entry per checkpoint and size the model runs at
    (checkpoint, size, requested, used). Empty when --batch-size was not given (the default is not a request)."""
    if p.cfg.batch_size is None:
        return []
    seen = {}
    for c in p.todo:
        ckpt = p.ckpts[c.ckpt_index]
        key = (ckpt.name, format_size(model_size(ckpt, c)), format_size(c.test_res))
        if key not in seen:
            seen[key] = cell_batch_size(p.models[c.ckpt_index], ckpt, c, p.cfg)
    return [{"checkpoint": name, "model_size": size, "test_res": test, "requested": p.cfg.batch_size, "used": used}
            for (name, size, test), used in seen.items() if used < p.cfg.batch_size]


def lowered_line(entries: list[dict]) -> str:
    """One line for the batches lowered for memory ('' when none)."""
    if not entries:
        return ""
    used = sorted({e["used"] for e in entries})
    where = ", ".join(f"{e['checkpoint']} @ {e['test_res']}" for e in entries[:3])
    more = f" and {len(entries) - 3} more" if len(entries) > 3 else ""
    return (f"batch: --batch-size {entries[0]['requested']} lowered for memory to "
            f"{used[0] if len(used) == 1 else f'{used[0]}-{used[-1]}'} images in {len(entries)} cell group(s) "
            f"({where}{more}); the run record lists them (batch_lowered)")
