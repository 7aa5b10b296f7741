"""Does a metric predict the accuracy drop better than the distance in size alone?

A metric earns its place only if, within a checkpoint and bandlimit setting, it orders the test sizes by
their drop better than the trivial predictor |log(test / train)| does. Pooling the cells of many
checkpoints mixes "which checkpoint" with "which size" (a metric constant per checkpoint can score well
pooled), and the cells of one checkpoint are not independent, so:

- rho is Spearman's rank correlation between a predictor and the drop over the zero-shot test sizes of one
  (checkpoint, bandlimit setting) group, native policy (groups with at least 3 sizes whose drops differ);
  a predictor with one value over a group orders nothing there and counts as rho 0;
- the figure per predictor is the mean of the groups' rho, with a 95% interval from a bootstrap that draws
  checkpoints (with all their groups) with replacement;
- metric against trivial: the mean of the paired per-group differences, with the same bootstrap; two trivial
  predictors, the distance |log(test / train)| and the side then the distance (every size below training
  ranked above every size above it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from resbench.resolution import parse_size

__all__ = ["zero_shot_drops", "trivial_predictors", "within_group_rho", "bootstrap_over_checkpoints",
           "compare_predictors"]

GROUP = ["checkpoint", "bandlimit"]


def _sizes(row) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(train, test) sizes of a row; its `dims` says what a bare number is (a signal's length, else a square)."""
    dims = int(row["dims"]) if "dims" in row and pd.notna(row["dims"]) else None
    return parse_size(row["train_res"], dims), parse_size(row["test_res"], dims)


def _log_ratio(row) -> float:
    train, test = _sizes(row)
    return float(np.mean([abs(np.log(s / t)) for s, t in zip(test, train)]))


def zero_shot_drops(results: pd.DataFrame) -> pd.DataFrame:
    """Native cells of `results` with `drop` (points: native accuracy at the training size with the same
    bandlimit setting, minus this cell's) and two trivial predictors: `log_ratio` (|log(test/train)|,
    averaged over axes) and `side_then_distance` (sizes below training, fewer pixels, ranked above every
    size above it, then by log_ratio); cells at the training size, seen in training or failed are left out."""
    df = results[(results["policy"] == "native") & results["accuracy"].notna()].copy()
    df["train_res"], df["test_res"] = df["train_res"].astype(str), df["test_res"].astype(str)
    native = df[df["test_res"] == df["train_res"]].set_index(GROUP)["accuracy"]
    df = df[df["test_res"] != df["train_res"]]
    if "seen_in_training" in df:
        df = df[~df["seen_in_training"].astype(str).str.lower().isin(["true", "1"])]
    keys = pd.MultiIndex.from_frame(df[GROUP])
    df["drop"] = 100 * (native.reindex(keys).to_numpy() - df["accuracy"].to_numpy())
    return trivial_predictors(df[df["drop"].notna()])


def trivial_predictors(cells: pd.DataFrame) -> pd.DataFrame:
    """`cells` (train_res, test_res and, where a bare number is no square image, dims) with the two trivial
    predictors: `log_ratio` and `side_then_distance`."""
    cells = cells.copy()
    cells["log_ratio"] = [_log_ratio(r) for _, r in cells.iterrows()]
    # the second trivial predictor: every size below training before every size above it, then the distance
    below = np.array([_below(r) for _, r in cells.iterrows()], dtype=float)
    cells["side_then_distance"] = cells["log_ratio"] + 100.0 * below
    return cells


def _below(row) -> bool:
    train, test = _sizes(row)
    return bool(np.prod(test) < np.prod(train))


def _spearman(a: pd.Series, b: pd.Series) -> float:
    return float(a.rank().corr(b.rank()))


def within_group_rho(drops: pd.DataFrame, predictors) -> pd.DataFrame:
    """One row per (checkpoint, bandlimit) group: n sizes and Spearman's rho of each predictor with the drop
    (0 for a predictor constant over the group)."""
    rows = []
    for key, g in drops.groupby(GROUP):
        if len(g) >= 3 and g["drop"].nunique() > 1:  # a predictor constant over the group orders nothing: 0
            rows.append({**dict(zip(GROUP, key)), "n": len(g),
                         **{p: _spearman(g[p], g["drop"]) if g[p].nunique() > 1 else 0.0 for p in predictors}})
    return pd.DataFrame(rows, columns=[*GROUP, "n", *predictors])


def bootstrap_over_checkpoints(rho: pd.DataFrame, column: str, draws: int = 2000, seed: int = 0):
    """(mean, low, high): the mean of `column` over groups and its 95% interval, drawing checkpoints (with
    all their groups) with replacement."""
    values = rho.groupby("checkpoint")[column].apply(list)
    if values.empty:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    per_ckpt = [np.asarray(v, dtype=float) for v in values]
    means = []
    for _ in range(draws):
        pick = rng.integers(0, len(per_ckpt), len(per_ckpt))
        means.append(np.concatenate([per_ckpt[i] for i in pick]).mean())
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(np.concatenate(per_ckpt).mean()), float(lo), float(hi)


def compare_predictors(drops: pd.DataFrame, metrics, trivial: str = "log_ratio", where: str = "all",
                       draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per predictor: groups, mean within-group rho [95% CI]; per metric also its paired difference from the
    trivial predictor [95% CI] and a verdict ("beats", "worse than" or "not distinguishable from" it)."""
    if where != "all":
        below = drops.apply(_below, axis=1)
        drops = drops[below if where == "below" else ~below]
    rho = within_group_rho(drops, [trivial, *metrics])
    rows = []
    for p in [trivial, *metrics]:
        mean, lo, hi = bootstrap_over_checkpoints(rho, p, draws, seed)
        row = {"sizes": where, "predictor": p, "groups": len(rho), "checkpoints": rho["checkpoint"].nunique(),
               "rho": mean, "rho_low": lo, "rho_high": hi}
        if p != trivial:
            diff = rho.assign(d=rho[p] - rho[trivial])
            d, dlo, dhi = bootstrap_over_checkpoints(diff, "d", draws, seed)
            row.update(diff=d, diff_low=dlo, diff_high=dhi,
                       verdict="beats" if dlo > 0 else "worse than" if dhi < 0 else "not distinguishable from")
        rows.append(row)
    return pd.DataFrame(rows)
