"""The train x test resolution grid: every (checkpoint, test size, policy, bandlimit) cell -> one tidy row.

Checkpoint files and models from outside resbench (resbench.external: timm models, nn.Module factories)
are swept alike: each is a source with a model, an identity (sha256) and normalisation statistics.

A sweep is checked (checks: every user error before any work), planned (grid, planning: the cells, the
images each uses, the time it will take) and executed: cell by cell in this process (local) or as Ray
tasks (ray_executor), each cell evaluated by `cell` on its test images (`images`). Each finished cell
is appended to the folder's log by this process and the tables are rebuilt atomically (resbench.store),
so a run killed at any moment loses at most the cells in flight, and a rerun skips what is done.
The executors use the plan and the cell and are never imported by them; `run` ties the steps together.
"""

from resbench.sweep.batches import CACHE_PIXELS, cache_batch
from resbench.sweep.cell import cell_rows, describe_cell, evaluate_cell, failed_rows, log_row
from resbench.sweep.checks import validate
from resbench.sweep.config import EXECUTORS, Cell, SweepConfig, parse_shard
from resbench.sweep.grid import images_key, plan_cells, recipe, test_sizes, training_sizes
from resbench.sweep.local import execute
from resbench.sweep.planning import SweepPlan, cell_work, plan
from resbench.sweep.run import run_sweep, summary_frame

__all__ = ["SweepConfig", "Cell", "SweepPlan", "test_sizes", "plan_cells", "validate", "plan", "execute", "run_sweep",
           "training_sizes", "recipe", "EXECUTORS",
           "parse_shard", "images_key", "evaluate_cell", "cell_rows", "failed_rows", "log_row", "describe_cell",
           "cell_work", "cache_batch", "CACHE_PIXELS", "summary_frame"]

from resbench._callable import make_callable  # noqa: E402  (last: the package is complete)

make_callable(__name__, "sweep")  # resbench.sweep(...) is resbench.api.sweep(...)
