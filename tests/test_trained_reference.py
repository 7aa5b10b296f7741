"""Zero-shot cells against the same family trained at the test size (resbench.report.trained_reference)."""

import pandas as pd
import pytest

from resbench.report.trained_reference import trained_reference_table


def cells(name, model, train, accs, bandlimit="none", trained_bandlimit=None, seen=(), n=1000):
    return [{"checkpoint": name, "model": model, "dataset": "d", "train_res": train, "test_res": t,
             "policy": "native", "bandlimit": bandlimit, "trained_bandlimit": trained_bandlimit,
             "seen_in_training": t in seen or t == train, "accuracy": a, "n": n, "correct": round(a * n)}
            for t, a in accs.items()]


def test_gap_to_the_seed_mean_of_the_same_family_trained_at_that_size():
    rows = (cells("c7", "conv2d_iso", "7", {"7": 0.86, "14": 0.30})
            + cells("c14", "conv2d_iso", "14", {"14": 0.88, "7": 0.40})
            + cells("c14b", "conv2d_iso", "14", {"14": 0.86, "7": 0.42})
            + cells("s14", "s4nd_iso", "14", {"14": 0.89, "7": 0.80}, "on", 0.5)
            + cells("s7", "s4nd_iso", "7", {"7": 0.85, "14": 0.80}, "on", 0.5))
    table = trained_reference_table(pd.DataFrame(rows)).set_index(["checkpoint", "test_res"])
    row = table.loc[("c7", "14")]
    assert row["n"] == 2 and row["gap"] == pytest.approx(100 * (0.30 - 0.87))
    assert row["trained here %"].startswith("87.00 +- ") and row["reference"] == "c14, c14b"
    assert table.loc[("c14", "7"), "gap"] == pytest.approx(100 * (0.40 - 0.86))
    assert table.loc[("s7", "14"), "gap"] == pytest.approx(100 * (0.80 - 0.89))  # S4ND against S4ND, not Conv2D
    assert table.loc[("s14", "7"), "reference"] == "s7"


def test_no_reference_across_arms_or_from_multi_size_training():
    rows = (cells("m7", "s4nd_iso", "7", {"7": 0.85, "14": 0.80}, "on", 0.5)
            + cells("n14", "s4nd_iso", "14", {"14": 0.90, "7": 0.5}, "off", None)  # trained without the mask
            + cells("p14", "s4nd_iso", "14", {"14": 0.88, "7": 0.84}, "on", 0.5, seen=("7",)))  # progressive 7 -> 14
    table = trained_reference_table(pd.DataFrame(rows))
    assert table.empty  # n14 is another arm; p14 trained at 7 too: neither zero-shot at 7 nor a reference


def test_the_gap_has_an_interval_and_within_two_points_is_an_equivalence_test():
    """On 10000 images a 0.5-point gap has a 90% interval of about +-1: within 2 points is shown; on 500 images
    the same gap's interval reaches past 2 points, and a 10-point gap is never within 2."""
    for n, gap, shown in ((10000, 0.005, True), (500, 0.005, False), (10000, 0.10, False)):
        rows = (cells("s4", "s4nd_iso", "4000", {"4000": 0.72, "2000": 0.72 - gap}, "on", 0.5, n=n)
                + cells("s2", "s4nd_iso", "2000", {"2000": 0.72}, "on", 0.5, n=n))
        row = trained_reference_table(pd.DataFrame(rows)).set_index("checkpoint").loc["s4"]
        low, high = (float(v) for v in row["gap 95% CI"].strip("[]").split(", "))
        assert low < -100 * gap < high and high - low < (4 if n == 10000 else 20)
        assert row["within 2"] == ("shown" if shown else "not shown"), (n, gap)


def test_a_multi_scale_checkpoint_is_no_reference_for_its_final_size():
    """Trained at random sizes 4 to 7: its native cell at 7 does not stand for 'trained at 7', even where the
    sweep tested none of its other sizes."""
    rows = (cells("c14", "conv2d_iso", "14", {"14": 0.88, "7": 0.30})
            + [{**r, "recipe": "7:3 multiscale=4,5,6,7"} for r in cells("ms7", "conv2d_iso", "7", {"7": 0.84})]
            + cells("c7", "conv2d_iso", "7", {"7": 0.86}))
    for r in rows:
        r.setdefault("recipe", "14:3" if r["checkpoint"] == "c14" else "7:3")
    row = trained_reference_table(pd.DataFrame(rows)).set_index("checkpoint").loc["c14"]
    assert row["reference"] == "c7" and row["n"] == 1


def test_a_random_mask_arm_is_no_reference_for_the_band_mask():
    rows = (cells("s14", "s4nd_iso", "14", {"14": 0.89, "7": 0.75}, "on", 0.5)
            + cells("s7", "s4nd_iso", "7", {"7": 0.85}, "on", 0.5)
            + [{**r, "recipe": "7:3 mask=random"} for r in cells("r7", "s4nd_iso", "7", {"7": 0.80}, "on", 0.5)])
    for r in rows:
        r.setdefault("recipe", "7:3")
    row = trained_reference_table(pd.DataFrame(rows)).set_index("checkpoint").loc["s14"]
    assert row["reference"] == "s7"
