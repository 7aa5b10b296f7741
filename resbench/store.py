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

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from resbench.errors import ResbenchError

__all__ = ["RESULT_COLUMNS", "KEY_COLUMNS", "atomic_write_bytes", "writable_folder", "check_out_dir", "log_path",
           "repair_log", "append_row", "row_key", "read_rows", "read_runs", "current_files", "split_current",
           "results_frame", "read_results", "read_superseded", "write_tables", "write_run", "merge_sweeps",
           "samples_name", "write_samples", "read_samples", "SAMPLE_COLUMNS", "csv_bytes"]

# "warning": what a reader of a row should know about it (e.g. normalisation statistics the model was not
# trained with); "" when nothing. "seen_in_training": the test size is one the checkpoint trained at (its
# schedule), so the cell is not zero-shot. "trained_bandlimit": the alpha the checkpoint was trained with
# (empty: trained without the mask). "recipe": its training schedule ("size:epochs,...") and overrides.
# "test_images": "full" when the cell used its whole test split, else "stratified N of M, seed S" or "first N of
# M" (a subset: --limit, chosen by the rule in "subset").
# "samples": the cell's per-image records under samples/ ("" when not logged).
# "dims": the model's input axes, which say what a size means: 1 (train_res/test_res "8000": samples of a
# signal), 2 ("28", "28x20": an image), 3 ("8x14x14": frames x height x width of a clip).
RESULT_COLUMNS = ["model", "checkpoint", "checkpoint_sha256", "dataset", "dims", "train_res", "test_res", "policy",
                  "bandlimit", "alpha", "seed", "precision", "device", "test_images", "n", "correct", "accuracy",
                  "ci_low", "ci_high", "loss", "seconds", "images_per_s", "error", "warning", "seen_in_training",
                  "trained_bandlimit", "recipe", "limit", "samples", "subset", "top5_correct", "top5_accuracy",
                  "top5_ci_low", "top5_ci_high", "transform"]
# top5_*: images whose label is among the five top classes, their fraction and its Wilson 95% interval; empty for
# test sets of five classes or fewer (and rows logged before the columns)
_TOP5_COLUMNS = {c: "float64" for c in ("top5_correct", "top5_accuracy", "top5_ci_low", "top5_ci_high")}
# a cell's identity; "limit" is the number of test images used, -1 for the whole test split; "subset" how they
# were chosen: "" for the whole split, "stratified" (class-stratified, drawn with the row's seed) or "first"
# "transform": how the images were brought to the size: "" for resbench's antialiased resize of whole images,
# else timm's eval transform and its settings (sweep --reader stream)
KEY_COLUMNS = ["checkpoint_sha256", "test_res", "policy", "bandlimit", "seed", "limit", "precision", "subset",
               "transform"]
_TEXT_COLUMNS = ["model", "checkpoint", "checkpoint_sha256", "dataset", "train_res", "test_res", "policy",
                 "bandlimit", "precision", "device", "test_images", "error", "warning", "recipe", "samples", "subset",
                 "transform"]
# what rows logged before a column existed mean by it (seen_in_training: unknown, read as not seen)
_OLD_ROW_DEFAULTS = {"precision": "fp32", "device": "", "warning": "", "seen_in_training": False, "recipe": "",
                     "samples": "", "dims": 2, "transform": ""}
SAMPLES_DIR = "samples"
SAMPLE_COLUMNS = ["index", "label", "pred", "p_label", "p_pred", "top1", "top2", "top3", "top4", "top5"]

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


# ----------------------------------------------------------------------------------------------
# files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write-then-rename in the same folder: readers see the old file or the new one, never half."""
    path = Path(path)
    if path.is_dir():
        raise ResbenchError(f"{path}: is a directory, expected a file path to write")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:  # a full disk: no half-written temp file is left behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise ResbenchError(f"{path}: cannot write ({e.strerror or e})") from None


