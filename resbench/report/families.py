"""Model families: the checkpoints of one training recipe that differ only in their seed, read as one model by
the summary table and the headline figure (a checkpoint without seed twins is a family of its own)."""

from __future__ import annotations

import pandas as pd

from resbench.report.load import SweptFiles
from resbench.report.stats import seed_groups

__all__ = ["family_labels", "recipe_kind"]


def family_labels(df: pd.DataFrame, runs: list[dict], files: SweptFiles | None = None) -> dict[str, str]:
    """Checkpoint name -> its family's label.

    Checkpoints of one recipe trained with two or more different seeds share the label "<name of the lowest
    seed> (seeds 0, 1, 2)"; every other checkpoint is its own family, under its own name."""
    labels = {name: name for name in df["checkpoint"].unique()}
    by_recipe: dict[str, list[tuple[int, str]]] = {}
    for name, (recipe, seed) in seed_groups(df, runs, files).items():
        by_recipe.setdefault(recipe, []).append((seed, name))
    for members in by_recipe.values():
        seeds = [seed for seed, _ in members]
        if len(members) < 2 or len(set(seeds)) != len(seeds):  # one seed twice: the same file in two precisions
            continue
        members.sort()
        label = f"{members[0][1]} (seeds {', '.join(str(s) for s in sorted(seeds))})"
        labels.update({name: label for _, name in members})
    return labels


def recipe_kind(recipe) -> str:
    """How a recipe (a results row's `recipe`) trained: 'multi-scale' (random sizes), 'progressive' (several
    stages) or 'fixed'."""
    recipe = "" if not isinstance(recipe, str) else recipe
    if "multiscale=" in recipe:
        return "multi-scale"
    return "progressive" if "," in recipe.split(" ")[0] else "fixed"
