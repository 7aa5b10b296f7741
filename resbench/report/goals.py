"""Zero-shot goals as paired tests on per-image records, and their table: S4ND's drop and its discrete twin's,
on seed means where seeds exist.

A goal is two claims, each tested rather than read off point estimates:
- **S4ND keeps its accuracy**: its drop (accuracy at the training size minus at the test size) lies within
  +-EQUIVALENCE_MARGIN points, shown when the drop's 90% interval lies inside the margin (two one-sided tests at
  5%, the usual equivalence test);
- **the twin falls further**: the twin's drop minus S4ND's, per image, has a 95% interval above zero.

Both models see the same test images at both sizes, so each image gives one paired difference; the intervals
are normal intervals of the mean of those per-image differences (n is a thousand or more). Where a model has
several seeds, each image's value is its mean over the seeds (the seed mean's drop, tested on these images;
the spread between seeds is shown beside it, and is not in the interval).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from resbench.report.families import recipe_kind
from resbench.report.load import reference_setting
from resbench.report.persample import Records
from resbench.report.summary import mean_sd
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


def _seeds(frames) -> list[pd.DataFrame]:
    return list(frames) if isinstance(frames, (list, tuple)) else [frames]


def _drop(train: list[pd.DataFrame], test: list[pd.DataFrame]) -> np.ndarray:
    """Per image: right at the training size minus right at the test size, mean over the seeds (seed i's
    records at both sizes: train[i], test[i])."""
    return np.mean([_correct(a) - _correct(b) for a, b in zip(train, test)], axis=0)


def goal_tests(s4_train, s4_test, twin_train, twin_test) -> dict | None:
    """The two tests of one goal from the per-image records of its cells: S4ND and its twin at the training and
    the test size, each a frame or a list of frames (one per seed, in the same order at both sizes). None when
    the records are not of the same images. Drops and intervals in points."""
    s4_train, s4_test, twin_train, twin_test = map(_seeds, (s4_train, s4_test, twin_train, twin_test))
    if not _same_images([*s4_train, *s4_test, *twin_train, *twin_test]):
        return None
    s4 = _drop(s4_train, s4_test)  # per image: 1 lost, -1 gained, 0 unchanged (a seed mean between)
    twin = _drop(twin_train, twin_test)
    drop, low95, high95 = paired_mean(s4)
    _, low90, high90 = paired_mean(s4, Z90)
    twin_drop, twin_low, twin_high = paired_mean(twin)
    gap, gap_low, gap_high = paired_mean(twin - s4)
    return {"n": len(s4), "S4ND drop": drop, "S4ND 95% CI": (low95, high95), "twin drop": twin_drop,
            "twin 95% CI": (twin_low, twin_high), "twin - S4ND": gap, "twin - S4ND 95% CI": (gap_low, gap_high),
            "S4ND within 2": -EQUIVALENCE_MARGIN < low90 and high90 < EQUIVALENCE_MARGIN,
            "twin falls further": gap_low > 0}


GOAL_NOTE = ("S4ND against its discrete twin (the same architecture with discrete convolutions; same dataset and "
             "training size, trained at that one size), natively, S4ND with its trained bandlimit, on the same test "
             "images; a model with seeds is its seed mean, the spread between seeds beside it. drop: accuracy at the "
             "training size minus at the test size (points), with its 95% interval over the test images. 'S4ND "
             "within 2': the drop's 90% interval lies inside +-2 points (an equivalence test); 'twin falls further': "
             "the twin's drop minus S4ND's, per image, has a 95% interval above zero. training: each model's budget "
             "(size:epochs, config overrides). Untested without per-image "
             "records (sweep --log-samples) of every seed.")
LEFT_OUT_NOTE = (" The models of the headline figure (per training size and model, the recipe with the most seeds); "
                 "the other recipes and ablation arms are in the summary.")
GOAL_TITLE = "Zero-shot goals: S4ND and its discrete twin at half and twice the training rate"
TWIN_OF = {"s4nd_iso": "conv{dims}d_iso", "s4nd_convnext": "convnext", "s4nd_convnext_official": "convnext"}


def _goal_changes(train: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """The goals' changes: (what changed, test size) at half and twice each rate."""
    half, twice = (lambda v: max(1, round(v / 2))), (lambda v: 2 * v)
    if len(train) == 1:
        return [("sampling rate x1/2", (half(train[0]),)), ("sampling rate x2", (twice(train[0]),))]
    if len(train) == 2:
        return [("resolution x1/2", tuple(map(half, train))), ("resolution x2", tuple(map(twice, train)))]
    t, h, w = train
    return [("frame rate x1/2", (half(t), h, w)), ("frame rate x2", (twice(t), h, w)),
            ("frame size x1/2", (t, half(h), half(w))), ("frame size x2", (t, twice(h), twice(w))),
            ("both x1/2", (half(t), half(h), half(w))), ("both x2", (twice(t), twice(h), twice(w)))]


def _spread(values: list[float]) -> str:
    return mean_sd(values, digits=2) if len(values) > 1 else ""