def writable_folder(folder: Path) -> Path:
    """Create `folder` if needed and check that files can be written in it (a user error, not a traceback)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResbenchError(f"{folder}: cannot create the output folder ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK):
        raise ResbenchError(f"{folder}: output folder is not writable")
    return folder


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ResbenchError(f"{out}: exists and is not a folder; expected an output folder for the sweep")
    writable_folder(out)
    for log in sorted(out.glob("cells*.jsonl")):
        if log.is_symlink() or not log.is_file():  # rows are appended in place: never to a file elsewhere
            raise ResbenchError(f"{log}: is a link or not a regular file; a sweep appends its rows only to a "
                                f"file of its own folder")


# ----------------------------------------------------------------------------------------------
# the cell logs


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
        value = row.get(column, _OLD_ROW_DEFAULTS.get(column))
        if not isinstance(value, _SCALARS):
            raise refuse(f"{column}={json.dumps(value)[:80]} is not a plain value")
        if column in _INT_COLUMNS and (isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2 ** 62):
            raise refuse(f"{column}={json.dumps(value)[:80]} is not an integer")
        if column in _TEXT_COLUMNS and isinstance(value, float) and value != value:
            raise refuse(f"{column} is NaN")
    for column in _NUMBER_COLUMNS:
        if not isinstance(row.get(column), (int, float, type(None))):
            raise refuse(f"{column}={json.dumps(row[column])[:80]} is not a number")
    for column in _STR_COLUMNS:
        value = row.get(column, _OLD_ROW_DEFAULTS.get(column, "" if column == "error" else None))
        if not isinstance(value, str):
            raise refuse(f"{column}={json.dumps(value)[:80]} is not text")
    if row.get("dims", 2) not in (1, 2, 3):
        raise refuse(f"dims={row['dims']!r}: expected 1, 2 or 3")
    from resbench.resolution import size_key

    for column in ("train_res", "test_res"):
        try:
            size_key(row.get(column, ""), row.get("dims", 2))
        except (ResbenchError, ValueError, TypeError, OverflowError):
            raise refuse(f"{column}={json.dumps(row.get(column))[:80]} is not a size") from None
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


def _old_subset(limit) -> str:
    """The subset rule of a row logged before the column: every --limit took the first N images then."""
    return "" if limit in (None, -1, "") or pd.isna(limit) else "first"


def _column(row: dict, c: str):
    """A row's value in column c; rows logged before the column get what it meant then."""
    if c == "subset" and c not in row:
        return _old_subset(row.get("limit", -1))
    return row.get(c, _OLD_ROW_DEFAULTS.get(c))


def row_key(row: dict) -> tuple:
    return tuple(_column(row, c) for c in KEY_COLUMNS)


def read_rows(out: Path) -> list[dict]:
    """Every logged cell of a sweep folder; for a key logged twice the last success (else last row) wins."""
    latest: dict[tuple, dict] = {}
    for path in sorted(Path(out).glob("cells*.jsonl")):
        for row in _read_log(path):
            key = row_key(row)
            if key not in latest or not row.get("error") or latest[key].get("error"):
                latest[key] = row
    return list(latest.values())


# ----------------------------------------------------------------------------------------------
# per-image records (sweep --log-samples)


def samples_name(row: dict) -> str:
    """The file of a cell's per-image records, named from the cell's key (readable, one file per key)."""
    safe = "".join(ch if ch.isalnum() or ch in "._" else "_" for ch in str(row["checkpoint"]))
    limit = row.get("limit", -1)
    images = "full" if limit in (None, -1) else f"{row.get('subset') or 'first'}{limit}"
    return (f"{SAMPLES_DIR}/{safe}-{str(row['checkpoint_sha256'])[:12]}-{row['test_res']}-{row['policy']}-"
            f"bl_{row['bandlimit']}-seed{row['seed']}-{images}-{row.get('precision', 'fp32')}.parquet")


