"""The cell logs of a sweep folder (cells.jsonl, cells-KofN.jsonl): rows appended, checked when read, repaired."""

from __future__ import annotations

import json
import os
from pathlib import Path

from resbench.errors import ResbenchError
from resbench.store.columns import OLD_ROW_DEFAULTS, RESULT_COLUMNS, TEXT_COLUMNS, row_key
from resbench.store.files import atomic_write_bytes

__all__ = ["log_path", "repair_log", "append_row", "read_rows"]


def log_path(out: Path, shard: tuple[int, int]) -> Path:
    k, n = shard
    return out / ("cells.jsonl" if n == 1 else f"cells-{k}of{n}.jsonl")


_SCALARS = (str, int, float, bool, type(None))
_INT_COLUMNS = ("n", "correct", "seed", "dims")  # read as int64: a missing or non-integer value is refused
_NUMBER_COLUMNS = ("alpha", "accuracy", "ci_low", "ci_high", "loss", "seconds", "images_per_s", "trained_bandlimit",
                   "limit", "seen_in_training")
# sorted, grouped and compared as text by the tables and the report
_STR_COLUMNS = ("model", "checkpoint", "checkpoint_sha256", "dataset", "train_res", "test_res", "policy", "bandlimit",
                "precision", "error", "warning")


def _check_row(row, path: Path, number: int) -> dict:
    """A logged row as the tables read it: a JSON object whose columns hold plain values (text, numbers,
    true/false, null), counts that are integers and per-class lists; else one line naming the file's line."""
    def refuse(what: str) -> ResbenchError:
        return ResbenchError(f"{path}: line {number}: {what}; not a cell row of resbench (remove the line)")

    if not isinstance(row, dict):
        raise refuse(f"expected a JSON object, found {json.dumps(row)[:40]}")
    for column in RESULT_COLUMNS:
        value = row.get(column, OLD_ROW_DEFAULTS.get(column))
        if not isinstance(value, _SCALARS):
            raise refuse(f"{column}={json.dumps(value)[:80]} is not a plain value")
        if column in _INT_COLUMNS and (isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2 ** 62):
            raise refuse(f"{column}={json.dumps(value)[:80]} is not an integer")
        if column in TEXT_COLUMNS and isinstance(value, float) and value != value:
            raise refuse(f"{column} is NaN")
    for column in _NUMBER_COLUMNS:
        if not isinstance(row.get(column), (int, float, type(None))):
            raise refuse(f"{column}={json.dumps(row[column])[:80]} is not a number")
    for column in _STR_COLUMNS:
        value = row.get(column, OLD_ROW_DEFAULTS.get(column, "" if column == "error" else None))
        if not isinstance(value, str):
            raise refuse(f"{column}={json.dumps(value)[:80]} is not text")
    if row.get("dims", 2) not in (1, 2, 3):
        raise refuse(f"dims={row['dims']!r}: expected 1, 2 or 3")
    from resbench.resolution import parse_size  # here: resolution imports torch, which the store otherwise needs not

    for column in ("train_res", "test_res"):
        try:
            parse_size(row.get(column, ""), row.get("dims", 2))  # in range and with the model's axes
        except (ResbenchError, ValueError, TypeError, OverflowError) as e:
            why = str(e).rpartition(": ")[2] if isinstance(e, ResbenchError) else type(e).__name__
            raise refuse(f"{column}={json.dumps(row.get(column))[:80]} is not a size ({why})") from None
    for column, kind in (("class_n", int), ("class_correct", int), ("class_names", str)):
        value = row.get(column)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, kind) and not isinstance(v, bool)
                                                                         for v in value)):
            raise refuse(f"{column} is not a list of {kind.__name__}")
    return row


def _read_log(path: Path) -> list[dict]:
    """Complete lines only: a line cut short by a kill is ignored (and dropped by repair_log); a line that is
    JSON but not a cell row is refused (one line naming it)."""
    rows = []
    with open(path, "rb") as f:
        for number, line in enumerate(f.read().split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                continue
            rows.append(_check_row(row, path, number))
    return rows


def repair_log(path: Path) -> None:
    """A kill can leave a partial last line; rewrite the log with its complete lines before appending."""
    if not path.exists():
        return
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        rows = _read_log(path)
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def append_row(path: Path, row: dict) -> None:
    try:  # O_NOFOLLOW: a link put in place of the log is refused, never written through
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as e:
        raise ResbenchError(f"{path}: cannot append the cell's row ({e.strerror or e})") from None
    with open(fd, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_rows(out: Path) -> list[dict]:
    """Every logged cell of a sweep folder; for a key logged twice the last success (else last row) wins.

    A winning success without per-image records keeps the records of an earlier success of the same cell that
    counted the same (two shards or two sweeps over one folder can evaluate a cell twice, one with --log-samples)."""
    latest: dict[tuple, dict] = {}
    for path in sorted(Path(out).glob("cells*.jsonl")):
        for row in _read_log(path):
            key = row_key(row)
            old = latest.get(key)
            if old is None or not row.get("error") or old.get("error"):
                if old is not None and _same_count_with_records(old, row):
                    row = {**row, "samples": old["samples"]}
                latest[key] = row
    return list(latest.values())


def _same_count_with_records(old: dict, new: dict) -> bool:
    """Whether `old` is a success with per-image records, `new` one without, and both counted alike."""
    return (not old.get("error") and not new.get("error") and bool(old.get("samples")) and not new.get("samples")
            and old.get("correct") == new.get("correct") and old.get("n") == new.get("n"))
