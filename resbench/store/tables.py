"""The tables of a sweep folder, rebuilt from its logs: results.csv (+ .parquet), per_class.csv, superseded.csv."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from resbench.errors import ResbenchError
from resbench.store.columns import (OLD_ROW_DEFAULTS, RESULT_COLUMNS, TEXT_COLUMNS, TOP5_COLUMNS, images_text,
                                    old_subset, row_value)
from resbench.store.files import atomic_write_bytes
from resbench.store.logs import read_rows
from resbench.store.runs import current_files, read_runs, split_current

__all__ = ["results_frame", "csv_bytes", "read_results", "read_superseded", "write_tables"]


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """The tidy results frame of logged rows: RESULT_COLUMNS, sorted, sizes in numeric order."""
    from resbench.resolution import size_key  # here: resolution imports torch, which the store otherwise needs not

    df = pd.DataFrame([{c: row_value(r, c) for c in RESULT_COLUMNS} | _test_images(r)
                       for r in rows], columns=RESULT_COLUMNS)
    df["error"] = df["error"].fillna("")
    order = ["model", "checkpoint", "train_res", "policy", "bandlimit"]
    df["_size"] = [size_key(t, d) for t, d in zip(df["test_res"], df["dims"])]
    df = df.sort_values(order + ["_size"], kind="stable").drop(columns="_size").reset_index(drop=True)
    return df.astype({"n": "int64", "correct": "int64", "seed": "int64", "dims": "int64", **TOP5_COLUMNS})


def _test_images(row: dict) -> dict:
    """A row's test_images, for rows logged before the column (else nothing to add)."""
    return {} if row.get("test_images") else {"test_images": images_text(row.get("limit", -1))}


def _per_class_frame(rows: list[dict]) -> pd.DataFrame:
    columns = ["checkpoint", "checkpoint_sha256", "test_res", "policy", "bandlimit", "seed", "class",
               "class_name", "n", "correct"]
    out = []
    for r in rows:
        names = r.get("class_names") or []
        for cls, (n, correct) in enumerate(zip(r.get("class_n") or [], r.get("class_correct") or [])):
            out.append({"checkpoint": r["checkpoint"], "checkpoint_sha256": r["checkpoint_sha256"],
                        "test_res": r["test_res"], "policy": r["policy"], "bandlimit": r["bandlimit"],
                        "seed": r["seed"], "class": cls, "class_name": names[cls] if cls < len(names) else "",
                        "n": n, "correct": correct})
    return pd.DataFrame(out, columns=columns)


# a cell a spreadsheet would run as a formula (=HYPERLINK(...), +cmd, -1+1, @SUM): written with a leading '
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _guard(value):
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _unguard(value):
    return value[1:] if isinstance(value, str) and value.startswith("'") and value[1:].startswith(_FORMULA_START) \
        else value


def csv_bytes(df: pd.DataFrame) -> bytes:
    """A table as CSV for spreadsheets too: text cells that would start a formula get a leading ' (read back
    without it by read_results)."""
    text = df.select_dtypes(include="object").columns
    return df.assign(**{c: df[c].map(_guard) for c in text}).to_csv(index=False).encode()


def _read_results_csv(path: Path) -> pd.DataFrame:
    """results.csv as written: "none" (bandlimit) and "" (error) are values, not missing data; sizes stay text."""
    numbers = {c: [""] for c in RESULT_COLUMNS if c not in TEXT_COLUMNS}  # to_csv writes NaN as ""
    df = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str), keep_default_na=False, na_values=numbers)
    for column in df.columns.intersection(TEXT_COLUMNS):
        df[column] = df[column].map(_unguard)
    for column, default in OLD_ROW_DEFAULTS.items():  # a table written before the column existed
        df[column] = df[column].replace("", default).fillna(default) if column in df else default
    df["dims"] = df["dims"].astype("int64")  # a count of axes, whatever the CSV's empty cells made of it
    if "test_images" not in df or "limit" not in df:
        limit = df["limit"] if "limit" in df else pd.Series(-1, index=df.index)
        df["limit"] = limit
        df["test_images"] = [images_text(x) for x in limit]
    if "subset" not in df:
        df["subset"] = [old_subset(x) for x in df["limit"]]
    for column in TOP5_COLUMNS:  # empty: a table written before top-5 was counted
        if column not in df:
            df[column] = float("nan")
    return df.astype(TOP5_COLUMNS)


def _all_results(out: Path) -> pd.DataFrame:
    rows = read_rows(out) if out.is_dir() else []
    if rows:
        return results_frame(rows)
    csv = out / "results.csv"
    if csv.is_file():
        return _read_results_csv(csv)
    raise ResbenchError(f"{out}: no sweep results here (expected results.csv or cells*.jsonl)")


def read_results(out: str | Path) -> pd.DataFrame:
    """The results frame of a sweep folder: rows of current checkpoint files (complete even mid-run)."""
    out = Path(out)
    return split_current(_all_results(out), current_files(read_runs(out)))[0]


def read_superseded(out: str | Path) -> pd.DataFrame:
    """Rows of checkpoint files that were replaced under the same name since they were swept."""
    out = Path(out)
    return split_current(_all_results(out), current_files(read_runs(out)))[1]


def write_tables(out: Path) -> pd.DataFrame:
    """Rebuild results.csv (+ .parquet when pyarrow is there), per_class.csv and superseded.csv, atomically.

    Returns the frame of results.csv (current files only).
    """
    rows = read_rows(out)
    current = current_files(read_runs(out))
    df, old = split_current(results_frame(rows), current)
    keep = {(r, s) for r, s in zip(df["checkpoint"], df["checkpoint_sha256"])}
    atomic_write_bytes(out / "results.csv", csv_bytes(df))
    per_class = [r for r in rows if (r.get("checkpoint"), r.get("checkpoint_sha256")) in keep]
    atomic_write_bytes(out / "per_class.csv", csv_bytes(_per_class_frame(per_class)))
    if len(old) or (out / "superseded.csv").exists():
        atomic_write_bytes(out / "superseded.csv", csv_bytes(old))
    try:
        import pyarrow  # noqa: F401  (optional)

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(out / "results.parquet", buf.getvalue())
    except ImportError:
        pass
    return df