def write_samples(out: Path, row: dict, records: dict) -> str:
    """Write a cell's per-image records (scoring.Score.samples) atomically; returns the name relative to OUT.

    `index` is the image's position in the test split (records["index"] for a stratified --limit sample, else
    the first N)."""
    import numpy as np

    top = records["top5"].numpy()
    index = records["index"].numpy() if "index" in records else np.arange(len(top))
    frame = pd.DataFrame({"index": index.astype(np.int32),
                          "label": records["label"].numpy().astype(np.int16),
                          "pred": records["pred"].numpy().astype(np.int16),
                          "p_label": records["p_label"].numpy().astype(np.float32),
                          "p_pred": records["p_pred"].numpy().astype(np.float32),
                          **{f"top{k + 1}": (top[:, k] if k < top.shape[1] else np.full(len(top), -1)).astype(np.int16)
                             for k in range(5)}})
    name = samples_name(row)
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(Path(out) / name, buf.getvalue())
    return name


def read_samples(out: str | Path, row) -> pd.DataFrame | None:
    """A cell's per-image records (SAMPLE_COLUMNS), or None when the row names none or the file is gone."""
    name = row.get("samples") if isinstance(row, dict) else getattr(row, "samples", "")
    if not isinstance(name, str) or not name:
        return None
    path = Path(out) / name
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises its own types for a cut or foreign file
        raise ResbenchError(f"{path}: unreadable per-image records ({type(e).__name__})") from None


# ----------------------------------------------------------------------------------------------
# run records and which checkpoint file is current


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


# ----------------------------------------------------------------------------------------------
# tables


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """The tidy results frame of logged rows: RESULT_COLUMNS, sorted, sizes in numeric order."""
    from resbench.resolution import size_key  # here: resolution imports torch, which the store otherwise needs not

    df = pd.DataFrame([{c: _column(r, c) for c in RESULT_COLUMNS} | _test_images(r)
                       for r in rows], columns=RESULT_COLUMNS)
    df["error"] = df["error"].fillna("")
    order = ["model", "checkpoint", "train_res", "policy", "bandlimit"]
    df["_size"] = [size_key(t, d) for t, d in zip(df["test_res"], df["dims"])]
    df = df.sort_values(order + ["_size"], kind="stable").drop(columns="_size").reset_index(drop=True)
    return df.astype({"n": "int64", "correct": "int64", "seed": "int64", "dims": "int64", **_TOP5_COLUMNS})


def _images_text(limit) -> str:
    """test_images of a row logged before the column, from its limit: "full" for -1 (or none), else "first N"."""
    return "full" if limit in (None, -1, "") or pd.isna(limit) else f"first {int(limit)}"


def _test_images(row: dict) -> dict:
    """A row's test_images, for rows logged before the column (else nothing to add)."""
    return {} if row.get("test_images") else {"test_images": _images_text(row.get("limit", -1))}


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
    numbers = {c: [""] for c in RESULT_COLUMNS if c not in _TEXT_COLUMNS}  # to_csv writes NaN as ""
    df = pd.read_csv(path, dtype=dict.fromkeys(_TEXT_COLUMNS, str), keep_default_na=False, na_values=numbers)
    for column in df.columns.intersection(_TEXT_COLUMNS):
        df[column] = df[column].map(_unguard)
    for column, default in _OLD_ROW_DEFAULTS.items():  # a table written before the column existed
        df[column] = df[column].replace("", default).fillna(default) if column in df else default
    df["dims"] = df["dims"].astype("int64")  # a count of axes, whatever the CSV's empty cells made of it
    if "test_images" not in df or "limit" not in df:
        limit = df["limit"] if "limit" in df else pd.Series(-1, index=df.index)
        df["limit"] = limit
        df["test_images"] = [_images_text(x) for x in limit]
    if "subset" not in df:
        df["subset"] = [_old_subset(x) for x in df["limit"]]
    for column in _TOP5_COLUMNS:  # empty: a table written before top-5 was counted
        if column not in df:
            df[column] = float("nan")
    return df.astype(_TOP5_COLUMNS)


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
