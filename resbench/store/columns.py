"""The columns of a sweep's rows: their names, the cell's key, and what rows logged before a column mean."""

from __future__ import annotations

import pandas as pd

__all__ = ["RESULT_COLUMNS", "KEY_COLUMNS", "TEXT_COLUMNS", "TOP5_COLUMNS", "OLD_ROW_DEFAULTS", "old_subset",
           "row_value", "row_key", "images_text"]

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
TOP5_COLUMNS = {c: "float64" for c in ("top5_correct", "top5_accuracy", "top5_ci_low", "top5_ci_high")}
# a cell's identity; "limit" is the number of test images used, -1 for the whole test split; "subset" how they
# were chosen: "" for the whole split, "stratified" (class-stratified, drawn with the row's seed) or "first"
# "transform": how the images were brought to the size: "" for resbench's antialiased resize of whole images,
# else timm's eval transform and its settings (sweep --reader stream)
KEY_COLUMNS = ["checkpoint_sha256", "test_res", "policy", "bandlimit", "seed", "limit", "precision", "subset",
               "transform"]
TEXT_COLUMNS = ["model", "checkpoint", "checkpoint_sha256", "dataset", "train_res", "test_res", "policy",
                "bandlimit", "precision", "device", "test_images", "error", "warning", "recipe", "samples", "subset",
                "transform"]
# what rows logged before a column existed mean by it (seen_in_training: unknown, read as not seen)
OLD_ROW_DEFAULTS = {"precision": "fp32", "device": "", "warning": "", "seen_in_training": False, "recipe": "",
                    "samples": "", "dims": 2, "transform": ""}


def old_subset(limit) -> str:
    """The subset rule of a row logged before the column: every --limit took the first N images then."""
    return "" if limit in (None, -1, "") or pd.isna(limit) else "first"


def row_value(row: dict, c: str):
    """A row's value in column c; rows logged before the column get what it meant then."""
    if c == "subset" and c not in row:
        return old_subset(row.get("limit", -1))
    return row.get(c, OLD_ROW_DEFAULTS.get(c))


def row_key(row: dict) -> tuple:
    return tuple(row_value(row, c) for c in KEY_COLUMNS)


def images_text(limit) -> str:
    """test_images of a row logged before the column, from its limit: "full" for -1 (or none), else "first N"."""
    return "full" if limit in (None, -1, "") or pd.isna(limit) else f"first {int(limit)}"
