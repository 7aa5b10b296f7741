"""Zero-shot goals as paired tests on per-image records, and their table: S4ND's drop and its discrete twin's.

A goal is two claims, each tested rather than read off point estimates:
- **S4ND keeps its accuracy**: its drop (accuracy at the training size minus at the test size) lies within
  +-EQUIVALENCE_MARGIN points, shown when the drop's 90% interval lies inside the margin (two one-sided tests at
  5%, the usual equivalence test);
- **the twin falls further**: the twin's drop minus S4ND's, per image, has a 95% interval above zero.

Both models see the same test images at both sizes, so each image gives one paired difference; the intervals
are normal intervals of the mean of those per-image differences (n is a thousand or more).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from resbench.report.load import reference_setting
from resbench.report.persample import Records
from resbench.resolution import format_size, parse_size

__all__ = ["EQUIVALENCE_MARGIN", "paired_mean", "goal_tests", "goal_table", "GOAL_TITLE", "GOAL_NOTE"]

EQUIVALENCE_MARGIN = 2.0  # points: "within 2 points of native"
Z95, Z90 = 1.959963984540054, 1.6448536269514722  # two-sided 95% and 90% normal quantiles


def paired_mean(diff: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """(mean, low, high) in points of per-image differences (each -1, 0 or 1): a normal interval of the mean."""
    diff = np.asarray(diff, dtype=np.float64)
    n = len(diff)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = diff.mean()
    half = z * diff.std(ddof=1) / math.sqrt(n) if n > 1 else float("inf")
    return 100 * mean, 100 * (mean - half), 100 * (mean + half)


def _correct(records: pd.DataFrame) -> np.ndarray:
    return (records["pred"].to_numpy() == records["label"].to_numpy()).astype(np.int8)


def _same_images(frames: list[pd.DataFrame]) -> bool:
    first = frames[0]
    return all(len(f) == len(first) and (f["index"].to_numpy() == first["index"].to_numpy()).all()
               and (f["label"].to_numpy() == first["label"].to_numpy()).all() for f in frames[1:])


def goal_tests(s4_train: pd.DataFrame, s4_test: pd.DataFrame, twin_train: pd.DataFrame,
               twin_test: pd.DataFrame) -> dict | None:
    """The two tests of one goal from the four cells' per-image records (None when they are not on the same
    images). Drops and intervals in points."""
    frames = [s4_train, s4_test, twin_train, twin_test]
    if not _same_images(frames):
        return None
    s4 = _correct(s4_train) - _correct(s4_test)  # per image: 1 lost, -1 gained, 0 unchanged
    twin = _correct(twin_train) - _correct(twin_test)
    drop, low95, high95 = paired_mean(s4)
    _, low90, high90 = paired_mean(s4, Z90)
    twin_drop, twin_low, twin_high = paired_mean(twin)
    gap, gap_low, gap_high = paired_mean(twin - s4)
    return {"n": len(s4), "S4ND drop": drop, "S4ND 95% CI": (low95, high95), "twin drop": twin_drop,
            "twin 95% CI": (twin_low, twin_high), "twin - S4ND": gap, "twin - S4ND 95% CI": (gap_low, gap_high),
            "S4ND within 2": -EQUIVALENCE_MARGIN < low90 and high90 < EQUIVALENCE_MARGIN,
            "twin falls further": gap_low > 0}


GOAL_NOTE = ("Each S4ND checkpoint against its discrete twin (same dataset and training size; native policy, S4ND "
             "with its trained bandlimit), on the same test images. drop: accuracy at the training size minus at the "
             "test size (points; negative: a gain), with its 95% interval. Two claims, each a paired test on the "
             "per-image records (resbench.report.goals): 'S4ND within 2' is shown when S4ND's drop has a 90% "
             "interval inside +-2 points (an equivalence test); 'twin falls further' is shown when the twin's drop minus S4ND's, per "
             "image, has a 95% interval above zero. Without per-image records (sweep --log-samples) neither is "
             "tested and the row says so.")
GOAL_TITLE = "Zero-shot goals: S4ND and its discrete twin at half and twice the training rate"


def _goal_changes(train: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """The changes of the signal and clip goals: (what changed, test size) at half and twice each rate."""
    half, twice = (lambda v: max(1, round(v / 2))), (lambda v: 2 * v)
    if len(train) == 1:
        return [("sampling rate x1/2", (half(train[0]),)), ("sampling rate x2", (twice(train[0]),))]
    t, h, w = train
    return [("frame rate x1/2", (half(t), h, w)), ("frame rate x2", (twice(t), h, w)),
            ("frame size x1/2", (t, half(h), half(w))), ("frame size x2", (t, twice(h), twice(w))),
            ("both x1/2", (half(t), half(h), half(w))), ("both x2", (twice(t), twice(h), twice(w)))]


def _goal_row(cells: dict, records: Records | None) -> dict:
    """The figures of one goal from its four cells (S4ND and twin, at the training and the test size)."""
    acc = {k: 100 * row.accuracy for k, row in cells.items()}
    row = {"S4ND %": round(acc["s4_test"], 2), "S4ND drop": round(acc["s4_train"] - acc["s4_test"], 2),
           "twin %": round(acc["twin_test"], 2), "twin drop": round(acc["twin_train"] - acc["twin_test"], 2)}
    frames = [records.get(cells[k]) for k in ("s4_train", "s4_test", "twin_train", "twin_test")] if records else []
    tests = goal_tests(*frames) if frames and all(f is not None for f in frames) else None
    if tests is None:
        return {**row, "S4ND 95% CI": "", "twin - S4ND": "", "S4ND within 2": "untested (no per-image records)",
                "twin falls further": "untested (no per-image records)"}
    interval = "[{:.2f}, {:.2f}]".format  # points; both ends may be negative
    return {**row, "S4ND 95% CI": interval(*tests["S4ND 95% CI"]),
            "twin - S4ND": f"{tests['twin - S4ND']:.2f} {interval(*tests['twin - S4ND 95% CI'])}",
            "S4ND within 2": "shown" if tests["S4ND within 2"] else "not shown",
            "twin falls further": "shown" if tests["twin falls further"] else "not shown"}


def goal_table(df: pd.DataFrame, records: Records | None = None) -> pd.DataFrame:
    """For signals and clips: each S4ND checkpoint and each discrete twin, their drops at half and twice the
    training rate per axis, and the goal's two paired tests (GOAL_NOTE). Empty without such a pair."""
    ok = df[(df["error"] == "") & (df["policy"] == "native")]
    ok = ok[reference_setting(ok)]
    firsts = ok.drop_duplicates("checkpoint")
    continuous = firsts[firsts["model"].str.startswith("s4nd")]
    discrete = firsts[firsts["bandlimit"] == "none"]
    rows = []
    for s4 in continuous.itertuples(index=False):
        twins = discrete[(discrete["dataset"] == s4.dataset) & (discrete["train_res"] == s4.train_res)]
        dims = int(s4.dims)
        train = parse_size(s4.train_res, dims)
        for twin in twins.itertuples(index=False):
            by_size = {name: {parse_size(r.test_res, dims): r for r in g.itertuples(index=False)}
                       for name, g in ok[ok["checkpoint"].isin([s4.checkpoint, twin.checkpoint])].groupby("checkpoint")}
            a, b = by_size.get(s4.checkpoint, {}), by_size.get(twin.checkpoint, {})
            if train not in a or train not in b:
                continue
            for change, size in _goal_changes(train):
                if size not in a or size not in b:
                    continue
                cells = {"s4_train": a[train], "s4_test": a[size], "twin_train": b[train], "twin_test": b[size]}
                rows.append({"S4ND": s4.checkpoint, "twin": twin.checkpoint, "change": change,
                             "test_res": format_size(size), **_goal_row(cells, records)})
    table = pd.DataFrame(rows)
    if len(table):
        table.attrs["note"] = GOAL_NOTE
    return table
