"""Zero-shot goals as paired tests (resbench.report.goals): known per-image outcomes give known verdicts."""

import math

import numpy as np
import pandas as pd
import pytest

from resbench.report.goals import Z90, goal_tests, paired_mean
from resbench.report import goal_table


def records(n: int, wrong: set[int], labels=None) -> pd.DataFrame:
    """Per-image records of n images, right except those in `wrong`."""
    label = np.zeros(n, dtype=np.int16) if labels is None else labels
    pred = label.copy()
    pred[sorted(wrong)] = 1
    return pd.DataFrame({"index": np.arange(n, dtype=np.int32), "label": label, "pred": pred})


def test_paired_mean_is_the_normal_interval_of_the_differences():
    diff = np.array([1] * 30 + [-1] * 10 + [0] * 960)
    mean, low, high = paired_mean(diff)
    sd = diff.std(ddof=1)
    assert mean == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2.0 - 100 * 1.959963984540054 * sd / math.sqrt(1000),
                                         2.0 + 100 * 1.959963984540054 * sd / math.sqrt(1000)))


def test_a_small_s4nd_drop_and_a_large_twin_drop_are_both_shown():
    n = 2000
    s4_train, s4_test = records(n, set(range(100))), records(n, set(range(105)))  # 5 more lost: 0.25 points
    tw_train, tw_test = records(n, set(range(100))), records(n, set(range(500)))  # 400 more lost: 20 points
    t = goal_tests(s4_train, s4_test, tw_train, tw_test)
    assert t["S4ND drop"] == pytest.approx(0.25) and t["twin drop"] == pytest.approx(20.0)
    assert t["twin - S4ND"] == pytest.approx(19.75)
    assert t["S4ND within 2"] and t["twin falls further"]


def test_the_twin_gaining_is_not_falling_further():
    n = 2000
    s4_train, s4_test = records(n, set(range(100))), records(n, set(range(140)))  # S4ND loses 2 points
    tw_train, tw_test = records(n, set(range(500))), records(n, set(range(100)))  # the twin gains 20
    t = goal_tests(s4_train, s4_test, tw_train, tw_test)
    assert t["twin - S4ND"] == pytest.approx(-22.0) and not t["twin falls further"]


def test_a_point_estimate_inside_the_margin_is_not_equivalence_on_few_images():
    n = 200  # 1.5 points lost (3 images): inside 2 points, but its 90% interval reaches past it
    t = goal_tests(records(n, set()), records(n, {0, 1, 2}), records(n, set()), records(n, set(range(60))))
    assert t["S4ND drop"] == pytest.approx(1.5)
    half = 100 * Z90 * np.array([1] * 3 + [0] * 197).std(ddof=1) / math.sqrt(n)
    assert 1.5 + half > 2 and not t["S4ND within 2"]
    assert t["twin falls further"]


def test_a_drop_past_the_margin_is_not_within_two_points():
    n = 2000
    t = goal_tests(records(n, set()), records(n, set(range(80))), records(n, set()), records(n, set(range(800))))
    assert t["S4ND drop"] == pytest.approx(4.0) and not t["S4ND within 2"]


def test_records_of_other_images_are_not_paired():
    n = 100
    shuffled = records(n, set()).assign(index=np.arange(n)[::-1])
    assert goal_tests(records(n, set()), shuffled, records(n, set()), records(n, set())) is None


class FakeRecords:
    def __init__(self, frames):
        self.frames = frames

    def get(self, row):
        return self.frames.get((row.checkpoint, row.test_res))


def test_goal_table_uses_the_records():
    rows = [{"checkpoint": c, "model": m, "dataset": "d", "train_res": "4000", "test_res": t, "dims": 1,
             "policy": "native", "bandlimit": b, "error": "", "accuracy": a}
            for c, m, b, accs in (("s", "s4nd_iso", "on", {"2000": 0.9975, "4000": 1.0}),
                                  ("c", "conv1d_iso", "none", {"2000": 0.8, "4000": 1.0}))
            for t, a in accs.items()]
    n = 2000
    frames = {("s", "4000"): records(n, set()), ("s", "2000"): records(n, set(range(5))),
              ("c", "4000"): records(n, set()), ("c", "2000"): records(n, set(range(400)))}
    table = goal_table(pd.DataFrame(rows), FakeRecords(frames)).set_index("change")
    row = table.loc["sampling rate x1/2"]
    assert row["S4ND within 2"] == "shown" and row["twin falls further"] == "shown"
    assert row["twin - S4ND"].startswith("19.75 [")
    assert row["training (S4ND / twin)"] == "? / ?"  # no recipe in these rows: said, not left blank


