"""The report's statistics: policy winners by Wilson intervals or by paired McNemar tests with Holm's
adjustment, and the spread between checkpoints trained with different seeds."""

from __future__ import annotations

import json

import pandas as pd

from resbench.report.load import SweptFiles, reference_cells, reference_setting
from resbench.report.persample import Records, holm, paired_policy
from resbench.report.shape import ci_text, sort_rows
from resbench.resolution import size_key, sort_sizes

__all__ = ["policy_table", "paired_columns", "seed_groups", "seed_spread_table", "SEEDS_TITLE", "WINNER_RULE",
           "PAIRED_RULE"]


WINNER_RULE = ("winner: named only where the two cells' 95% Wilson intervals do not overlap, else a tie. This is "
               "a conservative unpaired rule; a paired test on per-image predictions would be sharper.")
POLICY_NOTE = ("Cells at a size the checkpoint trained at are left out. Above the training size resize-input "
               "hands the model (nearly) the image it was trained on, so it is the reference a zero-shot result is "
               "measured against, not a rival (winner: '(reference)'); the comparison is informative below the "
               "training size, where both policies see the same low-resolution image. only native / only resize: "
               "images only that policy classified right.")
PAIRED_RULE = ("winner: where both cells have per-image records (sweep --log-samples), an exact McNemar test on "
               "the images only one policy classified right, Holm-adjusted over the rows tested; a winner only at "
               "adjusted p < 0.05, else a tie. Rows without records keep the unpaired rule (95% Wilson intervals "
               "do not overlap).")


def _winner(native: tuple[float, float], resize: tuple[float, float]) -> str:
    """WINNER_RULE on two (ci_low, ci_high) intervals; NaN bounds compare False, so they give a tie."""
    if native[0] > resize[1]:
        return "native (zero-shot)"
    if resize[0] > native[1]:
        return "resize-input"
    return "tie (95% CIs overlap)"


def paired_columns(pol: pd.DataFrame, ref_bl: pd.DataFrame, records: Records) -> pd.DataFrame:
    """The paired test of each informative row (below the training size) whose two cells have per-image records:
    images only native / only resize-input got right, the exact McNemar p, Holm's adjustment over the rows
    tested, and the winner it supports (a tie unless the adjusted p is below 0.05)."""
    cells = {(r.checkpoint, r.test_res, r.policy): r for r in ref_bl.itertuples()}
    tests = {}
    for i, r in pol.iterrows():
        if size_key(r["test_res"]) < size_key(r["train_res"]):
            a, b = cells.get((r["checkpoint"], r["test_res"], "native")), \
                cells.get((r["checkpoint"], r["test_res"], "resize-input"))
            if a is not None and b is not None and (t := paired_policy(a, b, records)) is not None:
                tests[i] = t
    if not tests:
        return pol
    adjusted = dict(zip(tests, holm([t["p"] for t in tests.values()])))
    pol["only native"] = [str(tests[i]["only_native"]) if i in tests else "" for i in pol.index]  # counts
    pol["only resize"] = [str(tests[i]["only_resize"]) if i in tests else "" for i in pol.index]
    pol["p (Holm)"] = [f"{adjusted[i]:.2g}" if i in tests else "" for i in pol.index]
    for i, t in tests.items():
        if adjusted[i] >= 0.05:
            pol.loc[i, "winner"] = "tie (paired test)"
        else:
            pol.loc[i, "winner"] = ("native (zero-shot)" if t["only_native"] > t["only_resize"] else "resize-input") \
                + " (paired test)"
    pol.attrs["paired"] = len(tests)
    return pol


