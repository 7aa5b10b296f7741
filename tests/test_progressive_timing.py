"""benchmarks/progressive_timing.py: time to equal accuracy and the per-recipe summary, on made-up curves."""

import sys

import pandas as pd

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import progressive_timing as pt  # noqa: E402


def _curve(recipe, seed, seconds, accuracies):
    return [{"recipe": recipe, "seed": seed, "epoch": i + 1, "train_seconds": s, "test_accuracy": a}
            for i, (s, a) in enumerate(zip(seconds, accuracies))]


def test_time_to_reach_is_the_first_epoch_at_or_past_the_target():
    curve = pd.DataFrame(_curve("progressive", 0, [10, 30, 60, 100], [0.5, 0.8, 0.79, 0.9]))
    assert pt.time_to_reach(curve, 0.8) == 30
    assert pt.time_to_reach(curve, 0.85) == 100
    assert pt.time_to_reach(curve, 0.95) is None


def test_the_summary_pairs_each_seed_with_the_other_recipes_final_accuracy():
    rows = (_curve("progressive", 0, [10, 30, 60, 100], [0.5, 0.80, 0.85, 0.88])
            + _curve("full size", 0, [40, 80, 120, 160], [0.6, 0.84, 0.88, 0.89])
            + _curve("progressive", 1, [12, 32, 62, 110], [0.5, 0.70, 0.80, 0.86])
            + _curve("full size", 1, [42, 82, 122, 150], [0.6, 0.80, 0.85, 0.87]))
    table = pt.summarise(pd.DataFrame(rows)).set_index("recipe")
    assert table.loc["progressive", "accuracy at 4 epochs (%)"] == "87.00 +- 1.41"
    assert table.loc["full size", "training time (s)"] == "155 +- 7"
    # progressive never reaches full size's 0.89 (seed 0) and 0.87 (seed 1): not reached in either
    assert table.loc["progressive", "time to the other's final accuracy (s)"] == "not reached"
    # full size reaches progressive's 0.88 at 120 s (seed 0) and its 0.86 at 150 s (seed 1)
    assert table.loc["full size", "time to the other's final accuracy (s)"] == "135 +- 21"
