"""The local executor: a plan's cells run in turn in this process, each row logged as its cell finishes."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Callable

from resbench.progress import CellProgress, rate_unit
from resbench.store import log_path, write_tables
from resbench.sweep.batches import model_size
from resbench.sweep.cell import cell_rows, describe_cell, log_row
from resbench.sweep.config import Cell
from resbench.sweep.images import SplitImages
from resbench.sweep.planning import SweepPlan, cell_work

__all__ = ["execute"]


def execute(p: SweepPlan, console, on_cell_done=None) -> None:
    """Run the plan's cells in order in this process; after each, append its row and rebuild the tables."""
    out, log = Path(p.cfg.out), log_path(Path(p.cfg.out), p.cfg.shard)
    index = {cell: i for i, cell in enumerate(p.todo)}
    with CellProgress(console, cell_work(p)) as progress:
        for i, group in itertools.groupby(p.todo, key=lambda c: c.ckpt_index):  # each test set loaded once
            ckpt, cells = p.ckpts[i], list(group)

            def started(cell: Cell, ckpt=ckpt) -> Callable[[int], None]:
                return progress.cell_started(describe_cell(ckpt, cell), math.prod(model_size(ckpt, cell)),
                                             rate_unit(ckpt.dims))

            rows = cell_rows(ckpt, p.models[i], SplitImages(ckpt, p.cfg), cells, p.cfg, p.tested(i), started)
            for cell, row in zip(cells, rows):
                log_row(out, log, row)
                write_tables(out)
                progress.cell_done(index[cell], describe_cell(ckpt, cell), row, rate_unit(ckpt.dims))
                if on_cell_done is not None:
                    on_cell_done(row)
