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
