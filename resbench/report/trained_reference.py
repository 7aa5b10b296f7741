"""How far each zero-shot cell is from the same family trained at that size, where such a checkpoint was swept.

A zero-shot cell (a checkpoint tested at a size it never trained at) is compared with the native accuracy of
the checkpoints of the same model, dataset and bandlimit arm (trained with the mask, with a random mask or
without one) whose training size is that test size, averaged over them (seeds). Checkpoints that trained at
several sizes (progressive or multi-scale recipes) are neither zero-shot at those sizes nor references.
"""

from __future__ import annotations

import pandas as pd

from resbench.report.families import recipe_kind
from resbench.report.load import reference_setting, seen_in_training
from resbench.report.summary import change_interval
from resbench.scoring import wilson_interval

__all__ = ["TITLE", "NOTE", "trained_reference_table"]

TITLE = "Zero-shot against trained at this size: accuracy (%) and gap (points; native policy)"
NOTE = ("trained here: the native accuracy of the swept checkpoints of the same model, dataset and bandlimit arm "
        "whose training size is this test size (mean +- sd over them; n checkpoints, named in 'reference'); their "
        "recipes may differ from the zero-shot checkpoint's. gap: zero-shot minus trained here (negative: the "
        "zero-shot cell is worse), with its 95% interval (Newcombe, on the zero-shot cell's counts and the references' "
        "pooled counts: it does not hold the spread between the references' seeds). within 2: shown when the gap's "
        "90% interval lies inside +-2 points (an equivalence test at 5%). Each checkpoint in its reference "
        "bandlimit setting.")
_COLUMNS = ["checkpoint", "train_res", "test_res", "zero-shot %", "trained here %", "n", "gap", "gap 95% CI",
            "within 2", "reference"]
MARGIN = 2.0  # points: "within 2 points of the model trained at that size"
Z90 = 1.6448536269514722


def _gap_interval(zero: tuple[int, int], ref: tuple[int, int], z: float) -> tuple[float, float]:
    """Newcombe's interval (points) of zero-shot minus reference accuracy, each given as (correct, n), from
    their Wilson intervals at `z`."""
    (a, n), (b, m) = zero, ref
    low, high = change_interval((a / n, *wilson_interval(a, n, z)), (b / m, *wilson_interval(b, m, z)))
    return 100 * low, 100 * high


def _arm(frame: pd.DataFrame) -> pd.Series:
    """'mask' for checkpoints trained with a bandlimit, 'random mask' for those trained with a random mask of as
    many modes (`train --mask random`), else 'no mask'."""
    trained = pd.to_numeric(frame.get("trained_bandlimit", pd.Series(index=frame.index, dtype=float)),
                            errors="coerce")
    arm = trained.gt(0).map({True: "mask", False: "no mask"})
    recipe = frame.get("recipe", pd.Series("", index=frame.index)).fillna("").astype(str)
    return arm.mask(recipe.str.contains("mask=random", regex=False), "random mask")


def trained_reference_table(native_pol: pd.DataFrame) -> pd.DataFrame:
    """One row per zero-shot cell that has a trained-at-this-size reference (native policy rows in)."""
    ref = native_pol[reference_setting(native_pol)].copy()
    if ref.empty:
        return pd.DataFrame(columns=_COLUMNS)
    ref["seen"] = seen_in_training(ref)
    ref["arm"] = _arm(ref)
    several = set(ref.loc[ref["seen"] & (ref["test_res"] != ref["train_res"]), "checkpoint"])
    if "recipe" in ref:  # a multi-scale or progressive recipe trained at sizes the sweep may not have tested
        several |= set(ref.loc[ref["recipe"].map(recipe_kind) != "fixed", "checkpoint"])
    own = ref[(ref["test_res"] == ref["train_res"]) & ~ref["checkpoint"].isin(several)]
    key = ["model", "dataset", "arm", "train_res"]
    trained = own.groupby(key).agg(mean=("accuracy", "mean"), sd=("accuracy", "std"), n=("accuracy", "size"),
                                   correct=("correct", "sum"), images=("n", "sum"),
                                   names=("checkpoint", lambda s: ", ".join(sorted(s))))
    rows = []
    for r in ref[~ref["seen"] & (ref["test_res"] != ref["train_res"])].itertuples(index=False):
        match = (r.model, r.dataset, r.arm, r.test_res)
        if match not in trained.index:
            continue
        t = trained.loc[match]
        spread = f" +- {100 * t['sd']:.2f}" if t["n"] > 1 else ""
        counts = (int(r.correct), int(r.n)), (int(t["correct"]), int(t["images"]))
        low, high = _gap_interval(*counts, 1.959963984540054)
        low90, high90 = _gap_interval(*counts, Z90)
        rows.append({"checkpoint": r.checkpoint, "train_res": r.train_res, "test_res": r.test_res,
                     "zero-shot %": round(100 * r.accuracy, 2), "trained here %": f"{100 * t['mean']:.2f}{spread}",
                     "n": int(t["n"]), "gap": round(100 * (r.accuracy - t["mean"]), 2),
                     "gap 95% CI": f"[{low:+.2f}, {high:+.2f}]",
                     "within 2": "shown" if -MARGIN < low90 and high90 < MARGIN else "not shown",
                     "reference": t["names"]})
    table = pd.DataFrame(rows, columns=_COLUMNS)
    if len(table):
        table.attrs["note"] = NOTE
    return table