def _goal_row(s4: list[dict], twin: list[dict], records) -> dict:
    """The figures of one goal: `s4` and `twin` are each seed's cells ({"train": row, "test": row})."""
    def drops(cells):
        return [100 * (c["train"].accuracy - c["test"].accuracy) for c in cells]

    row = {"S4ND %": round(float(np.mean([100 * c["test"].accuracy for c in s4])), 2),
           "S4ND drop": round(float(np.mean(drops(s4))), 2),
           "twin %": round(float(np.mean([100 * c["test"].accuracy for c in twin])), 2),
           "twin drop": round(float(np.mean(drops(twin))), 2)}
    if len(s4) > 1 or len(twin) > 1:
        row["drops over seeds"] = f"S4ND {_spread(drops(s4)) or 'one seed'}; twin {_spread(drops(twin)) or 'one seed'}"
    get = (lambda cells, key: [records.get(c[key]) for c in cells]) if records else (lambda cells, key: [None])
    frames = [get(s4, "train"), get(s4, "test"), get(twin, "train"), get(twin, "test")]
    tests = goal_tests(*frames) if all(f is not None for group in frames for f in group) else None
    if tests is None:
        return {**row, "S4ND 95% CI": "", "twin - S4ND": "", "S4ND within 2": "untested (no per-image records)",
                "twin falls further": "untested (no per-image records)"}
    interval = "[{:.2f}, {:.2f}]".format  # points; both ends may be negative
    return {**row, "S4ND 95% CI": interval(*tests["S4ND 95% CI"]),
            "twin - S4ND": f"{tests['twin - S4ND']:.2f} {interval(*tests['twin - S4ND 95% CI'])}",
            "S4ND within 2": "shown" if tests["S4ND within 2"] else "not shown",
            "twin falls further": "shown" if tests["twin falls further"] else "not shown"}


def _families(ok: pd.DataFrame, families: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Family label -> the first row of each member checkpoint (one per seed)."""
    firsts = ok.drop_duplicates("checkpoint")
    label = firsts["checkpoint"].map(lambda c: families.get(c, c))
    return {name: g for name, g in firsts.groupby(label, sort=False)}


def _budget(members: pd.DataFrame) -> str:
    """A family's training budget as its recipe reads it (size:epochs of each stage, config overrides); '?' for a
    checkpoint not trained by resbench."""
    recipe = members["recipe"].iloc[0] if "recipe" in members else None
    return str(recipe) if isinstance(recipe, str) and recipe else "?"


def _one_size(members: pd.DataFrame) -> bool:
    """Whether a family trained at its one size only (not progressive, not multi-scale): zero-shot elsewhere."""
    return all(recipe_kind(r) == "fixed" for r in members.get("recipe", pd.Series([""] * len(members))))


def _twins(s4: pd.Series, groups: dict[str, pd.DataFrame]) -> list[str]:
    """The families that are S4ND family `s4`'s discrete twin: the mapped model, same dataset and training size,
    trained at that one size."""
    model = TWIN_OF.get(str(s4.model), "").format(dims=int(s4.dims))
    return [name for name, g in groups.items() if (g["model"] == model).all() and (g["dataset"] == s4.dataset).all()
            and (g["train_res"] == s4.train_res).all() and _one_size(g)]


def _cells(by_size: dict, members: pd.DataFrame, train, size) -> list[dict] | None:
    """Each member's cells at the training and the test size ({"train": row, "test": row}); None unless every
    member has both. `by_size`: checkpoint -> {test size: row}."""
    rows = [by_size[name] for name in members["checkpoint"]]
    if any(train not in r or size not in r for r in rows):
        return None
    return [{"train": r[train], "test": r[size]} for r in rows]


def goal_table(df: pd.DataFrame, records: Records | None = None, families: dict[str, str] | None = None,
               only: set[str] | None = None) -> pd.DataFrame:
    """Each S4ND model (a family of seeds, `families`: checkpoint -> label, see families.family_labels) and each
    of its discrete twins: their drops at half and twice the training rate per axis, and the goal's two paired
    tests on seed means (GOAL_NOTE). `only`: the families to pair (the headline's; default: all). Empty without
    such a pair."""
    ok = df[(df["error"] == "") & (df["policy"] == "native")]
    ok = ok[reference_setting(ok)]
    groups = _families(ok, families or {})
    every = len(groups)
    if only is not None:
        groups = {name: g for name, g in groups.items() if name in only}
    by_size = {name: {parse_size(r.test_res, int(r.dims)): r for r in g.itertuples(index=False)}
               for name, g in ok.groupby("checkpoint")}
    rows = []
    for name, members in groups.items():
        s4 = members.iloc[0]
        if str(s4.model) not in TWIN_OF or not _one_size(members):
            continue
        dims = int(s4.dims)
        train = parse_size(s4.train_res, dims)
        for twin in _twins(s4, groups):
            for change, size in _goal_changes(train):
                mine = _cells(by_size, members, train, size)
                theirs = _cells(by_size, groups[twin], train, size)
                if mine and theirs:
                    rows.append({"S4ND": name, "twin": twin, "change": change, "test_res": format_size(size),
                                 "training (S4ND / twin)": f"{_budget(members)} / {_budget(groups[twin])}",
                                 **_goal_row(mine, theirs, records)})
    table = pd.DataFrame(rows)
    if len(table):  # one column order in every table: the seeds' spread last, where any row has it
        table = table[[c for c in table.columns if c != "drops over seeds"]
                      + [c for c in table.columns if c == "drops over seeds"]].fillna("")
        table.attrs["note"] = GOAL_NOTE + (LEFT_OUT_NOTE if len(groups) < every else "")
    return table