def policy_table(ok: pd.DataFrame, rank: dict[str, int], records: Records | None = None) -> pd.DataFrame:
    ref_bl = ok[reference_setting(ok)]
    wide = ref_bl.pivot_table(index=["checkpoint", "train_res", "test_res"], columns="policy",
                              values=["acc", "ci_low", "ci_high"], aggfunc="first")
    pol = wide["acc"].reset_index() if len(wide) else pd.DataFrame(columns=["checkpoint", "train_res", "test_res"])
    pol.columns.name = None
    if not {"native", "resize-input"} <= set(pol.columns):
        return pol
    bounds = {name: list(zip(wide["ci_low"][name], wide["ci_high"][name])) for name in ("native", "resize-input")}
    for name, intervals in bounds.items():
        pol[f"{name} ci95"] = [ci_text(lo, hi) for lo, hi in intervals]
    pol["winner"] = [_winner(n, r) for n, r in zip(bounds["native"], bounds["resize-input"])]
    seen = ref_bl[ref_bl["seen"]].groupby(["checkpoint", "test_res"]).size().index
    pol = pol.dropna(subset=["native", "resize-input"])
    pol = pol[pol["test_res"] != pol["train_res"]]
    pol = pol[[(c, t) not in seen for c, t in zip(pol["checkpoint"], pol["test_res"])]]  # zero-shot cells only
    # above the training size resize-input gives the model (nearly) the image it trained on: a reference
    # every zero-shot drop falls below, not a competitor, so no winner is named there
    above = [size_key(t) > size_key(r) for t, r in zip(pol["test_res"], pol["train_res"])]
    pol["winner"] = ["(reference)" if a else w
                     for a, w in zip(above, pol["winner"])]
    pol = sort_rows(pol, rank, ("test_res",))
    if records is not None:
        pol = paired_columns(pol, ref_bl, records)
    pol.attrs["note"] = (PAIRED_RULE if pol.attrs.get("paired") else WINNER_RULE) + " " + POLICY_NOTE
    return pol


SEEDS_TITLE = "Training seeds: accuracy mean \u00b1 sd across seeds (%; native policy)"
SEEDS_NOTE = ("Checkpoints trained with the same recipe (every training setting but the seed) and different seeds, "
              "as their files' provenance says. Each cell: mean \u00b1 sample standard deviation across the seeds, "
              "then in brackets the mean half-width of the cells' 95% Wilson intervals, which cover test-set "
              "sampling only; a seed spread larger than that half-width is variation between trained models that "
              "the intervals do not show.")
_NOT_RECIPE = ("seed", "threads", "data_dir", "test_limit", "device")  # settings that leave the recipe the same


def seed_groups(df: pd.DataFrame, runs: list[dict], files: SweptFiles | None = None) -> dict[str, tuple[str, int]]:
    """Checkpoint name -> (recipe key, training seed), from the files the run records name (a file that is
    gone, changed or not trained by resbench is left out)."""
    files = files or SweptFiles(runs)
    out = {}
    for name, sha in df.drop_duplicates("checkpoint")[["checkpoint", "checkpoint_sha256"]].itertuples(index=False):
        ckpt = files.get(sha)
        config = ckpt.provenance.get("train_config") if ckpt is not None else None
        if not isinstance(config, dict) or "seed" not in config:
            continue
        # a setting left at None reads as absent: a config field added later defaults to None, the old behaviour
        key = json.dumps({k: v for k, v in config.items() if k not in _NOT_RECIPE and v is not None},
                         sort_keys=True, default=str)
        out[name] = (key, int(config["seed"]))
    return out


def seed_spread_table(df: pd.DataFrame, runs: list[dict], files: SweptFiles | None = None,
                      families: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per recipe trained with two or more seeds: mean +- sd of accuracy at each test size (SEEDS_NOTE).
    `families` (checkpoint -> label, families.family_labels): its families instead of the recipes, so that two
    sets of runs of one recipe (an arm repeating the main recipe) stay two rows, not one with a seed overwritten."""
    groups = seed_groups(df, runs, files)
    by_key: dict[str, dict[int, str]] = {}
    twice = set()  # groups holding one seed twice: not a spread over seeds
    for name, (key, seed) in groups.items():
        label = families.get(name, name) if families is not None else key
        if seed in by_key.setdefault(label, {}):
            twice.add(label)
        by_key[label][seed] = name
    ref = reference_cells(df)
    rows = []
    for key, seeds in by_key.items():
        if len(seeds) < 2 or key in twice:
            continue
        names = [seeds[k] for k in sorted(seeds)]
        g = ref[ref["checkpoint"].isin(names)]
        row = {"checkpoints": ", ".join(names), "seeds": ",".join(map(str, sorted(seeds))),
               "train_res": g["train_res"].iloc[0] if len(g) else ""}
        for size, cells in sorted(g.groupby("test_res"), key=lambda kv: size_key(kv[0])):
            if cells["checkpoint"].nunique() != len(names):
                continue  # a size not swept for every seed
            acc = 100 * cells["accuracy"]
            half = 100 * (cells["ci_high"] - cells["ci_low"]).mean() / 2
            row[size] = f"{acc.mean():.2f} \u00b1 {acc.std(ddof=1):.2f} [\u00b1{half:.2f}]"
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    sizes = sort_sizes([c for c in table.columns if c not in ("checkpoints", "seeds", "train_res")])
    table = table[["checkpoints", "seeds", "train_res", *sizes]].fillna("")
    table.attrs["note"] = SEEDS_NOTE
    return table
