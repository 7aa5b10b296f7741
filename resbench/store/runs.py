"""Run records of a sweep folder (runs/*.json, meta.json), and which file each checkpoint name means now."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from resbench.errors import ResbenchError
from resbench.store.files import atomic_write_bytes

__all__ = ["write_run", "read_runs", "current_files", "split_current"]


def _run_order(record: dict) -> tuple[str, str]:
    """Runs sort by start time; runs started in the same second by their run_id (nanoseconds first)."""
    return str(record.get("started") or ""), str(record.get("run_id") or "")


def write_run(out: Path, record: dict) -> None:
    """Write (or rewrite, when it finishes) this run's record as runs/RUN_ID.json, and repeat it as meta.json
    (meta-KofN.json for a shard)."""
    blob = json.dumps(record, indent=2, default=str).encode()
    atomic_write_bytes(out / "runs" / f"{record['run_id']}.json", blob)
    k, n = record.get("shard") or (1, 1)
    atomic_write_bytes(out / ("meta.json" if n == 1 else f"meta-{k}of{n}.json"), blob)


def read_runs(out: Path) -> list[dict]:
    """The run records of a folder, oldest first: runs/*.json, or meta*.json for folders written before runs/."""
    out = Path(out)
    paths = sorted((out / "runs").glob("*.json")) or sorted(out.glob("meta*.json"))
    records = []
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise ResbenchError(f"{path}: unreadable sweep record (expected JSON)") from None
        if not isinstance(record, dict):
            raise ResbenchError(f"{path}: unreadable sweep record (expected a JSON object)")
        records.append(record)
    return sorted(records, key=_run_order)


def current_files(runs: list[dict]) -> dict[str, str]:
    """Checkpoint name -> sha256 of the file the newest run naming it swept."""
    current: dict[str, str] = {}
    for run in sorted(runs, key=_run_order):
        for c in run.get("checkpoints") or []:
            if isinstance(c, dict) and "name" in c and "sha256" in c:
                current[c["name"]] = c["sha256"]
    return current


def split_current(df: pd.DataFrame, current: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of current files, rows of replaced files); names no run record mentions count as current."""
    now = df["checkpoint"].map(current)
    keep = now.isna() | (df["checkpoint_sha256"] == now)
    return df[keep].reset_index(drop=True), df[~keep].reset_index(drop=True)
