"""How the report's tables are shaped: checkpoint order, a column per test size, marks and interval text."""

from __future__ import annotations

import pandas as pd

from resbench.report.load import SEEN_MARK
from resbench.resolution import size_key, sort_sizes

__all__ = ["pivot_sizes", "checkpoint_rank", "sort_rows", "ci_text", "marked", "by_size"]


def pivot_sizes(frame: pd.DataFrame, index: list[str], values: str) -> pd.DataFrame:
    table = frame.pivot_table(index=index, columns="test_res", values=values, aggfunc="first")
    return table[sort_sizes(table.columns)].reset_index()


def checkpoint_rank(frame: pd.DataFrame) -> dict[str, int]:
    """Position of each checkpoint in every table: by model, then training size (by pixels), then name."""
    firsts = frame.drop_duplicates("checkpoint")
    names = sorted(firsts.itertuples(index=False), key=lambda r: (r.model, size_key(r.train_res), r.checkpoint))
    return {r.checkpoint: i for i, r in enumerate(names)}


def sort_rows(table: pd.DataFrame, rank: dict[str, int], then: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows in checkpoint `rank` order, then by the columns `then` (test_res by pixels, not as text)."""
    columns = [table[c].map(size_key) if c == "test_res" else table[c] for c in then]
    keys = list(zip(table["checkpoint"].map(rank), *columns))
    return table.iloc[sorted(range(len(table)), key=keys.__getitem__)].reset_index(drop=True)


def ci_text(low, high) -> str:
    return f"{100 * low:.1f}-{100 * high:.1f}"


def marked(values: pd.Series, frame: pd.DataFrame) -> pd.Series:
    """Values of cells at a size the checkpoint trained at (other than its final size) get SEEN_MARK."""
    seen = frame["seen"] & (frame["test_res"] != frame["train_res"])
    return pd.Series([f"{v:.2f}{SEEN_MARK}" if s and pd.notna(v) else v for v, s in zip(values, seen)],
                     index=values.index, dtype=object)


def by_size(frame: pd.DataFrame, column: str, rank: dict[str, int]) -> pd.DataFrame:
    """A row per checkpoint, a column per test size: `column`, rounded, seen-in-training cells marked."""
    table = sort_rows(pivot_sizes(frame.assign(value=marked(frame[column].round(2), frame)),
                              ["checkpoint", "train_res"], "value"), rank)
    table.columns.name = None
    return table
