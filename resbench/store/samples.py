"""Per-image records of a cell (sweep --log-samples): one Parquet file per cell under samples/."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from resbench.errors import ResbenchError
from resbench.store.files import atomic_write_bytes

__all__ = ["SAMPLES_DIR", "SAMPLE_COLUMNS", "samples_name", "write_samples", "read_samples"]

SAMPLES_DIR = "samples"
SAMPLE_COLUMNS = ["index", "label", "pred", "p_label", "p_pred", "top1", "top2", "top3", "top4", "top5"]


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
