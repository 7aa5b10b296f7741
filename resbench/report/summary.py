"""The report's first table: one row per model (seed twins as one), its native accuracy, how its accuracy changes
at the zero-shot test sizes below and above its training size, and the setting that does best there."""

from __future__ import annotations

import math

import pandas as pd

from resbench.report.load import reference_cells, reference_setting
from resbench.report.shape import checkpoint_rank
from resbench.resolution import size_key
from resbench.scoring import wilson_interval

__all__ = ["SUMMARY_TITLE", "SUMMARY_NOTE", "FULL_SUMMARY_TITLE", "SUMMARY_HEAD_ROWS", "summary_table",
           "leading_summary", "change_interval", "LEAD_NOTE"]

SUMMARY_TITLE = "Summary: one row per model (accuracy in %, change in points: negative is a loss)"
SUMMARY_NOTE = ("training: the budget each model had, size:epochs of each stage of its schedule (and any config "
                "overrides). native: accuracy at the training size (native policy, reference bandlimit: on, else none), 95% "
                "Wilson interval. change: accuracy at a zero-shot size minus native, same setting; mean and worst over "
                "the sizes below / above training, the worst with its 95% interval (Newcombe) and size. Seeds of one "
                "recipe: one row, mean \u00b1 sd (n seeds). best: the policy and bandlimit with the highest accuracy "
                "pooled over those sizes and its gain over the reference, shown only where the gain's 95% interval "
                "(Newcombe, pooled counts) excludes zero, for seeds in every seed; blank: no setting beats the "
                "reference beyond that.")
FULL_SUMMARY_TITLE = "Summary, every model and recipe (accuracy in %, change in points: negative is a loss)"
SUMMARY_HEAD_ROWS = 12  # a longer summary leads with the headline's models, and every row follows the headline
_SIDES = ("below", "above")
_COLUMNS = ["model", "train_res", "training", "native %", *[f"{c} {side}{m}" for side in _SIDES
                                              for c, m in (("change", ": mean"), ("change", ": worst"), ("best", ""))]]


def change_interval(test: tuple[float, float, float], native: tuple[float, float, float]) -> tuple[float, float]:
    """95% interval of test minus native accuracy, each given as (accuracy, Wilson low, Wilson high): Newcombe's
    hybrid score interval. It treats the cells as independent samples, so on the same images it is conservative."""
    (p, lo, hi), (q, qlo, qhi) = test, native
    return p - q - math.hypot(p - lo, qhi - q), p - q + math.hypot(hi - p, q - qlo)


def _zero_shot(ref: pd.DataFrame, train: str) -> dict[str, pd.DataFrame]:
    """One checkpoint's zero-shot reference cells (not a size it trained at), below and above its training size."""
    cells = ref[~ref["seen"] & (ref["test_res"] != train)]
    below = [size_key(t) < size_key(train) for t in cells["test_res"]]
    return {"below": cells[below], "above": cells[[not b for b in below]]}


def _checkpoint_numbers(ref: pd.DataFrame) -> dict:
    """One checkpoint's native accuracy (%) and, per side, the mean and worst change (points) with the worst's
    interval and size; an empty dict without a native cell."""
    train = ref["train_res"].iloc[0]
    native = ref[ref["test_res"] == train]
    if native.empty:
        return {}
    nat = native.iloc[0]
    numbers = {"native": 100 * nat["accuracy"], "native_ci": (100 * nat["ci_low"], 100 * nat["ci_high"])}
    for side, cells in _zero_shot(ref, train).items():
        if cells.empty:
            continue
        change = 100 * (cells["accuracy"] - nat["accuracy"])
        worst = cells.loc[change.idxmin()]
        low, high = change_interval((worst["accuracy"], worst["ci_low"], worst["ci_high"]),
                                    (nat["accuracy"], nat["ci_low"], nat["ci_high"]))
        numbers[side] = {"mean": change.mean(), "worst": change.min(), "ci": (100 * low, 100 * high),
                         "size": worst["test_res"], "sizes": set(cells["test_res"])}
    return numbers


def _setting_counts(ok: pd.DataFrame, sizes: set) -> pd.DataFrame:
    """Correct and n of each (policy, bandlimit) of one checkpoint pooled over `sizes`, for the settings run at
    every one of them."""
    cells = ok[ok["test_res"].isin(sizes)]
    grouped = cells.groupby(["policy", "bandlimit"])
    counts = grouped[["correct", "n"]].sum()
    return counts[grouped.size() == len(sizes)]


def _gain(counts: pd.DataFrame, setting, reference) -> tuple[float, float, float]:
    """Pooled accuracy of `setting` minus the reference's, in points, with its 95% Newcombe interval."""
    acc = {}
    for key in (setting, reference):
        correct, n = int(counts.loc[key, "correct"]), int(counts.loc[key, "n"])
        acc[key] = (correct / n, *wilson_interval(correct, n))
    low, high = change_interval(acc[setting], acc[reference])
    return 100 * (acc[setting][0] - acc[reference][0]), 100 * low, 100 * high


