"""Model families: the checkpoints of one training recipe that differ only in their seed, read as one model by
the summary table and the headline figure (a checkpoint without seed twins is a family of its own)."""

from __future__ import annotations

import re

import pandas as pd

from resbench.report.load import SweptFiles
from resbench.report.stats import seed_groups

__all__ = ["family_labels", "recipe_kind"]


def family_labels(df: pd.DataFrame, runs: list[dict], files: SweptFiles | None = None) -> dict[str, str]:
    """Checkpoint name -> its family's label.

    Checkpoints of one recipe trained with two or more different seeds share the label "<name of the lowest
    seed, less any _seed<k>> (seeds 0, 1, 2)"; where one recipe holds a seed twice (two sets of runs of one
    recipe, say an ablation arm that repeats the main recipe), each set of names that differ only in a _seed<k>
    suffix is a family of its own; every other checkpoint is its own family, under its own name."""
    labels = {name: name for name in df["checkpoint"].unique()}
    by_recipe: dict[str, list[tuple[int, str]]] = {}
    for name, (recipe, seed) in seed_groups(df, runs, files).items():
        by_recipe.setdefault(recipe, []).append((seed, name))
    for members in by_recipe.values():
        seeds = [seed for seed, _ in members]
        if len(set(seeds)) == len(seeds):
            sets = [members]
        else:  # a seed twice: split by name stem (the same file in two precisions stays a family of one)
            by_stem: dict[str, list[tuple[int, str]]] = {}
            for seed, name in members:
                by_stem.setdefault(_without_seed(name), []).append((seed, name))
            sets = list(by_stem.values())
        for group in sets:
            seeds = [seed for seed, _ in group]
            if len(group) < 2 or len(set(seeds)) != len(seeds):
                continue
            group.sort()
            label = f"{_stem(group[0][1], labels)} (seeds {', '.join(str(s) for s in sorted(seeds))})"
            labels.update({name: label for _, name in group})
    return labels


def _without_seed(name: str) -> str:
    """A checkpoint name without a trailing '_seed<k>' (s4nd_iso_7_seed0 -> s4nd_iso_7)."""
    return re.sub(r"_seed\d+$", "", name)


def _stem(name: str, names) -> str:
    """A family's name: its lowest seed's checkpoint name _without_seed, unless another checkpoint is called that."""
    stem = _without_seed(name)
    return stem if stem == name or stem not in names else name


def recipe_kind(recipe) -> str:
    """How a recipe (a results row's `recipe`) trained: 'multi-scale' (random sizes), 'progressive' (several
    stages) or 'fixed'."""
    recipe = "" if not isinstance(recipe, str) else recipe
    if "multiscale=" in recipe:
        return "multi-scale"
    return "progressive" if "," in recipe.split(" ")[0] else "fixed"
