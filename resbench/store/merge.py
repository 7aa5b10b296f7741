"""Merging sweep folders (shards run elsewhere) into one: everything checked before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from resbench.errors import ResbenchError
from resbench.store.columns import row_key
from resbench.store.files import atomic_write_bytes, check_out_dir
from resbench.store.logs import read_rows
from resbench.store.samples import SAMPLES_DIR
from resbench.store.tables import write_tables

__all__ = ["merge_sweeps"]


def _check_records(src: Path) -> None:
    """Every run record and meta file of a sweep folder is a JSON object (one line naming the first that is not)."""
    for path in sorted((src / "runs").glob("*.json")) + sorted(src.glob("meta*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            record = None
        if not isinstance(record, dict):
            raise ResbenchError(f"{path}: unreadable sweep record (expected a JSON object); nothing was merged")


def merge_sweeps(sources: list[str], out: str) -> pd.DataFrame:
    """Join the cell logs and run records of several sweep folders (e.g. shards run elsewhere) into OUT."""
    out_path = Path(out)
    rows = []
    for src in map(Path, sources):  # everything read and checked before anything is written into OUT
        if not src.is_dir() or not list(src.glob("cells*.jsonl")):
            raise ResbenchError(f"{src}: not a sweep folder (no cells*.jsonl)")
        rows.extend(read_rows(src))
        _check_records(src)
    check_out_dir(out_path)
    _check_records(out_path)
    existing = read_rows(out_path) if list(out_path.glob("cells*.jsonl")) else []
    for src in map(Path, sources):
        for record in (src / "runs").glob("*.json"):
            if not (out_path / "runs" / record.name).exists():
                atomic_write_bytes(out_path / "runs" / record.name, record.read_bytes())
        for meta in src.glob("meta*.json"):
            target = out_path / meta.name
            if not target.exists():
                atomic_write_bytes(target, meta.read_bytes())
        for samples in (src / SAMPLES_DIR).glob("*.parquet"):  # named by cell key: same name, same cell
            target = out_path / SAMPLES_DIR / samples.name
            if not target.exists():
                atomic_write_bytes(target, samples.read_bytes())
    merged = {row_key(r): r for r in existing + rows}
    atomic_write_bytes(out_path / "cells.jsonl", "".join(json.dumps(r) + "\n" for r in merged.values()).encode())
    for extra in out_path.glob("cells-*.jsonl"):
        extra.unlink()
    return write_tables(out_path)