def _best_setting(ok: pd.DataFrame, numbers: dict[str, dict], side: str) -> str:
    """The (policy, bandlimit) with the highest pooled accuracy over one side's sizes and its gain over the
    reference setting, shown only where the gain's 95% interval excludes zero (for seeds: every seed's); ''
    where the reference is best, no setting beats it beyond the noise, or they cannot be compared."""
    counts, reference = {}, None
    for name, nums in numbers.items():
        if side in nums:
            mine = ok[ok["checkpoint"] == name]
            counts[name] = _setting_counts(mine, nums[side]["sizes"])
            reference = ("native", mine.loc[reference_setting(mine), "bandlimit"].iloc[0])
    if not counts:
        return ""
    shared = set.intersection(*(set(c.index) for c in counts.values()))  # settings every member ran
    if reference not in shared:
        return ""
    best = max(shared, key=lambda k: sum(c.loc[k, "correct"] / c.loc[k, "n"] for c in counts.values()))
    if best == reference:
        return ""
    gains = [_gain(c, best, reference) for c in counts.values()]
    if not all(low > 0 for _, low, _ in gains):
        return ""
    if len(gains) == 1:
        gain, low, high = gains[0]
        return f"{best[0]}, {best[1]} ({gain:+.1f} [{low:+.1f}, {high:+.1f}])"
    return f"{best[0]}, {best[1]} ({mean_sd([g for g, _, _ in gains])})"


def mean_sd(values: list[float], digits: int = 1, count: bool = True) -> str:
    """Seeds' values as mean +- sample sd (n), to `digits` decimals; without the (n) where `count` is False."""
    s = pd.Series(values, dtype="float64")
    return f"{s.mean():.{digits}f} \u00b1 {s.std(ddof=1):.{digits}f}" + (f" (n={len(s)})" if count else "")


def _family_row(label: str, numbers: dict[str, dict], ok: pd.DataFrame, compact: bool = False) -> dict:
    """The summary row of one family (`numbers`: each member's _checkpoint_numbers); `compact`: no intervals, no
    n, no best setting (the leading summary)."""
    have = [n for n in numbers.values() if n]
    mine = ok[ok["checkpoint"].isin(list(numbers))]
    row = {"model": label, "train_res": mine["train_res"].iloc[0],
           "training": str(mine["recipe"].iloc[0]) if "recipe" in mine and pd.notna(mine["recipe"].iloc[0]) else ""}
    def spread(values: list[float]) -> str:  # compact: the seeds' count is in the model's name
        return mean_sd(values, count=not compact)

    if len(have) == 1:
        n = have[0]
        row["native %"] = (f"{n['native']:.1f}" if compact
                           else f"{n['native']:.1f} [{n['native_ci'][0]:.1f}, {n['native_ci'][1]:.1f}]")
    elif have:
        row["native %"] = spread([n["native"] for n in have])
    for side in _SIDES:
        sides = [n[side] for n in have if side in n]
        if len(sides) == 1:
            s = sides[0]
            row[f"change {side}: mean"] = f"{s['mean']:+.1f}"
            row[f"change {side}: worst"] = (f"{s['worst']:+.1f} at {s['size']}" if compact else
                                            f"{s['worst']:+.1f} [{s['ci'][0]:+.1f}, {s['ci'][1]:+.1f}] at {s['size']}")
        elif sides:
            row[f"change {side}: mean"] = spread([s["mean"] for s in sides])
            row[f"change {side}: worst"] = spread([s["worst"] for s in sides])
        if not compact:
            row[f"best {side}"] = _best_setting(ok, numbers, side)
    return row


def summary_table(df: pd.DataFrame, families: dict[str, str], only: set[str] | None = None,
                  compact: bool = False) -> pd.DataFrame:
    """One row per family of `families` (checkpoint name -> family label; see families.family_labels), in the
    order of the other tables; columns no row fills are left out. `only`: those family labels alone; `compact`:
    the leading summary's short cells (_family_row)."""
    ok = df[df["error"] == ""]
    ref = reference_cells(df)
    rank = checkpoint_rank(ok) if len(ok) else {}
    members: dict[str, list[str]] = {}
    for name in sorted(set(ok["checkpoint"]), key=rank.__getitem__):
        label = families.get(name, name)
        if only is None or label in only:
            members.setdefault(label, []).append(name)
    rows = [_family_row(label, {name: _checkpoint_numbers(ref[ref["checkpoint"] == name])
                                if (ref["checkpoint"] == name).any() else {} for name in names}, ok, compact)
            for label, names in members.items()]
    columns = [c for c in _COLUMNS if not (compact and (c == "training" or c.startswith("best")))]
    table = pd.DataFrame(rows, columns=columns).fillna("")
    table = table[[c for c in table.columns if c in ("model", "train_res") or (table[c] != "").any()]]
    if len(table):
        table.attrs["note"] = SUMMARY_NOTE
    else:
        table.attrs["empty"] = "no cell was evaluated"
    return table


LEAD_NOTE = ("The headline figure's models; {left} more, with intervals and budgets, in '{full}' after the figure. "
             "change: points at the zero-shot sizes below / above training (negative: a loss); seeds: mean \u00b1 sd.")


def leading_summary(df: pd.DataFrame, families: dict[str, str], summary: pd.DataFrame,
                    drawn: set[str]) -> pd.DataFrame | None:
    """The summary the report leads with when `summary` (summary_table) is longer than SUMMARY_HEAD_ROWS: the
    families the headline draws (`drawn`, see headline.headline_families) in short cells, with a note on what it
    leaves to the full table; None when the whole summary is short enough to lead with."""
    if len(summary) <= SUMMARY_HEAD_ROWS or not summary["model"].isin(drawn).any():
        return None
    head = summary_table(df, families, only=drawn, compact=True)
    head.attrs["note"] = LEAD_NOTE.format(left=len(summary) - len(head), full=FULL_SUMMARY_TITLE.split(" (")[0])
    head.attrs["compact"] = True
    return head
