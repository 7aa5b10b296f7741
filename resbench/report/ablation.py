"""The trained bandlimit ablation with its control, arm by arm.

An arm is how an S4ND checkpoint was trained: with the band mask (the modes below alpha/2 cycles per step),
with a random mask keeping as many modes per channel (the control for the loss of capacity), or without a
mask. Checkpoints of one base recipe (model, dataset, schedule and every other setting) form an ablation set;
each is evaluated natively in the setting it trained with (a masked arm with its mask on, the unmasked one
with it off). Two tables: accuracy per arm, mean +- sd over the training seeds; and the band-mask arm minus
each other arm, paired seed by seed, with a 95% t interval over the seeds.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from resbench.report.load import SweptFiles, reference_cells
from resbench.resolution import size_key, sort_sizes

__all__ = ["ARMS_TITLE", "DIFF_TITLE", "arm_frame", "arm_tables"]

ARMS_TITLE = "Bandlimit ablation by arm: accuracy (%) mean \u00b1 sd over training seeds (native policy)"
DIFF_TITLE = "Bandlimit ablation: band mask minus each other arm (points; seed-paired mean [95% t interval])"
BAND, RANDOM, NONE = "band mask", "random mask", "no mask"
ARM_ORDER = {BAND: 0, RANDOM: 1, NONE: 2}
ARMS_NOTE = ("Each arm evaluated in the setting it trained with (a masked arm with its mask on, the unmasked arm "
             "with it off); (n): training seeds. The random mask keeps as many modes per channel as the band mask, "
             "chosen at random, so band minus random separates where the kept modes lie from how many there are.")
DIFF_NOTE = ("Differences of the two arms' accuracies at the same training seed, averaged over the (n) seeds both "
             "arms have; the interval is Student's t over those seed differences (none with one seed): it covers "
             "the variation between training runs, measured on the same test images.")


def _arm(ckpt) -> tuple[str, dict] | None:
    """(arm label, base recipe) of an S4ND checkpoint trained by resbench, or None for any other file."""
    config = ckpt.provenance.get("train_config")
    if not isinstance(config, dict) or "seed" not in config or "bandlimit" not in ckpt.config:
        return None
    overrides = dict(config.get("model_overrides") or {})
    alpha, mask = overrides.pop("bandlimit", ckpt.config.get("bandlimit")), overrides.pop("mask", None)
    if alpha is None:
        arm = NONE
    else:
        arm = f"{RANDOM if mask == 'random' else BAND} (alpha {alpha:g})"
    base = {k: v for k, v in config.items() if k not in ("seed", "model_overrides", "threads", "device", "data_dir")}
    return arm, {**base, "model_overrides": overrides}


def _recipe_label(base: dict) -> str:
    """The base recipe in a few words: model, schedule (size:epochs), other overrides."""
    stages = ",".join(f"{size}:{epochs}" for size, epochs in base.get("schedule") or [])
    extra = " ".join(f"{k}={v}" for k, v in sorted(base["model_overrides"].items()))
    return " ".join(part for part in (str(base.get("model", "")), stages, extra) if part)


def arm_frame(df: pd.DataFrame, files: SweptFiles) -> pd.DataFrame:
    """Reference cells of every checkpoint in an ablation set (two arms or more of one base recipe), with
    `arm`, `train_seed`, `set` (the base recipe) and `acc` (%). Where two files share an arm and a seed, the one
    that records its mask kind (`provenance["mask"]`) is kept."""
    ref = reference_cells(df)
    rows = []
    for name, sha in ref.drop_duplicates("checkpoint")[["checkpoint", "checkpoint_sha256"]].itertuples(index=False):
        ckpt = files.get(sha)
        found = _arm(ckpt) if ckpt is not None else None
        if found is not None:
            rows.append({"checkpoint": name, "arm": found[0], "set": json.dumps(found[1], sort_keys=True, default=str),
                         "recipe": _recipe_label(found[1]),
                         "train_seed": int(ckpt.provenance["train_config"]["seed"]),
                         "records_mask": "mask" in ckpt.provenance})
    if not rows:
        return pd.DataFrame()
    arms = pd.DataFrame(rows).sort_values(["records_mask", "checkpoint"], ascending=[False, True])
    arms = arms.drop_duplicates(["set", "arm", "train_seed"])
    arms = arms[arms.groupby("set")["arm"].transform("nunique") >= 2]
    cells = ref.drop(columns=["recipe"], errors="ignore").merge(
        arms[["checkpoint", "arm", "set", "recipe", "train_seed"]], on="checkpoint")
    return cells.assign(acc=100 * cells["accuracy"])


def _arm_rank(arm: str) -> int:
    return ARM_ORDER[next(a for a in ARM_ORDER if arm.startswith(a))]


def _by_size(frame: pd.DataFrame, index: list[str], cell) -> pd.DataFrame:
    """One row per `index` group, a column per test size holding cell(values of that size)."""
    rows = []
    for key, g in frame.groupby(index, sort=False):
        row = dict(zip(index, key if isinstance(key, tuple) else (key,)))
        for size, at in g.groupby("test_res"):
            row[size] = cell(at)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table[index + sort_sizes([c for c in table.columns if c not in index])]


def _mean_sd(at: pd.DataFrame) -> str:
    acc = at["acc"]
    return f"{acc.mean():.2f} \u00b1 {acc.std(ddof=1):.2f} ({len(acc)})" if len(acc) > 1 else f"{acc.iloc[0]:.2f} (1)"


def _t95(df: int) -> float:
    """Student's t quantile 0.975 for `df` degrees of freedom (scipy's when present)."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def _paired(at: pd.DataFrame) -> str:
    d = at["diff"]
    if len(d) < 2:
        return f"{d.iloc[0]:+.2f} (1 seed)"
    half = _t95(len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return f"{d.mean():+.2f} [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}] ({len(d)})"


def _differences(cells: pd.DataFrame) -> pd.DataFrame:
    """Band-arm accuracy minus each other arm's of the same set, training seed, training and test size."""
    keys = ["set", "recipe", "train_res", "test_res", "train_seed"]
    band = cells[cells["arm"].str.startswith(BAND)]
    others = cells[~cells["arm"].str.startswith(BAND)]
    both = band.merge(others, on=keys, suffixes=("", " other"))
    both["diff"] = both["acc"] - both["acc other"]
    both["comparison"] = both["arm"] + " minus " + both["arm other"]
    return both


def arm_tables(df: pd.DataFrame, files: SweptFiles) -> dict[str, pd.DataFrame]:
    """The two ablation tables (ARMS_TITLE, DIFF_TITLE), empty dict when no ablation set was swept."""
    cells = arm_frame(df, files)
    if cells.empty:
        return {}
    cells = cells[~cells["seen"] | (cells["test_res"] == cells["train_res"])]
    cells = cells.assign(order=cells["arm"].map(_arm_rank), size=cells["train_res"].map(size_key))
    cells = cells.sort_values(["size", "set", "order", "train_seed"])
    arms = _by_size(cells, ["recipe", "arm"], _mean_sd)
    arms.attrs["note"] = ARMS_NOTE
    tables = {ARMS_TITLE: arms}
    diffs = _differences(cells)
    if len(diffs):
        table = _by_size(diffs, ["recipe", "comparison"], _paired)
        table.attrs["note"] = DIFF_NOTE
        tables[DIFF_TITLE] = table
    return tables