def test_the_goal_table_states_each_model_s_training_budget():
    rows = [{"checkpoint": c, "model": m, "dataset": "d", "train_res": "14", "test_res": t, "dims": 2,
             "policy": "native", "bandlimit": b, "error": "", "accuracy": 0.8, "recipe": r}
            for c, m, b, r in (("s", "s4nd_iso", "on", "14:8"), ("c", "conv2d_iso", "none", "14:3"))
            for t in ("7", "14", "28")]
    table = goal_table(pd.DataFrame(rows)).set_index("change")
    assert set(table["training (S4ND / twin)"]) == {"14:8 / 14:3"}
    assert "headline figure" not in table.attrs["note"]  # nothing left out: no note saying what was
    only = goal_table(pd.DataFrame(rows), only={"s", "c", "other"})
    assert "headline figure" not in only.attrs["note"]


def test_seeds_are_tested_on_their_mean_per_image():
    """Two seeds: one loses images 0-39 at the test size, the other none; their mean loses 20 images of 2000,
    1 point, which is inside the margin where the first seed alone (2 points) is not."""
    n = 2000
    right = records(n, set())
    t = goal_tests([right, right], [records(n, set(range(40))), right], [right, right],
                   [records(n, set(range(400))), records(n, set(range(600)))])
    assert t["S4ND drop"] == pytest.approx(1.0) and t["twin drop"] == pytest.approx(25.0)
    assert t["S4ND within 2"] and t["twin falls further"]
    alone = goal_tests(right, records(n, set(range(40))), right, records(n, set(range(400))))
    assert alone["S4ND drop"] == pytest.approx(2.0) and not alone["S4ND within 2"]


def family_rows(prefix, model, bandlimit, accuracies, seeds=3, recipe="14:3"):
    """Rows of `seeds` checkpoints PREFIX_seedK trained at 14 (images), accuracy at each test size minus K/100."""
    return [{"checkpoint": f"{prefix}_seed{k}", "model": model, "dataset": "d", "train_res": "14", "test_res": t,
             "dims": 2, "policy": "native", "bandlimit": bandlimit, "error": "", "accuracy": a - k / 100,
             "recipe": recipe} for k in range(seeds) for t, a in accuracies.items()]


def test_image_goals_pair_each_s4nd_family_with_its_twin_family_on_seed_means():
    flat = {"7": 0.89, "14": 0.90, "28": 0.895}
    falls = {"7": 0.30, "14": 0.88, "28": 0.50}
    rows = (family_rows("s4", "s4nd_iso", "on", flat) + family_rows("c", "conv2d_iso", "none", falls)
            + family_rows("ms", "conv2d_iso", "none", falls, recipe="14:3 multiscale=7,9,11,14")  # not a twin
            + family_rows("ck", "ckconv", "none", falls, seeds=1)  # another model: not a twin
            + family_rows("pg", "s4nd_iso", "on", flat, recipe="7:1,14:2"))  # progressive: not zero-shot at 7
    df = pd.DataFrame(rows)
    families = {f"{p}_seed{k}": f"{p} (seeds 0, 1, 2)" for p in ("s4", "c", "ms") for k in range(3)}
    frames, n = {}, 1000
    for p, lost in (("s4", {"7": 10, "28": 5}), ("c", {"7": 580, "28": 380})):
        for k in range(3):
            frames[(f"{p}_seed{k}", "14")] = records(n, set())
            frames.update({(f"{p}_seed{k}", t): records(n, set(range(m))) for t, m in lost.items()})
    table = goal_table(df, FakeRecords(frames), families).set_index("change")
    assert list(table.index) == ["resolution x1/2", "resolution x2"]
    assert set(table["S4ND"]) == {"s4 (seeds 0, 1, 2)"} and set(table["twin"]) == {"c (seeds 0, 1, 2)"}
    row = table.loc["resolution x1/2"]
    assert row["test_res"] == "7" and row["S4ND drop"] == pytest.approx(1.0) and row["twin drop"] == pytest.approx(58.0)
    assert row["drops over seeds"] == "S4ND 1.00 \u00b1 0.00 (n=3); twin 58.00 \u00b1 0.00 (n=3)"
    assert row["S4ND within 2"] == "shown" and row["twin falls further"] == "shown"
    del frames[("c_seed2", "7")]  # one seed without records at 7: that goal is not tested
    table = goal_table(df, FakeRecords(frames), families).set_index("change")
    assert table.loc["resolution x1/2", "S4ND within 2"] == "untested (no per-image records)"
    assert table.loc["resolution x2", "S4ND within 2"] == "shown"
