"""The report's headline figure: accuracy against test size, a panel per training size, one line per model family
(seeds averaged, with their min-max band), in the reference setting only; every setting has the full figure. The
legend names the model (and its kind of training): a panel holds one family of each."""

from __future__ import annotations

import textwrap

import pandas as pd

from resbench.report.families import recipe_kind
from resbench.report.figures import checkpoint_colors, side
from resbench.report.load import reference_cells
from resbench.resolution import size_key

__all__ = ["HEADLINE_TITLE", "headline_figure", "family_curves", "headline_families"]

LEGEND_PT = 8  # the legend's font size
LEGEND_ROWS = 8  # a legend of more labels takes two columns
HEADLINE_TITLE = "Accuracy vs test size, one line per model (native policy, reference bandlimit)"


def family_curves(df: pd.DataFrame, families: dict[str, str]) -> pd.DataFrame:
    """One row per (family, training size, test size) of the reference cells: accuracy (%) mean over the family's
    checkpoints and its band (min-max over them; a single checkpoint: its 95% Wilson interval), the plot position
    `x`, and whether a member trained at that size without it being its final size (`seen`)."""
    ref = reference_cells(df)
    ref = ref.assign(family=ref["checkpoint"].map(lambda c: families.get(c, c)), acc=100 * ref["accuracy"])
    rows = []
    for (family, train, test), g in ref.groupby(["family", "train_res", "test_res"]):
        one = len(g) == 1
        rows.append({"family": family, "train_res": train, "test_res": test, "x": side(test), "acc": g["acc"].mean(),
                     "low": 100 * g["ci_low"].iloc[0] if one else g["acc"].min(),
                     "high": 100 * g["ci_high"].iloc[0] if one else g["acc"].max(), "members": len(g),
                     "seen": bool((g["seen"] & (g["test_res"] != g["train_res"])).any())})
    return pd.DataFrame(rows, columns=["family", "train_res", "test_res", "x", "acc", "low", "high", "members",
                                       "seen"])


def _epochs(recipe: str) -> int:
    """The epochs of a recipe ('7:1,14:2,28:1 ...' -> 4; unreadable: 0)."""
    try:
        return sum(int(stage.split(":")[1]) for stage in recipe.split(" ")[0].split(","))
    except (IndexError, ValueError):
        return 0


def _family_info(df: pd.DataFrame, families: dict[str, str]) -> pd.DataFrame:
    """One row per reference cell: its family, checkpoint, model, training size, kind of training (fixed size,
    progressive, multi-scale), recipe overrides and epochs, and whether it was trained without a bandlimit."""
    ref = reference_cells(df)
    recipe = ref.get("recipe", pd.Series("", index=ref.index)).fillna("").astype(str)
    masked = pd.to_numeric(ref.get("trained_bandlimit", pd.Series(index=ref.index, dtype=float)), errors="coerce")
    return pd.DataFrame({"family": ref["checkpoint"].map(lambda c: families.get(c, c)),
                         "checkpoint": ref["checkpoint"], "model": ref["model"].astype(str),
                         "train_res": ref["train_res"], "kind": recipe.map(recipe_kind),
                         "overrides": recipe.str.split().str.len().fillna(1) - 1, "plain": masked.isna(),
                         "epochs": recipe.map(_epochs)})


def headline_families(df: pd.DataFrame, families: dict[str, str]) -> set[str]:
    """The families the headline draws: for each training size, model and kind of training, the family with
    the most checkpoints; ties go to the plainest recipe (fewest overrides), then to the longest training (most
    epochs: the stronger model of its kind), then to one trained with a bandlimit, then to the shortest name.
    The variants (other recipes, arms, settings) are in the full figures and tables."""
    chosen = set()
    for _, g in _family_info(df, families).groupby(["train_res", "model", "kind"]):
        ranked = g.groupby("family").agg(members=("checkpoint", "nunique"), overrides=("overrides", "max"),
                                         epochs=("epochs", "max"), plain=("plain", "all")).reset_index()
        ranked["length"] = ranked["family"].str.len()
        ranked = ranked.sort_values(["members", "overrides", "epochs", "plain", "length", "family"],
                                    ascending=[False, True, False, True, True, True])
        chosen.add(ranked["family"].iloc[0])
    return chosen


