"""A sweep's plan said before the work: the grid per model, the cells already done, and an estimated time."""

from __future__ import annotations

import math
import time
from collections import defaultdict

import torch

from resbench.device import autocast
from resbench.resolution import format_size, sort_sizes

__all__ = ["model_seconds_per_pixel", "estimate_seconds", "format_duration", "plan_line", "plan_lines",
           "lowered_batches", "lowered_line"]

_TIMED_RUNS = 3  # timed batches per model: the fastest counts


def model_seconds_per_pixel(model: torch.nn.Module, ckpt, cfg) -> float:
    """Seconds the model takes per image pixel (sample, voxel), from batches at its training size as large as
    the sweep's batches there (a call's fixed cost amortised as in the cells): the fastest of _TIMED_RUNS after
    one untimed call (which warms the allocator), since a shared machine only ever slows a run; kernels
    computed once, as score() does."""
    from resbench.layers.resolution_aware import cached_kernels
    from resbench.sweep import Cell, _cell_batch_size

    size, device = tuple(ckpt.train_res), torch.device(cfg.device)
    batch = _cell_batch_size(model, ckpt, Cell(0, size, "native", "none"), cfg)
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


def estimate_seconds(p) -> float:
    """Model time of the plan's cells left to run (a SweepPlan): each cell's images x the pixels the model
    runs at x its model's seconds per pixel. Reading, resizing or rendering the test images is not counted."""
    from resbench.sweep import cell_work

    if not p.todo:
        return 0.0
    rate = {i: model_seconds_per_pixel(p.models[i], p.ckpts[i], p.cfg)
            for i in sorted({c.ckpt_index for c in p.todo})}
    return sum(work * rate[c.ckpt_index] for c, work in zip(p.todo, cell_work(p)))


def format_duration(seconds: float) -> str:
    """12 s, 4.5 min, 2.3 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def plan_line(p, seconds: float) -> str:
    """The first line of every sweep: cells planned, done and to run, and the estimated time."""
    line = (f"sweep: {len(p.cells)} cells in this shard, {len(p.cells) - len(p.todo)} already done, "
            f"{len(p.todo)} to run, estimated {format_duration(seconds)} (model time, timed at each training size)")
    return line + (f"; {p.subset()}" if p.subset() else "")


def plan_lines(p) -> list[str]:
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
        lines.append(f"  {ckpt.name} (trained at {format_size(ckpt.train_res)}): {len(sizes)} sizes "
                     f"{','.join(sizes)} x {','.join(policies)} x bandlimit {','.join(settings)} = {len(mine)} cells, "
                     f"{len(mine) - todo[i]} done, {todo[i]} to run, {p.n_test[i]} test images each")
    return lines


def lowered_batches(p) -> list[dict]:
    """Where memory cannot take the --batch-size given: one entry per checkpoint and size the model runs at
    (checkpoint, size, requested, used). Empty when --batch-size was not given (the default is not a request)."""
    from resbench.sweep import _cell_batch_size, _model_size

    if p.cfg.batch_size is None:
        return []
    seen = {}
    for c in p.todo:
        ckpt = p.ckpts[c.ckpt_index]
        key = (ckpt.name, format_size(_model_size(ckpt, c)), format_size(c.test_res))
        if key not in seen:
            seen[key] = _cell_batch_size(p.models[c.ckpt_index], ckpt, c, p.cfg)
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
