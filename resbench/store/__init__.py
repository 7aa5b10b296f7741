"""The results store of a sweep folder: per-shard cell logs, the tables rebuilt from them, run records, merge.

A folder holds:
- `cells.jsonl` (or `cells-KofN.jsonl` per shard): one JSON line per finished cell, appended, flushed
  and fsynced, never rewritten except to drop a line a kill cut short. Every row ever computed stays.
- `runs/*.json`: one record per sweep run (command, config, code commit, versions, machine, the
  checkpoint files it swept, its planned cells); `meta.json` (`meta-KofN.json`) repeats the newest.
- `samples/*.parquet` (sweep --log-samples): one file per cell of per-image records (image index, label,
  prediction, probability of the label and of the prediction, top-5 classes), written before the cell's
  row, so a row that names a file always has it whole.
- `results.csv` (+ `.parquet`) and `per_class.csv`: rebuilt atomically from the logs,
  holding only rows of each checkpoint name's *current* file (the one the newest run swept); rows of
  files since replaced under the same name go to `superseded.csv`, so a groupby on the checkpoint
  name never mixes two models.
"""

from resbench.store.columns import KEY_COLUMNS, RESULT_COLUMNS, row_key
from resbench.store.files import atomic_write_bytes, check_out_dir, writable_folder
from resbench.store.lock import SweepLock, lock_path
from resbench.store.logs import append_row, log_path, read_rows, repair_log
from resbench.store.merge import merge_sweeps
from resbench.store.runs import current_files, read_runs, split_current, write_run
from resbench.store.samples import SAMPLE_COLUMNS, read_samples, samples_name, write_samples
from resbench.store.tables import csv_bytes, read_results, read_superseded, results_frame, write_tables

__all__ = ["RESULT_COLUMNS", "KEY_COLUMNS", "atomic_write_bytes", "writable_folder", "check_out_dir", "log_path",
           "repair_log", "append_row", "row_key", "read_rows", "read_runs", "current_files", "split_current",
           "results_frame", "read_results", "read_superseded", "write_tables", "write_run", "merge_sweeps",
           "samples_name", "write_samples", "read_samples", "SAMPLE_COLUMNS", "csv_bytes", "SweepLock",
           "lock_path"]