def _line_labels(df: pd.DataFrame, families: dict[str, str]) -> dict[str, str]:
    """Family -> its line's label: the model, and its kind of training where that is not one fixed size
    ("s4nd_iso", "s4nd_iso (progressive)"). A panel draws one family per label (headline_families), so the
    legend names models, the same colour in every panel; the summary table names each family."""
    info = _family_info(df, families)
    suffix = info["kind"].map(lambda kind: "" if kind == "fixed" else f" ({kind})")
    return dict(zip(info["family"], info["model"] + suffix))


def _legend_columns(labels: list[str]) -> int:
    """Columns of the legend: two where one would make the figure taller than its panels need."""
    return 2 if len(labels) > LEGEND_ROWS else 1


def _legend_width(labels: list[str]) -> float:
    """Inches of the legend: the longest label and its line, per column."""
    return _legend_columns(labels) * (max(map(len, labels), default=10) * 0.6 * LEGEND_PT + 30) / 72


def _legend(fig, axes, labels: list[str]) -> None:
    """One legend for all panels, at the figure's right edge in the room tight_layout leaves free."""
    width = fig.get_size_inches()[0]
    column = _legend_width(labels)
    handles = {}
    for ax in axes:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.tight_layout(rect=(0, 0, 1 - column / width, 1))
    fig.legend([handles[label] for label in labels], labels, loc="center right", fontsize=LEGEND_PT, frameon=False,
               ncol=_legend_columns(labels))


def headline_figure(df: pd.DataFrame, families: dict[str, str], xlabel: str = "test resolution (side, px)"):
    """A panel per training size, a line per family with its band; a vertical line at the training size and an
    open square where a family trained at a size other than its final one (not zero-shot)."""
    import matplotlib.pyplot as plt  # after resbench.report.figures chose the Agg backend

    curves = family_curves(df, families)
    drawn = headline_families(df, families)
    left_out = curves.loc[~curves["family"].isin(drawn), "family"].nunique()
    curves = curves[curves["family"].isin(drawn)]
    line_label = _line_labels(df, families)
    curves = curves.assign(label=curves["family"].map(lambda f: line_label.get(f, f)))
    trains = sorted(curves["train_res"].unique(), key=size_key)
    labels = sorted(curves["label"].unique())
    rows = -(-len(labels) // _legend_columns(labels))
    width = 4.2 * max(1, len(trains)) + _legend_width(labels)
    chosen = (f"; one line per model and kind of training, the recipe with the most seeds (named in the summary; "
              f"{left_out} other recipes or arms: in the full figures and tables)" if left_out else "")
    note = ("Native policy, each checkpoint's reference bandlimit (on, else none); band: 95% Wilson interval, or "
            f"min-max over seeds{chosen}")
    # wrapped to the figure's width (8 pt sans: about 0.55 em a character), so it never makes the image wider
    note = textwrap.wrap(note, int(width * 72 / (0.55 * 8)))
    # wide and low (it leads page 1), tall enough for the legend and the note's lines
    height = max(2.5, 0.9 + rows * LEGEND_PT * 1.4 / 72) + (len(note) - 1) * 8 * 1.3 / 72
    fig, axes = plt.subplots(1, max(1, len(trains)), figsize=(width, height), squeeze=False, sharey=True)
    colors = checkpoint_colors(labels)
    for ax, train in zip(axes[0], trains):
        for family, g in curves[curves["train_res"] == train].groupby("family", sort=True):
            g = g.sort_values("x")
            color = colors[g["label"].iloc[0]]
            ax.plot(g["x"], g["acc"], "-o", ms=3, color=color, label=g["label"].iloc[0], gid=family)
            ax.fill_between(g["x"], g["low"], g["high"], color=color, alpha=0.15, lw=0)
            seen = g[g["seen"]]
            ax.plot(seen["x"], seen["acc"], "s", ms=8, mfc="none", color=color)
        ax.axvline(side(train), color="0.5", lw=0.8)
        ax.set_title(f"trained at {train}", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 accuracy (%)")
    fig.suptitle("\n".join(note), fontsize=8)
    _legend(fig, axes[0], labels)
    return fig
